// Package groupcommit writes to a Badger store in group commits: many
// concurrent writers share one transaction and so one fsync, and each
// learns "stored" only after the sync that holds its writes.
//
// The store must be opened WithSyncWrites(true): see Committer.apply for
// why one db.Sync per batch is not durable.
package groupcommit

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrClosed is returned for writes after Close.
var ErrClosed = errors.New("groupcommit: store closed")

// Op is one write: a set of Key to Value (expiring after TTL if it is
// positive), or a delete of Key when Delete is true.
type Op struct {
	Key, Value []byte
	TTL        time.Duration
	Delete     bool
}

type request struct {
	ops  []Op
	done chan error
}

// Committer batches concurrent writes into Badger transactions (group
// commit). It is safe for concurrent use.
type Committer struct {
	db      *badger.DB
	reqs    chan request
	wg      sync.WaitGroup
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu
	onBatch func(n int, d time.Duration)
	txns    atomic.Int64 // transactions committed
}

// New starts a committer on db. onBatch, if not nil, is called after each
// batch with its number of ops and how long it took.
func New(db *badger.DB, onBatch func(ops int, took time.Duration)) *Committer {
	c := &Committer{db: db, reqs: make(chan request, 4096), onBatch: onBatch}
	c.wg.Add(1)
	go c.loop()
	return c
}

// Write stores ops durably, all in one transaction, and returns once they
// are synced.
func (c *Committer) Write(ops ...Op) error { return c.submit(ops) }

// WriteLazy is Write for writes whose loss in a crash would be harmless
// (a queue redoing work it had finished, at least once). Every write to
// the store is synced (see apply), so it is Write under another name:
// these writes share the batches of the others, which is what keeps their
// fsyncs few.
func (c *Committer) WriteLazy(ops ...Op) error { return c.submit(ops) }

// Transactions is the number of transactions committed so far.
func (c *Committer) Transactions() int64 { return c.txns.Load() }

func (c *Committer) submit(ops []Op) error {
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return ErrClosed
	}
	r := request{ops: ops, done: make(chan error, 1)}
	c.reqs <- r
	c.closeMu.RUnlock()
	return <-r.done
}

func (c *Committer) loop() {
	defer c.wg.Done()
	const maxOps = 2048
	for first := range c.reqs {
		batch := []request{first}
		n := len(first.ops)
	more:
		for n < maxOps {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break more
				}
				batch = append(batch, r)
				n += len(r.ops)
			default:
				break more
			}
		}
		start := time.Now()
		c.apply(batch)
		if c.onBatch != nil {
			c.onBatch(n, time.Since(start))
		}
	}
}

// apply writes a batch in as few Badger transactions as its size allows
// and answers each request once the transaction holding its writes has
// committed. The store is opened WithSyncWrites(true), so each commit
// returns only after its WAL and value-log writes are fsynced.
//
// Why not unsynced writes and one db.Sync per batch: in badger v4.9.6
// DB.Sync syncs only the active memtable's WAL and the value log (db.go,
// DB.Sync). A memtable rotation (ensureRoomForWrite, db.go) between a
// commit and the Sync, caused by a batch split over several transactions
// or by any other write to the same DB, leaves the earlier entries in a
// WAL nobody syncs, while their callers were told "stored". With
// SyncWrites every write request is synced into the memtable WAL it went
// to (db.go writeToLSM, memtable.go doneWriting), whatever rotates.
//
// The cost is one fsync per transaction, so the batch is cut only at
// Badger's transaction limits (maxOps keeps a batch well below them);
// one request's writes are never split over two transactions.
func (c *Committer) apply(batch []request) {
	txn := c.db.NewTransaction(true)
	var pending []request // requests whose writes are in txn
	var count, size int64
	maxCount, maxSize := c.db.MaxBatchCount()/2, c.db.MaxBatchSize()/2
	flush := func() {
		err := txn.Commit()
		c.txns.Add(1)
		for _, r := range pending {
			r.done <- err
		}
		pending = pending[:0]
		count, size = 0, 0
		txn = c.db.NewTransaction(true)
	}
	// redo starts a new transaction holding the pending requests' writes.
	redo := func() error {
		txn.Discard()
		txn = c.db.NewTransaction(true)
		var err error
		for _, p := range pending {
			if e := setOps(txn, p.ops); e != nil {
				err = e
			}
		}
		return err
	}
	for _, r := range batch {
		var rc, rs int64
		for _, op := range r.ops {
			rc++
			rs += int64(len(op.Key) + len(op.Value) + 64) // generous per-entry overhead
		}
		if len(pending) > 0 && (count+rc > maxCount || size+rs > maxSize) {
			flush()
		}
		err := setOps(txn, r.ops)
		if errors.Is(err, badger.ErrTxnTooBig) && len(pending) > 0 {
			// Our estimate was short: commit what came before (this
			// request's partial writes are discarded with the
			// transaction) and retry it alone.
			if e := redo(); e != nil {
				err = e
			}
			flush()
			err = setOps(txn, r.ops)
		}
		if err != nil {
			r.done <- err
			// The failed request may have left writes in txn: start
			// over with the others.
			if perr := redo(); perr != nil {
				for _, p := range pending {
					p.done <- perr
				}
				pending = pending[:0]
				txn.Discard()
				txn = c.db.NewTransaction(true)
			}
			continue
		}
		pending = append(pending, r)
		count += rc
		size += rs
	}
	if len(pending) > 0 {
		flush()
	}
	txn.Discard()
}

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
// and stops the committer.
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
