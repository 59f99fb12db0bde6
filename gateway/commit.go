package gateway

import (
	"errors"
	"sync"
	"sync/atomic"
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
	ops  []kv
	done chan error
}

// committer batches concurrent writes into one Badger transaction and so
// one fsync (group commit): a caller learns "stored" only after the sync.
// The store must be opened WithSyncWrites(true): see apply.
type committer struct {
	db      *badger.DB
	reqs    chan commitReq
	wg      sync.WaitGroup
	closeMu sync.RWMutex
	closed  bool // guarded by closeMu
	onBatch func(n int, d time.Duration)
	txns    atomic.Int64 // transactions committed (tests)
}

func newCommitter(db *badger.DB, onBatch func(int, time.Duration)) *committer {
	c := &committer{db: db, reqs: make(chan commitReq, 4096), onBatch: onBatch}
	c.wg.Add(1)
	go c.loop()
	return c
}

// write stores ops durably and returns once they are synced.
func (c *committer) write(ops ...kv) error { return c.submit(ops) }

// writeLazy is write for writes whose loss in a crash would be harmless
// (the outbox redoing work it had finished, at least once). Every write
// to the store is synced (see apply), so it is write under another name:
// these writes share the batches of the others, which is what keeps their
// fsyncs few.
func (c *committer) writeLazy(ops ...kv) error { return c.submit(ops) }

func (c *committer) submit(ops []kv) error {
	c.closeMu.RLock()
	if c.closed {
		c.closeMu.RUnlock()
		return ErrStoreClosed
	}
	r := commitReq{ops: ops, done: make(chan error, 1)}
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
		c.apply(batch)
		if c.onBatch != nil {
			c.onBatch(n, time.Since(start))
		}
	}
}

// apply writes a batch in as few Badger transactions as its size allows
// and answers each request once the transaction holding its writes has
// committed. The gateway store is opened WithSyncWrites(true), so each
// commit returns only after its WAL and value-log writes are fsynced.
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
func (c *committer) apply(batch []commitReq) {
	txn := c.db.NewTransaction(true)
	var pending []commitReq // requests whose writes are in txn
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
	for _, r := range batch {
		var rc, rs int64
		for _, op := range r.ops {
			rc++
			rs += int64(len(op.key) + len(op.val) + 64) // generous per-entry overhead
		}
		if len(pending) > 0 && (count+rc > maxCount || size+rs > maxSize) {
			flush()
		}
		err := setOps(txn, r.ops)
		if errors.Is(err, badger.ErrTxnTooBig) && len(pending) > 0 {
			// Our estimate was short: commit what came before (this
			// request's partial writes are discarded with the
			// transaction) and retry it alone.
			txn.Discard()
			txn = c.db.NewTransaction(true)
			for _, p := range pending {
				if e := setOps(txn, p.ops); e != nil {
					err = e
				}
			}
			flush()
			err = setOps(txn, r.ops)
		}
		if err != nil {
			r.done <- err
			// The failed request may have left writes in txn: start
			// over with the others.
			txn.Discard()
			txn = c.db.NewTransaction(true)
			var perr error
			for _, p := range pending {
				if e := setOps(txn, p.ops); e != nil {
					perr = e
				}
			}
			if perr != nil {
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

func setOps(txn *badger.Txn, ops []kv) error {
	for _, op := range ops {
		var err error
		if op.del {
			err = txn.Delete(op.key)
		} else {
			e := badger.NewEntry(op.key, op.val)
			if op.ttl > 0 {
				e = e.WithTTL(op.ttl)
			}
			err = txn.SetEntry(e)
		}
		if err != nil {
			return err
		}
	}
	return nil
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

// readKey reads key from db: fn, if not nil, sees its value (valid only
// during the call). A missing key is found == false, not an error.
func readKey(db *badger.DB, key []byte, fn func(v []byte)) (found bool, err error) {
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
