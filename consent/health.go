package consent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Failed reports whether the store is fenced: a commit failed (an fsync
// error, a vanished or full disk), so every write is refused with
// ErrStoreFailed until Reopen succeeds. Check keeps answering from the
// memory index, which holds every change that was synced and none other.
func (s *Store) Failed() bool { return s.failed.Load() }

// ErrStoreLost is returned by Reopen when the store's directory no longer
// holds its Badger files (deleted, or replaced by an empty directory):
// reopening would start an empty store and forget every opt-out, so the
// store stays fenced until the process restarts on a restored directory.
var ErrStoreLost = errors.New("consent: store files are gone; restore the directory and restart")

// Reopen lifts the fence of a failed store (see Failed). It waits for
// in-flight writers, stops the committer, closes Badger and opens it again
// (Badger replays its write-ahead logs), then brings the memory index in
// line with what is on disk and lets writes in again. It does nothing on a
// healthy store.
//
// Reopen may block as long as Badger's Close does, which on a disk still
// failing is forever (its memtable flush retries every second): call it
// only once a probe write and fsync on the store's filesystem succeed, and
// from a goroutine whose wait is bounded by its caller.
//
// A change whose commit failed may or may not be on disk after the
// reopen; its writer was told it failed (the SMSC retries an MO, the API
// answered 503). The index takes every record as read from disk: a failed
// change that did land is honoured. A record the failed batch deleted on
// disk stays in the index until the next change of that recipient or a
// restart (it can only make Check stricter).
func (s *Store) Reopen() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if !s.failed.Load() {
		return nil
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Dir, badger.ManifestFilename)); err != nil {
		return fmt.Errorf("%w: %v", ErrStoreLost, err)
	}
	if !s.db.IsClosed() {
		// Stop the committer and the reply reaper (writers are out: we
		// hold closeMu), then close Badger.
		close(s.quit)
		s.wg.Wait()
		s.quit = make(chan struct{})
		if err := s.db.Close(); err != nil {
			s.log.Warn("consent store: close before reopen", "err", err)
		}
	}
	start := time.Now()
	db, err := badger.Open(s.opts)
	if err != nil {
		return fmt.Errorf("%w: reopen %s: %v", ErrStorage, s.cfg.Dir, err)
	}
	s.db = db
	n, changed, err := s.reloadIndex()
	if err != nil {
		// Keep the fence: the index may miss what is on disk. Badger stays
		// open for reads; the next Reopen closes it again.
		return err
	}
	s.start()
	s.failed.Store(false)
	s.log.Info("consent store reopened; writes accepted again", "records", n, "index_updates", changed,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// reloadIndex makes the memory index agree with every record on disk: a
// record missing from the index or with another value is applied. Slots
// shared by colliding records are left alone (Check reads Badger for them).
func (s *Store) reloadIndex() (n, changed int, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pfxRecord, 0}
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var r rec
			if err := item.Value(r.unmarshal); err != nil {
				return fmt.Errorf("%w: record %q: %v", ErrStorage, item.Key(), err)
			}
			n++
			home, tag := s.idx.hashKey(item.Key())
			v, present, ambiguous := s.idx.get(home, tag)
			switch {
			case ambiguous:
			case !present:
				s.idx.apply(home, tag, false, true, r.packed())
				changed++
			case v != r.packed():
				s.idx.apply(home, tag, true, true, r.packed())
				changed++
			}
		}
		return nil
	})
	return n, changed, err
}

// view runs a read transaction on the open Badger database. It holds
// closeMu for reading, so Close and Reopen (which replace or close s.db)
// wait for it; it must not be called with closeMu already held.
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if s.db.IsClosed() {
		return ErrStoreFailed // a Reopen closed it and could not open it again
	}
	return s.db.View(fn)
}
