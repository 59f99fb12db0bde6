// Package receipt is the gateway's receipt book. Its one job: carry each
// delivery receipt a carrier sends back to the message it is about, and
// make the receipts optgate sends itself for messages it will not
// deliver (Synthetic).
//
// # The life of a receipt
//
// A mapping is made when an SMSC accepts a part: the gateway answers its
// own client first and then calls Add with the SMSC, the id the SMSC's
// submit_sm_resp gave and the part's Target (our id, tenant, account,
// numbers, part of parts). The book keys the mapping by the SMSC's name
// and dlr.CanonicalKey of the id, which normalises it (dlr.NormalizeID:
// case, leading zeros) and, for an SMSC whose id_base says its
// submit_sm_resp ids are hexadecimal and its receipt ids decimal (or the
// reverse), turns the hexadecimal side into decimal, so both sides meet.
// The mapping goes into the memory book and is queued for the store.
//
// A receipt comes as a deliver_sm (or data_sm) on the SMSC's session. The
// gateway reads it with Parse (the TLVs first, then the text form) and
// hands it to Receive, which looks its canonical id up:
//
//   - Found in memory: Config.Deliver forwards it to the message's origin
//     and answers the SMSC. A final state removes the mapping from the
//     book and the store; an intermediate one (ENROUTE, ACCEPTD) keeps it.
//   - Not found: some SMSCs send a receipt (often ACCEPTD) before the
//     submit_sm_resp is read, so the receipt is parked, under the same
//     lock as the lookup so an Add cannot slip in between, and answered
//     ESME_ROK. The Add that brings its mapping delivers it; one that does
//     not come within the grace period (receipts.grace) expires
//     (ExpireParked) and is counted uncorrelated.
//   - Not in memory but stored (a late receipt, or one after a restart):
//     parked meanwhile, the receipt is looked up in the store by a small pool
//     of workers, off the session's read goroutine, which answers the
//     SMSC itself. A hit is delivered (an intermediate one puts the
//     mapping back in memory for the next receipt); a miss stays parked
//     for the rest of its grace period; a failing store, or too many
//     lookups waiting, answers ESME_RX_T_APPN so the SMSC sends it again.
//     A receipt being looked up does not expire.
//
// # Several nodes
//
// On a cluster node (Config.Miss set) a receipt found neither in memory
// nor in the store is not answered at once: it stays parked, unexpired,
// and Miss asks the other nodes (gateway/cluster_receipt.go, cluster's
// Claim). Its Missed ends it: Taken (another node forwarded it: ESME_ROK,
// out of the lot), Retry (ESME_RX_T_APPN unless an Add here delivered it
// meanwhile) or Nobody (today's path: parked for the rest of the grace
// period, ESME_ROK; ExpireParked hands it to Miss once more, answered
// already, and its outcome is counted then). A node asked by another calls Claim, which delivers
// the receipt from its memory or store as Receive would, parking nothing.
// Add, lookupOrPark and the store are unchanged: nothing is added on the
// MT path, and a nil Miss is the single node.
//
// The store (the gateway's Badger store, keys "rc/") keeps each mapping
// for receipts.ttl. Its writes never hold up the MT path: a put waits in
// memory for a second, and a final receipt that comes meanwhile cancels
// it, so the store only sees the mappings of late receipts. A crash loses
// about a second of mappings, whose receipts then go uncorrelated; a
// clean shutdown (CloseStore) writes everything pending. The memory book
// keeps two generations, each at most Max/2 mappings and ttl/2 old, so
// its memory is bounded and it never answers for a mapping older than the
// TTL.
//
// # Why the interface is so
//
// The book sits on the MT hot path and holds millions of mappings, so
// they hold no pointers (the garbage collector never scans them): the
// package takes plain values rather than the gateway's types. An SMSC is
// its name and id base; a Target names its tenant and account by the
// gateway's 1-based indices and its origin as a number. Names turns the
// indices into ids only for the store, so a stored mapping survives a
// restart with a reordered configuration, and decides which stored
// targets are still deliverable. What the book does with a correlated
// receipt is the gateway's business: three callbacks set at construction
// (Deliver, Count, the logger) instead of an interface to the whole
// gateway. A parked receipt keeps its Report, not a closure over the
// gateway's state. Receive takes the SMSC's *smpp.Request because a
// store lookup answers it later, from a worker, and Deliver gets the
// answer function because the SMSC is told ESME_ROK only once the receipt
// is forwarded or durably queued.
//
// Locks: Book.mu, then the store's queue lock (a mapping's put is queued
// under the book's lock, so its delete cannot be queued first); the store's
// other locks are leaves (LOCKS.md). The methods in testhooks.go exist
// for the gateway's end-to-end tests only.
package receipt
