package consent

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// op is one Badger mutation.
type op struct {
	key, val []byte
	del      bool
	ttl      time.Duration
}

// memOp is one memory-index change, applied after the sync succeeded.
type memOp struct {
	home, tag       uint64
	existed, exists bool
	v               uint8
}

// commitReq is one atomic change: all its ops land in one Badger
// transaction, and the caller learns the outcome on done.
type commitReq struct {
	ops  []op
	mem  []memOp
	size int64
	done chan error
}

// Group commit. Writers hand a commitReq to the committer goroutine and wait.
// The committer takes every request already queued (up to MaxBatch), writes
// them in as few Badger transactions as the size limits allow (a request is
// never split), calls db.Sync once (Badger runs with SyncWrites=false, so the
// transactions reach the memtable WAL and value log without fsync and Sync
// makes them durable together), then applies the memory-index changes in
// order and only then answers every request. While one batch syncs, the next
// one queues up, so the fsync cost is shared by all concurrent writers.
//
// If a commit or the sync fails, every request of the batch gets an error
// wrapping ErrStorage, no memory change is applied, and the store is marked
// failed: after a failed fsync what is on disk is unknown (Badger may even
// serve the unsynced data), so further writes are refused with
// ErrStoreFailed until the store is reopened and replays its logs.
func (s *Store) committer() {
	defer s.wg.Done()
	maxBatch := s.cfg.MaxBatch
	batch := make([]*commitReq, 0, maxBatch)
	for {
		var r *commitReq
		select {
		case r = <-s.reqs:
		case <-s.quit:
			// Close waits for writers first, so the queue is empty here.
			return
		}
		batch = append(batch[:0], r)
	fill:
		for len(batch) < maxBatch {
			select {
			case r = <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commitBatch(batch)
		clear(batch)
	}
}

func (s *Store) commitBatch(batch []*commitReq) {
	start := time.Now()
	err := s.failedErr()
	if err == nil {
		err = s.writeBatch(batch)
	}
	if err == nil {
		if err = s.sync(); err != nil {
			err = fmt.Errorf("%w: sync: %v", ErrStorage, err)
		}
	}
	s.metrics.syncSeconds.Observe(time.Since(start).Seconds())
	s.metrics.batchSize.Observe(float64(len(batch)))
	if err != nil {
		if s.failed.CompareAndSwap(false, true) {
			s.log.Error("consent store failed; writes refused until reopened", "err", err)
		}
		s.metrics.commitErrors.Inc()
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	for _, r := range batch {
		for _, m := range r.mem {
			s.idx.apply(m.home, m.tag, m.existed, m.exists, m.v)
		}
		r.done <- nil
	}
}

// writeBatch writes the requests, packing several into one transaction while
// it stays well below Badger's size limits.
func (s *Store) writeBatch(batch []*commitReq) error {
	maxCount, maxSize := s.db.MaxBatchCount()*3/4, s.db.MaxBatchSize()*3/4
	var (
		txn         *badger.Txn
		count, size int64
	)
	flush := func() error {
		if txn == nil {
			return nil
		}
		err := txn.Commit()
		txn, count, size = nil, 0, 0
		if err != nil {
			return fmt.Errorf("%w: commit: %v", ErrStorage, err)
		}
		return nil
	}
	for _, r := range batch {
		n := int64(len(r.ops))
		if txn != nil && (count+n > maxCount || size+r.size > maxSize) {
			if err := flush(); err != nil {
				return err
			}
		}
		if txn == nil {
			txn = s.db.NewTransaction(true)
		}
		for _, o := range r.ops {
			var err error
			if o.del {
				err = txn.Delete(o.key)
			} else {
				e := badger.NewEntry(o.key, o.val)
				if o.ttl > 0 {
					e = e.WithTTL(o.ttl)
				}
				err = txn.SetEntry(e)
			}
			if err != nil {
				txn.Discard()
				return fmt.Errorf("%w: write: %v", ErrStorage, err)
			}
		}
		count += n
		size += r.size
	}
	return flush()
}

func (s *Store) failedErr() error {
	if s.failed.Load() {
		return ErrStoreFailed
	}
	return nil
}

// submit hands ops to the committer and waits until they are synced (nil) or
// failed. The memory index reflects mem only after a nil return.
func (s *Store) submit(ops []op, mem []memOp) error {
	if len(ops) == 0 {
		return nil
	}
	if err := s.failedErr(); err != nil {
		return err
	}
	r := &commitReq{ops: ops, mem: mem, done: make(chan error, 1)}
	for _, o := range ops {
		r.size += int64(len(o.key) + len(o.val) + 64)
	}
	s.reqs <- r
	return <-r.done
}
