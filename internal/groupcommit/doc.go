// Package groupcommit is optgate's one Badger group committer: many
// concurrent writers share one transaction and so one fsync, and each
// learns "stored" only after the sync that holds its writes. The consent
// store, the WhatsApp spool and the gateway store (outbox, receipts,
// statuses, remembered MOs) all write through it.
//
// Its interface is small on purpose: New(db, Options), then Write (or
// Apply, which also runs an in-memory effect once the write is synced, or
// WriteAll, a background writer's bulk cut into requests that fit),
// Fenced/Unfence and Close. A request is a list of blind writes (Op),
// committed atomically; the committer owns every transaction, so every
// store shares one durability and one failure policy:
//
//   - The store must be opened WithSyncWrites(true): each commit is
//     fsynced before it returns (see Committer.commit for why a db.Sync
//     per batch is not durable).
//   - One batch is one transaction and one fsync. Batches are sized
//     against Badger's MaxBatchCount and MaxBatchSize (3/4 of each, with
//     a generous estimate per entry) and Options.MaxBatch: the request
//     that would not fit is carried to the next batch, never split, and
//     never makes the batch span two transactions. (The gateway store
//     used to cut an oversized batch into several transactions; carrying
//     gives the same fsync count and keeps "one batch, one transaction"
//     true for the metrics and for consent's tests.)
//   - A request too big for any transaction (badger.ErrTxnTooBig), or
//     whose keys Badger refuses, fails alone: nothing of it was written,
//     the others in its batch are committed.
//   - A failed commit (an fsync error, a full or vanished disk) fences the
//     committer: its batch fails, and every later write is refused with an
//     error matching ErrFenced (wrapping the first failure) until the
//     store is reopened (a new Committer on the reopened DB) or, for a
//     store that tolerates it, Unfence is called once the disk is healthy
//     again. After a failed fsync what reached the disk is unknown, so
//     telling a later writer "stored" would be a guess.
//
// Options carry the hooks the stores need: OnBatch for metrics (batch
// size, sync time, errors), OnFence to mark a store failed, and Commit to
// inject commit failures in tests.
package groupcommit
