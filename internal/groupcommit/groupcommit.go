package groupcommit

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

var (
	// ErrClosed is returned for writes after Close.
	ErrClosed = errors.New("groupcommit: store closed")
	// ErrFenced is matched by every write refused because an earlier commit
	// failed (see Committer.Fenced); the error also wraps that failure.
	ErrFenced = errors.New("groupcommit: store fenced after a failed commit; reopen required")
)

// Op is one write: a set of Key to Value (expiring after TTL if it is
// positive), or a delete of Key when Delete is true.
type Op struct {
	Key, Value []byte
	TTL        time.Duration
	Delete     bool
}

// Batch describes one committed (or failed) batch, for metrics.
type Batch struct {
	Requests, Ops int
	Took          time.Duration // building and committing (fsync) the transaction
	Err           error         // nil, or why the batch's requests failed
}

// Options configure a Committer. The zero value is ready to use.
type Options struct {
	// MaxBatch bounds the requests of one batch (one transaction). Default 4096.
	MaxBatch int
	// Queue is how many requests may wait for the committer. Default 1024.
	Queue int
	// OnBatch, if not nil, is called on the committer goroutine after each
	// batch (metrics: batch size, sync time, errors).
	OnBatch func(Batch)
	// OnFence, if not nil, is called once on the committer goroutine when a
	// failed commit fences the committer, before any writer of that batch
	// is answered.
	OnFence func(error)
	// Commit, if not nil, commits a batch's transaction instead of
	// txn.Commit: a fault-injection point for tests. It is called on the
	// committer goroutine only, and must commit or discard txn.
	Commit func(*badger.Txn) error
}

type request struct {
	ops     []Op
	applied func()
	done    chan error
}

// Committer batches concurrent writes into Badger transactions (group
// commit). It is safe for concurrent use.
type Committer struct {
	db      *badger.DB
	opt     Options
	reqs    chan request
	wg      sync.WaitGroup
	closeMu sync.RWMutex
	closed  bool                  // guarded by closeMu
	fence   atomic.Pointer[error] // ErrFenced wrapping the first failure; nil while healthy
	txns    atomic.Int64          // transactions committed

	// Transaction limits, with room for our estimate of entry sizes.
	maxCount, maxSize int64
}

// doneChans recycles the answer channels: each is received from exactly
// once, so it is empty when it goes back.
var doneChans = sync.Pool{New: func() any { return make(chan error, 1) }}

// New starts a committer on db, which must be opened WithSyncWrites(true).
func New(db *badger.DB, opt Options) *Committer {
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 4096
	}
	if opt.Queue <= 0 {
		opt.Queue = 1024
	}
	if opt.Commit == nil {
		opt.Commit = (*badger.Txn).Commit
	}
	c := &Committer{db: db, opt: opt, reqs: make(chan request, opt.Queue),
		maxCount: db.MaxBatchCount() * 3 / 4, maxSize: db.MaxBatchSize() * 3 / 4}
	c.wg.Add(1)
	go c.loop()
	return c
}

// Write stores ops durably, all in one transaction, and returns once they
// are synced.
func (c *Committer) Write(ops ...Op) error { return c.submit(ops, nil) }

// WriteLazy is Write for writes whose loss in a crash would be harmless
// (a queue redoing work it had finished, at least once). Every write to
// the store is synced (see commit), so it is Write under another name:
// these writes share the batches of the others, which is what keeps their
// fsyncs few.
func (c *Committer) WriteLazy(ops ...Op) error { return c.submit(ops, nil) }

// Apply is Write with in-memory effects: applied, if not nil, is called on
// the committer goroutine once ops are synced and before Apply returns,
// in commit order with the applied functions of the other requests, and
// never when the write failed. Keep it short: the next batch waits for it.
func (c *Committer) Apply(ops []Op, applied func()) error { return c.submit(ops, applied) }

