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

type Op struct {
	Key, Value []byte
	TTL        time.Duration
	Delete     bool
}

type Batch struct {
	Requests, Ops int
	Took          time.Duration // building and committing (fsync) the transaction
	Err           error         // nil, or why the batch's requests failed
}

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

var doneChans = sync.Pool{New: func() any { return make(chan error, 1) }}

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

func (c *Committer) Write(ops ...Op) error { return c.submit(ops, nil) }

func (c *Committer) WriteLazy(ops ...Op) error { return c.submit(ops, nil) }

func (c *Committer) Apply(ops []Op, applied func()) error { return c.submit(ops, applied) }

func (c *Committer) Transactions() int64 { return c.txns.Load() }

func (c *Committer) Fenced() error {
	if p := c.fence.Load(); p != nil {
		return *p
	}
	return nil
}

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

func (c *Committer) estimate(ops []Op) (count, size int64) {
	for _, op := range ops {
		size += int64(len(op.Key) + len(op.Value) + 64) // generous per-entry overhead
	}
	return int64(len(ops)), size
}

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

func (c *Committer) Close() {
	c.closeMu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.closeMu.Unlock()
	c.wg.Wait()
}

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
