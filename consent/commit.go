package consent

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
)

// op is one Badger mutation of a change.
type op = groupcommit.Op

// memOp is one memory-index change, applied after the sync succeeded.
type memOp struct {
	home, tag       uint64
	existed, exists bool
	v               uint8
}

// Group commit is internal/groupcommit's: writers hand their ops (and the
// memory-index changes they imply) to the committer and wait; concurrent
// changes share one synced transaction, and only after its sync does the
// committer apply their memory-index changes, in order, and answer them.
// Badger runs with SyncWrites on (see Open).
//
// If a commit fails, every change of the batch gets an error wrapping
// ErrStorage, no memory change is applied, and the store is marked failed
// (OnFence): after a failed fsync what is on disk is unknown (Badger may
// even serve the unsynced data), so further writes are refused with
// ErrStoreFailed until Reopen starts a new committer on the reopened DB. A
// change too big for one transaction fails alone, with an error matching
// ErrStorage and badger.ErrTxnTooBig, and the store stays usable.

// start starts the group committer on s.db and the reply reaper, which is
// the committer's last writer and closes it when it stops. Callers hold
// closeMu for writing or are Open.
func (s *Store) start() {
	s.commit = groupcommit.New(s.db, groupcommit.Options{
		MaxBatch: s.cfg.MaxBatch,
		Commit:   func(txn *badger.Txn) error { return s.commitTxn(txn) },
		OnBatch:  s.observeBatch,
		OnFence: func(err error) {
			s.failed.Store(true)
			s.log.Error("consent store failed; writes refused until reopened", "err", err)
		},
	})
	s.wg.Add(1)
	go s.replyReaper(s.commit)
}

func (s *Store) observeBatch(b groupcommit.Batch) {
	s.metrics.syncSeconds.Observe(b.Took.Seconds())
	s.metrics.batchSize.Observe(float64(b.Requests))
	if b.Err != nil && !errors.Is(b.Err, badger.ErrTxnTooBig) {
		s.metrics.commitErrors.Inc()
	}
}

func (s *Store) failedErr() error {
	if s.failed.Load() {
		return ErrStoreFailed
	}
	return nil
}

// submit hands ops to the committer and waits until they are synced (nil) or
// failed, then, with a Replicator, until the replicated ops are held by a
// quorum of the cluster. The memory index reflects mem only after a nil
// return (and already when only the replication failed: the local change
// stays, which only blocks more). Callers hold closeMu for reading
// (begin).
func (s *Store) submit(ops []op, mem []memOp) error {
	if err := s.write(ops, mem, 0); err != nil {
		return err
	}
	if s.cfg.Replicator != nil {
		return s.replicate(ops)
	}
	return nil
}

// write is the local, synced part of submit; a seq above 0 (a replicated
// record, written with its ops) becomes AppliedSeq once synced.
func (s *Store) write(ops []op, mem []memOp, seq uint64) error {
	if len(ops) == 0 {
		return nil
	}
	if err := s.failedErr(); err != nil {
		return err
	}
	var applied func()
	if len(mem) > 0 || seq > 0 {
		applied = func() {
			for _, m := range mem {
				s.idx.apply(m.home, m.tag, m.existed, m.exists, m.v)
			}
			if seq > 0 {
				s.applied.Store(seq)
			}
		}
	}
	switch err := s.commit.Apply(ops, applied); {
	case err == nil:
		return nil
	case errors.Is(err, groupcommit.ErrFenced):
		return ErrStoreFailed
	default:
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
}
