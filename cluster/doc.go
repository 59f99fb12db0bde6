// Package cluster links optgate nodes through NATS JetStream so that they
// share one replicated consent log: a STOP recorded on any node is applied,
// in order, on every node, and a node that cannot prove it is current
// refuses to send (issue 16; facts and figures in
// shared/reference/cluster.md).
//
// Its one job is that log. It knows nothing of consent: a Record's payload
// is opaque bytes that the gateway encodes and decodes, and this package
// imports neither consent nor gateway (only gateway/outbox, whose Queue
// interface the work queue implements), so it can be tested alone against
// real NATS servers.
//
// # Usage
//
//	cfg.SetDefaults(dataDir)
//	if err := cfg.Validate(); err != nil { ... } // every problem, as *ConfigError
//	srv, err := cluster.StartServer(cfg, logger) // embedded mode only; nil with nats.urls
//	conn, err := cluster.Connect(ctx, cfg, srv, cluster.Options{Logger: logger, Registerer: reg})
//	defer conn.Close()
//	f, err := conn.Follow(ctx, lastApplied, apply) // returns once caught up
//	defer f.Close()
//	err = conn.Log().Append(ctx, records...)       // nil: every record held by a quorum
//	if !f.Current(cfg.MaxLag) { /* fail closed: refuse MT (hot path, no allocation) */ }
//	if err := f.Healthy(0); err != nil { /* /readyz false, with the reason */ }
//
// # What is replicated, and the life of a change
//
// One JetStream stream (OPTGATE_CONSENT by default) holds every consent
// change, as a Record on subject optgate.consent.<tenant>.<shard>. The
// shard is an HMAC-SHA-256 of tenant and key (the recipient) under
// cluster.subject_key, modulo cluster.shards: a phone number is never in a
// subject, and a few hundred subjects per tenant keep the servers' memory
// small (about 250 B per subject per server). The stream is file-backed,
// has cluster.replicas replicas (3 when there are three or more servers),
// no limits (the log is the truth until snapshots exist), refuses deletes
// and purges, and de-duplicates by Nats-Msg-Id for 2 minutes. Embedded
// servers run with SyncAlways, so a quorum acknowledgement means the record
// is on the disks of a majority; an external cluster must be configured
// with sync_interval: always for the same promise.
//
// Append publishes asynchronously (bounded by cluster.max_pending on the
// connection, so concurrent callers share one window and a batch costs
// about one round trip) and returns nil only after the quorum PubAck of
// every record. A record whose ack fails or times out is published again
// with the same Nats-Msg-Id, so a record the stream did store is not stored
// twice. Records with the same tenant and key keep their order; records of
// different keys may be stored in any order (a retried one lands after its
// batch), which is harmless because changes of different recipients
// commute. Past cluster.ack_timeout (2 s) Append fails with
// ErrNotAcknowledged and the gateway answers as for a local store failure
// (ESME_RX_T_APPN, HTTP 503): the source retries. A stream leader killed
// hard leaves 4-9 s without acks (Raft elections), a graceful stop tens of
// milliseconds.
//
// A Follower applies the stream in order through an ordered consumer
// starting after the sequence the caller last applied, idempotent by
// stream sequence: FollowBatch hands the records delivered and waiting
// (up to 256 records or 1 MiB) to an ApplyBatchFunc, which the gateway
// applies in one synced write (consent.Store.ApplyReplicatedBatch);
// Follow calls an ApplyFunc once per record. One fsync per record held a
// node near 900 applied records a second: after a 10 s storm of 5,000
// opt-outs a second, nodes took 58 s to catch up (failing closed all
// along); in batches, 2.3 s (optgate-bench run cluster, 2026-12-07). The
// caller stores the last sequence in the same synced Badger batch as the
// changes, and passes it to Follow after a restart: no record is applied
// twice or skipped. Follow returns only once the node has applied everything the
// stream held when Follow started. An Apply error pauses the feed and
// offers the same record again; a gap in the sequence (the stream no longer
// holds what this node needs) stops it for good with ErrLogBroken: such a
// node must be bootstrapped from a snapshot.
//
// # Lag, heartbeats and failing closed
//
// Lag is now minus the latest time at which the node provably had applied
// everything in the stream. "Now minus the time of the last change" would
// make an idle cluster look stale, so every cluster.heartbeat (50 ms) the
// follower sends a heartbeat probe to the stream leader (a stream info
// request on JetStream's API subject) at local time t0; the answer names
// the stream's last sequence L, and once the node has applied L it is
// current as of t0. An applied record also proves the node current as of
// the record's stream timestamp. The probes use the node's own clock, and
// they write nothing: heartbeat messages in the consent stream itself would
// grow an unbounded log by 20 records a second per node. The probe also
// reports the stream's replicas (Status.Peers), whether a leader and a
// quorum of current replicas exist, and the stream's size.
//
// Healthy(maxLag) is nil only while the follower has caught up, its feed
// delivers, the stream is in quorum and the lag is within max_lag
// (100 ms): otherwise the node must refuse MT with a temporary status and
// report /readyz false. A node cut off from its peers fails within a probe:
// its stream info gets no answer or shows no quorum, or (embedded) its
// server has routes to fewer peers than a majority needs; and with no
// answer its lag passes max_lag in any case. It recovers by itself when
// the peers return. JetStream's own view marks a silent replica offline
// only after 10 s, so a partition that closes no connection (no TCP reset)
// is caught by the lag of a node that cannot reach the leader, not by the
// leader's replica list.
//
// Metrics (metrics.go): optgate_cluster_replication_lag_seconds (the lag,
// sampled every heartbeat: its p99 is the alert), _lag_seconds,
// _feed_connected, _quorum, _peers, _stream_messages, _stream_bytes,
// _applied_sequence, _append_records_total{result}, _append_seconds. No
// label carries a number, tenant or message id.
//
// # How the gateway plugs in
//
//   - Config: gateway.Config has `Cluster *cluster.Config yaml:"cluster"`;
//     nil keeps the single node with no NATS and today's figures.
//     ParseConfig (check-config, serve) calls SetDefaults (the embedded
//     store under store.dir) and Validate and reports each *ConfigError at
//     "cluster.<key>". New starts the embedded server; Start connects,
//     follows from consent.Store.AppliedSeq and returns once caught up;
//     Shutdown closes the follower before the stores, the connection and
//     server after them (gateway/cluster.go).
//   - Write seam: consent's submit, after the synced local commit and
//     before any writer is answered, appends the change's records,
//     evidence and MO de-duplication markers (as the Badger ops it made,
//     with the origin node) through consent.Config.Replicator; a failed
//     Append answers ErrStorage (ESME_RX_T_APPN, 503) and keeps the change
//     for consent.Store.ReplicatePending (every second).
//   - Apply seam: consent.Store.ApplyReplicated writes a record's ops and
//     the applied sequence in one synced group-commit request and updates
//     the memory index after the sync as a local commit does. Every node
//     applies its own records too, so the log's order decides between
//     concurrent changes; Log.AppendSeq's sequences let a node skip an
//     older record over its own newer change (consent/own.go).
//   - MT screening stays local; the screen stage calls
//     Follower.Current(max_lag) in front of Check (a nil follower on a
//     single node: one nil check); false answers ESME_RX_T_APPN / 503
//     with Retry-After. /readyz calls Healthy.
//   - Tests with real processes: cmd/optgate/cluster_test.go.
//
// # Shared facts
//
// Shared (shared.go) is a second, lighter channel for facts that are not
// consent and need no quorum before anyone is answered: the gateway puts
// WhatsApp window changes and last channels there. It is a JetStream
// key-value bucket (OPTGATE_SHARED: history 1, the consent stream's
// replicas, entries kept cfg.SharedTTL); a key is a keyed hash, a put
// never blocks (a bounded queue, then asynchronous publishes; a full
// queue drops and counts), and every node, the putter included, applies
// every value in the bucket's order, so they converge on the last put.
// Held messages are not here: they travel in the consent log with the
// recipient's pending state (consent/doc.go, "Several nodes").
//
// # Receipts: ownership by claim
//
// A receipt may arrive on any node's SMSC bind; its message's mapping
// (SMSC id to ours) is in the receipt book of the node that submitted it
// (gateway/receipt). The mapping stays there: a node whose book finds a
// receipt nowhere (memory, then store) claims it (claim.go). Claim
// publishes one core NATS request on ClaimSubject (optgate.receipt.claim:
// no number, message or SMSC in it; the payload carries the SMSC's name,
// its receipt id and the report) with a reply subject under this
// connection's inbox, and waits for the answers of the cluster.nodes-1
// other nodes. A node serves a claim (ServeClaims, a goroutine each, at
// most 1,024 at once) from its own book: the owner forwards the receipt
// as its own (status, the ESME bound there or the deliver spool, or the
// webhook) and answers taken only once that is durable; a node that does
// not know it waits up to min(receipts.grace, ack_timeout/2) for the Add a
// late submit_sm_resp may bring, then answers not mine. The asking node
// answers the SMSC ESME_ROK on taken; ESME_RX_T_APPN on failed or when
// not every node answered within ack_timeout (a node down: the SMSC sends
// it again, until the node returns or its own retry policy gives up);
// every node's not mine is today's uncorrelated path (parked for the rest
// of the grace period, ESME_ROK), except that at expiry the receipt is
// claimed once more: an SMSC that answers the submit only once its
// receipt is answered brings the mapping to its node only after the first
// claim. A final receipt removes the mapping, so
// a receipt claimed twice (a retry after a lost answer) is forwarded once;
// an intermediate one may be forwarded twice.
//
// Why not a KV bucket of mappings (TTL receipts.ttl), the other design
// issue 16 names: it puts a quorum, synced write on every MT part, which
// the receipt book avoids on purpose (its store write waits a second, and
// most mappings never reach it). One run on this busy 2-core machine
// (BenchmarkReceiptMapKVPut against BenchmarkReceiptClaim, three servers
// in one process, -benchtime 1000x, 2026-12-07; the lead re-measures on a
// quiet one): an R3 KV put took 1.0 ms alone and gave 3,900 puts/s with 8
// at once, against the claim round trip's 0.32 ms and 8,300 claims/s. The
// KV caps MT at the bucket's put rate (or, put asynchronously, loses
// mappings at the rate a node falls behind) and stores one record per
// part for 72 hours; the claim costs the MT path nothing and a receipt
// only when it lands on a node other than its message's, with no disk
// and no Raft round. What it gives up: a receipt whose owner is down
// waits for it (the SMSC's retries) rather than being correlated
// elsewhere, and a receipt nobody knows takes up to the wait above (1 s)
// before its ESME_ROK and holds a serving slot on each node meanwhile, so
// a burst of them (the receipts of the mappings a SIGKILL lost) is served
// at about 1,024 a second per node, the rest asked to retry.
//
// # Work queue
//
// Queue (queue.go) is an outbox.Queue over one JetStream work-queue
// stream (OPTGATE_WORK: file storage, the consent stream's replicas,
// WorkQueue retention) with one durable pull consumer per kind shared by
// every node, so that work acknowledged on one node is done by any: the
// gateway puts its queued MT (ack: store) and its spooled deliver_sm there.
// A subject is optgate.work.<kind>.<keyed hash of tenant and account>.
// Put returns after the quorum ack (Nats-Msg-Id: kind and item id); a
// handler's nil acks, a temporary error naks with the outbox's back-off,
// Elsewhere naks with a short random delay (the item is for another
// node), Permanent and MaxAge (checked at delivery and after a failure)
// call GiveUp and terminate. A node working an item says so every
// cfg.WorkAckWait/3; a node that dies stops, and its items go to another
// node after cfg.WorkAckWait (30 s): at least once. Each node pulls only
// as many items as it has free workers, with pull requests of random
// length so that no node is always first in line.
//
// # Not built
//
// Bootstrapping a new or long-absent node from a snapshot plus the log
// after it; webhook events in the work queue; per-account consumers of
// the deliver kind (an item for an ESME bound nowhere is retried every
// 1-2 s until it expires). BenchmarkClusterOptOut runs three servers in
// one process, which cluster.md shows distorts latency with SyncAlways:
// its figure is a floor, not the cluster's throughput. `optgate-bench run
// cluster` (package bench) measures three optgate processes, one server
// each (BENCHMARKS.md).
package cluster
