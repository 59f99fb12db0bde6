package gateway

import (
	"errors"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrStoreClosed is returned for writes after the gateway store closed.
var ErrStoreClosed = errors.New("gateway: store closed")

// kv is one write: a set, or a delete when del is true.
type kv struct {
	key, val []byte
	ttl      time.Duration
	del      bool
}

type commitReq struct {
	ops    []kv
	noSync bool // a write that may be lost in a crash (e.g. removing finished work)
	done   chan error
}

// committer batches concurrent writes into one Badger transaction and one
// fsync (group commit): a caller learns "stored" only after the sync.
type committer struct {
	db      *badger.DB
	reqs    chan commitReq
	wg      sync.WaitGroup
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu
	onBatch func(n int, d time.Duration)
}

func newCommitter(db *badger.DB, onBatch func(int, time.Duration)) *committer {
	c := &committer{db: db, reqs: make(chan commitReq, 4096), onBatch: onBatch}
	c.wg.Add(1)
	go c.loop()
	return c
}

// write stores ops durably and returns once they are synced.
func (c *committer) write(ops ...kv) error { return c.submit(false, ops) }

// writeLazy stores ops in the next batch without asking for a sync of its
// own: for writes whose loss in a crash is harmless (the outbox redoing
// work it had finished, at least once).
func (c *committer) writeLazy(ops ...kv) error { return c.submit(true, ops) }

func (c *committer) submit(noSync bool, ops []kv) error {
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return ErrStoreClosed
	}
	r := commitReq{ops: ops, noSync: noSync, done: make(chan error, 1)}
	c.reqs <- r
	c.closeMu.RUnlock()
	return <-r.done
}

func (c *committer) loop() {
	defer c.wg.Done()
	const maxOps = 2048
	for first := range c.reqs {
		batch := []commitReq{first}
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
		err := c.apply(batch)
		if c.onBatch != nil {
			c.onBatch(n, time.Since(start))
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (c *committer) apply(batch []commitReq) error {
	needSync := false
	for _, r := range batch {
		needSync = needSync || !r.noSync
	}
	wb := c.db.NewWriteBatch()
	for _, r := range batch {
		for _, op := range r.ops {
			var err error
			if op.del {
				err = wb.Delete(op.key)
			} else {
				e := badger.NewEntry(op.key, op.val)
				if op.ttl > 0 {
					e = e.WithTTL(op.ttl)
				}
				err = wb.SetEntry(e)
			}
			if err != nil {
				wb.Cancel()
				return err
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	if !needSync {
		return nil
	}
	return c.db.Sync()
}

func (c *committer) close() {
	c.closeMu.Lock()
	if !c.closed {
		c.closed = true
		close(c.reqs)
	}
	c.closeMu.Unlock()
	c.wg.Wait()
}
