// Package outbox is the gateway's durable queue: work that must not be
// lost once someone was told it is accepted — MT messages of ack: store
// accounts, MO messages and receipts for upstream ESMEs that are not bound,
// webhook events — is written and synced first, then delivered with
// retries until it succeeds, fails for good or expires.
//
// The package knows nothing of the gateway. A user registers each kind of
// work (Kind) with its name, a handler that delivers one Item and its
// policy (concurrency, per-tenant cap, attempt timeout, back-off cap,
// maximum age), then calls Start, Put as work arrives, and Close.
//
// # Contract
//
//   - Durable before Put returns: Put returns only after the items are
//     synced to disk (one group commit through internal/groupcommit,
//     shared with the store's other writers); an error means none of
//     them is stored and the caller must say so upstream. A committer
//     fenced after a failed commit refuses every Put until the store is
//     reopened.
//   - At least once: an item is removed only after its handler returned
//     nil. A crash between a delivery and its removal delivers the item
//     again on the next run; so does a result the store refuses to write,
//     once the committer's fence is lifted or on the next run (not while
//     it is fenced: a failing store must not repeat a delivery every
//     scan). Handlers (and the parties they deliver to) must
//     therefore tolerate duplicates: webhooks carry X-Optgate-Event-Id
//     for this, queued MT reuses its message id.
//   - Retries: a temporary error (any error not wrapped by Permanent)
//     reschedules the item after a capped exponential back-off with
//     jitter (2 s doubling per attempt, at most Kind.MaxBackoff, half of
//     it taken off at random); the item's Attempts and LastErr record it.
//   - Ordering: none promised. A kind's due items are handed out in due
//     order (oldest first, as stored), but Workers or Inflight of them
//     run at once and a retried item waits out its back-off behind newer
//     ones; callers that need an order must carry it in the payload.
//   - Giving up: a Permanent error, or a temporary one when the item is
//     older than Kind.MaxAge, ends the item: Kind.GiveUp is called with
//     the item and its error (ErrExpired wraps the last one for an expiry)
//     and the item is removed. An item is only judged when an attempt
//     ends, so an item that is never due or whose kind is not registered
//     is not expired.
//   - Close stops handing out items, waits for the attempts under way and
//     writes their results; items not yet delivered stay stored for the
//     next Start.
//
// # Why this shape
//
// The interface (Queue: Register, Start, Put, Close; Item, Kind and
// Permanent) is what a queue of work can offer whatever keeps it: a
// subject-keyed work-queue stream of a cluster (JetStream with one durable
// consumer per kind: Put is a publish acknowledged after replication, a
// handler's nil is an ack, a temporary error a nak with delay, Permanent
// a term, MaxAge the message's age check at delivery, Workers/Inflight
// the consumer's max-ack-pending, PerTenant a subject per tenant, Depth
// the consumer's pending count) fits behind it as well as this Badger
// store does. So nothing here exposes Badger: no keys, no transactions,
// no scans in the interface (Count is the Badger store's own, for tests
// and tools), and the handler receives the stored Item, never a store
// handle. Ordering and exactly-once are not promised because a clustered
// work queue does not give them either. Handlers are plain functions, not
// an interface on the gateway, so the gateway's parts (the SMSC links,
// the webhook client, the upstream SMPP server) stay out of this package.
//
// The gateway holds a *Store, not a Queue: through an interface call the
// compiler cannot keep Put's variadic slice on the caller's stack, which
// would add an allocation to every message on the ack: store and MO
// paths. The second implementation, cluster.Queue (the work-queue stream
// of a cluster), is held as a concrete *cluster.Queue beside it, for the
// same reason: in a cluster the gateway puts its "mt" and "deliver" items
// there and this Store moves into it what it still holds
// (gateway/cluster_queue.go).
//
// Store keeps its items under the "ob/" prefix of a Badger store shared
// with the gateway's other data, keyed by kind and due time so that a scan
// of a kind reads its due items first; the stored JSON of an Item is the
// one earlier versions wrote, so a store written by them is delivered.
package outbox
