package consent

import (
	"errors"
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
// The committer takes the requests already queued (up to MaxBatch, and only
// as many as fit in one Badger transaction: the first request that would
// take the transaction past 3/4 of Badger's batch count or size waits for
// the next batch; a request is never split), writes them in ONE Badger
// transaction and commits it. Badger runs with SyncWrites on (see Open), so
// that commit returns only after the transaction's entries are fsynced in
// the WAL of the memtable that received them: one fsync per batch, shared
// by every request in it. Only then does the committer apply the
// memory-index changes in order and answer every request. While one batch
// syncs, the next one queues up, so concurrent writers share the fsync cost.
//
// One transaction per batch matters: with several transactions synced once
// at the end by db.Sync, a memtable rotation between them would leave the
// earlier ones in an old WAL that db.Sync does not sync (see Open).
//
// If the commit fails, every request of the batch gets an error wrapping
// ErrStorage, no memory change is applied, and the store is marked failed:
// after a failed fsync what is on disk is unknown (Badger may even serve
// the unsynced data), so further writes are refused with ErrStoreFailed
// until the store is reopened and replays its logs.
func (s *Store) committer() {
	defer s.wg.Done()
	maxBatch := s.cfg.MaxBatch
	maxCount, maxSize := s.db.MaxBatchCount()*3/4, s.db.MaxBatchSize()*3/4
	batch := make([]*commitReq, 0, maxBatch)
	var carry *commitReq // the request that did not fit in the previous batch
	for {
		r := carry
		carry = nil
		if r == nil {
			select {
			case r = <-s.reqs:
			case <-s.quit:
				// Close waits for writers first, so the queue is empty here.
				return
			}
		}
		batch = append(batch[:0], r)
		count, size := int64(len(r.ops)), r.size
	fill:
		for len(batch) < maxBatch {
			select {
			case r = <-s.reqs:
				n := int64(len(r.ops))
				if count+n > maxCount || size+r.size > maxSize {
					carry = r // first in the next batch (and its transaction)
					break fill
				}
				batch = append(batch, r)
				count += n
				size += r.size
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
	s.metrics.syncSeconds.Observe(time.Since(start).Seconds())
	s.metrics.batchSize.Observe(float64(len(batch)))
	if errors.Is(err, badger.ErrTxnTooBig) {
		// Nothing was written: refuse the batch (a lone request too big for
		// any transaction) without fencing the store.
		for _, r := range batch {
			r.done <- err
		}
		return
	}
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

// writeBatch writes every request of the batch in one transaction and
// commits it (synced: SyncWrites is on). The committer sized the batch to
// fit; a single request too big for a transaction fails with an error
// matching ErrStorage and badger.ErrTxnTooBig, and the store stays usable.
func (s *Store) writeBatch(batch []*commitReq) error {
	txn := s.db.NewTransaction(true)
	for _, r := range batch {
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
				return fmt.Errorf("%w: write: %w", ErrStorage, err)
			}
		}
	}
	if err := s.commitTxn(txn); err != nil {
		return fmt.Errorf("%w: commit: %v", ErrStorage, err)
	}
	return nil
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