// WriteAll stores ops durably but not atomically, for background writers
// with more ops than one transaction takes (receipt mappings, message
// statuses): it cuts them into requests of at most a quarter of a
// transaction, queues them together so that they share batches (and
// fsyncs), and returns once every one is answered, with how many ops were
// stored and the first error.
func (c *Committer) WriteAll(ops []Op) (stored int, err error) {
	if len(ops) == 0 {
		return 0, nil
	}
	if err := c.Fenced(); err != nil {
		return 0, err
	}
	var cuts []int // end of each request in ops
	var count, size int64
	for i := range ops {
		n, s := c.estimate(ops[i : i+1])
		if i > 0 && (count+n > c.maxCount/4 || size+s > c.maxSize/4) {
			cuts = append(cuts, i)
			count, size = 0, 0
		}
		count += n
		size += s
	}
	cuts = append(cuts, len(ops))
	var applied int // added to by the committer before it answers
	done := make(chan error, len(cuts))
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return 0, ErrClosed
	}
	start := 0
	for _, end := range cuts {
		n := end - start
		c.reqs <- request{ops: ops[start:end], applied: func() { applied += n }, done: done}
		start = end
	}
	c.closeMu.RUnlock()
	for range cuts {
		if e := <-done; e != nil && err == nil {
			err = e
		}
	}
	return applied, err
}

// Transactions is the number of transactions committed so far.
func (c *Committer) Transactions() int64 { return c.txns.Load() }

// Fenced returns nil while the committer accepts writes, and after a
// failed commit the error (matching ErrFenced, wrapping the failure)
// every write is refused with.
func (c *Committer) Fenced() error {
	if p := c.fence.Load(); p != nil {
		return *p
	}
	return nil
}

// Unfence lets writes in again after a failed commit. Call it only once
// the store's disk takes a write and an fsync again, and only for a store
// whose readers tolerate what a failed commit may have left visible (the
// transaction's writes may be served although they were reported failed);
// a store that cannot tolerate that is closed and reopened instead, with
// a new Committer.
func (c *Committer) Unfence() { c.fence.Store(nil) }

func (c *Committer) submit(ops []Op, applied func()) error {
	if err := c.Fenced(); err != nil {
		return err
	}
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return ErrClosed
	}
	done := doneChans.Get().(chan error)
	c.reqs <- request{ops: ops, applied: applied, done: done}
	c.closeMu.RUnlock()
	err := <-done
	doneChans.Put(done)
	return err
}

// loop takes the requests queued (up to MaxBatch, and only as many as fit
// in one Badger transaction: the first request that would take the batch
// past 3/4 of Badger's MaxBatchCount or MaxBatchSize is carried to the
// next batch; a request is never split) and commits them.
func (c *Committer) loop() {
	defer c.wg.Done()
	batch := make([]request, 0, 64)
	var carry request
	for {
		r := carry
		carry = request{}
		if r.done == nil {
			var ok bool
			if r, ok = <-c.reqs; !ok {
				return
			}
		}
		batch = append(batch[:0], r)
		count, size := c.estimate(r.ops)
	fill:
		for len(batch) < c.opt.MaxBatch {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break fill
				}
				n, s := c.estimate(r.ops)
				if count+n > c.maxCount || size+s > c.maxSize {
					carry = r // first in the next batch
					break fill
				}
				batch = append(batch, r)
				count += n
				size += s
			default:
				break fill
			}
		}
		c.commit(batch)
		clear(batch)
	}
}

// estimate is the count and size ops add to a transaction, as Badger
// counts them plus a generous per-entry overhead.
func (c *Committer) estimate(ops []Op) (count, size int64) {
	for _, op := range ops {
		size += int64(len(op.Key) + len(op.Value) + 64) // generous per-entry overhead
	}
	return int64(len(ops)), size
}

// commit writes batch in one Badger transaction and commits it. The store
// is opened WithSyncWrites(true), so the commit returns only after the
// transaction's entries are fsynced in the WAL of the memtable that
// received them: one fsync per batch, shared by every request in it. Only
// then are the requests' applied functions called, in order, and their
// writers answered.
//
// Why not unsynced writes and one db.Sync per batch: in badger v4.9.6
// DB.Sync syncs only the active memtable's WAL and the value log (db.go,
// DB.Sync). A memtable rotation (ensureRoomForWrite, db.go) between a
// commit and the Sync, caused by any other write to the same DB, leaves
// the earlier entries in a WAL nobody syncs, while their callers were told
// "stored". With SyncWrites every write request is synced into the
// memtable WAL it went to (db.go writeToLSM, memtable.go doneWriting),
// whatever rotates.
//
// One batch is one transaction. loop sizes batches to fit; should Badger
// still find the transaction too big (our estimate was short), the
// requests before the one that did not fit are committed as one batch and
// the rest are committed after it as the next. A request that does not
// fit in a transaction alone, or whose writes Badger refuses (an empty or
// reserved key), fails alone: nothing of it was written, so the
// committer is not fenced.
//
// A failed commit (an fsync error, a full or vanished disk) fences the
// committer: every request of the batch gets the error, no applied
// function runs, and every later write is refused with an error matching
// ErrFenced, because what reached the disk is unknown (Badger may even
// serve the unsynced writes) until the store is reopened and replays its
// logs.
func (c *Committer) commit(batch []request) {
	for len(batch) > 0 {
		start := time.Now()
		if err := c.Fenced(); err != nil {
			c.answer(batch, err, start)
			return
		}
		txn := c.db.NewTransaction(true)
		n, err := c.fill(&txn, batch)
		if err != nil { // batch[n] alone is refused by Badger
			txn.Discard()
			c.answer(batch[n:n+1], err, start)
			batch = append(batch[:n:n], batch[n+1:]...)
			continue
		}
		err = c.opt.Commit(txn)
		c.txns.Add(1)
		if err != nil {
			err = fmt.Errorf("groupcommit: commit: %w", err)
			fenced := fmt.Errorf("%w: %w", ErrFenced, err)
			if c.fence.CompareAndSwap(nil, &fenced) && c.opt.OnFence != nil {
				c.opt.OnFence(err)
			}
		}
		c.answer(batch[:n], err, start)
		batch = batch[n:]
	}
}

// fill writes the requests of batch into *txn, from the first, and
// returns how many it wrote. It stops at the first request that does not
// fit after others (rebuilding *txn without its partial writes); a
// request Badger refuses alone is reported as its index and error, with
// *txn holding the requests before it.
func (c *Committer) fill(txn **badger.Txn, batch []request) (n int, err error) {
	for i, r := range batch {
		err := setOps(*txn, r.ops)
		if err == nil {
			continue
		}
		// The request may have left writes in the transaction: rebuild it
		// with the requests before it.
		(*txn).Discard()
		*txn = c.db.NewTransaction(true)
		for _, p := range batch[:i] {
			if err := setOps(*txn, p.ops); err != nil {
				return 0, err // cannot happen: they fitted a moment ago
			}
		}
		if errors.Is(err, badger.ErrTxnTooBig) && i > 0 {
			return i, nil
		}
		return i, err
	}
	return len(batch), nil
}

// answer completes the requests of one transaction: each applied function
// (on success) then each writer's answer, in order.
func (c *Committer) answer(reqs []request, err error, start time.Time) {
	if c.opt.OnBatch != nil {
		ops := 0
		for _, r := range reqs {
			ops += len(r.ops)
		}
		c.opt.OnBatch(Batch{Requests: len(reqs), Ops: ops, Took: time.Since(start), Err: err})
	}
	for _, r := range reqs {
		if err == nil && r.applied != nil {
			r.applied()
		}
		r.done <- err
	}
}

// setOps writes ops into txn.
func setOps(txn *badger.Txn, ops []Op) error {
	for _, op := range ops {
		var err error
		if op.Delete {
			err = txn.Delete(op.Key)
		} else {
			e := badger.NewEntry(op.Key, op.Value)
			if op.TTL > 0 {
				e = e.WithTTL(op.TTL)
			}
			err = txn.SetEntry(e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Close refuses further writes, waits for the queued ones to be written
// (or refused, when fenced) and stops the committer.
func (c *Committer) Close() {
	c.closeMu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.closeMu.Unlock()
	c.wg.Wait()
}

// Read reads key from db: fn, if not nil, sees its value (valid only
// during the call). A missing key is found == false, not an error.
func Read(db *badger.DB, key []byte, fn func(v []byte)) (found bool, err error) {
	err = db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		if fn == nil {
			return nil
		}
		return it.Value(func(v []byte) error { fn(v); return nil })
	})
	return found, err
}
