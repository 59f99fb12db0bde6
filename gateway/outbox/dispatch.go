package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
)

// pollEvery is how often a kind's due items are scanned when no Put woke
// it (retries come due without a Put).
const pollEvery = 200 * time.Millisecond

// asyncCloseWait is how long Close waits for the done of asynchronous
// deliveries in flight.
const asyncCloseWait = 40 * time.Second

// kind is a registered Kind with its dispatcher's state.
type kind struct {
	Kind
	kick chan struct{} // a Put wakes the dispatcher
	mu   sync.Mutex
	busy map[string]bool // ids being worked; guarded by mu
	// finished holds the ids settled since the dispatcher's current scan
	// began: that scan's snapshot may still hold their old keys, which
	// must not be dispatched again. Guarded by mu.
	finished   map[string]struct{}
	tenantBusy map[string]int // items being worked per tenant; guarded by mu
	// held holds the ids whose result the store refused to write (see
	// release); they are not handed out while the committer is fenced.
	// Guarded by mu.
	held map[string]struct{}
}

// take marks it as being worked unless it is already, was settled during
// the current scan, or its tenant is at its cap.
func (k *kind) take(it *Item) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, fin := k.finished[it.ID]; fin || k.busy[it.ID] {
		return false
	}
	if _, held := k.held[it.ID]; held {
		return false
	}
	if k.PerTenant > 0 && k.tenantBusy[it.Tenant] >= k.PerTenant {
		return false
	}
	k.busy[it.ID] = true
	k.tenantBusy[it.Tenant]++
	return true
}

// untake gives back an item take claimed that was not handed out.
func (k *kind) untake(it *Item) {
	k.mu.Lock()
	delete(k.busy, it.ID)
	if k.tenantBusy[it.Tenant]--; k.tenantBusy[it.Tenant] <= 0 {
		delete(k.tenantBusy, it.Tenant)
	}
	k.mu.Unlock()
}

// release ends the work on it. written tells whether its result was
// written: if not (the store refuses writes: a committer fenced after a
// failed commit), it is held: not handed out again while the committer
// stays fenced (a delivered item would be delivered again every scan); it
// waits, stored, for the fence to be lifted or for the next run.
func (k *kind) release(it *Item, written bool) {
	k.mu.Lock()
	delete(k.busy, it.ID)
	if written {
		k.finished[it.ID] = struct{}{}
	} else {
		k.held[it.ID] = struct{}{}
	}
	if k.tenantBusy[it.Tenant]--; k.tenantBusy[it.Tenant] <= 0 {
		delete(k.tenantBusy, it.Tenant)
	}
	k.mu.Unlock()
}

// newScan forgets the ids settled before a scan starts (their writes
// committed before its snapshot was taken) and, when the store takes
// writes again (healthy), the held ones.
func (k *kind) newScan(healthy bool) {
	k.mu.Lock()
	clear(k.finished)
	if healthy && len(k.held) > 0 {
		clear(k.held)
	}
	k.mu.Unlock()
}

// asyncResult is the end of one item of an async kind.
type asyncResult struct {
	it     *Item
	err    error
	cancel context.CancelFunc
}

// dispatchAsync feeds an async kind: it starts items as in-flight slots
// free up, and a few settlers write their results (the callbacks may come
// on connection goroutines, which must not wait for a sync).
func (s *Store) dispatchAsync(k *kind) {
	defer s.wg.Done()
	sem := make(chan struct{}, k.Inflight)
	results := make(chan asyncResult, k.Inflight) // never full: one slot per item in flight
	var settlers sync.WaitGroup
	for range 4 {
		settlers.Add(1)
		go func() {
			defer settlers.Done()
			for r := range results {
				r.cancel()
				k.release(r.it, s.settle(k, r.it, r.err))
				<-sem
			}
		}()
	}
	var started sync.WaitGroup // items whose done has not been called yet
	defer func() {
		// The callers stop what delivers (the links) before Close, so
		// every item in flight ends soon; do not wait forever for one
		// that does not.
		waited := make(chan struct{})
		go func() { started.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(asyncCloseWait):
			s.log.Error("outbox: items still in flight at close", "kind", k.Name)
			return // the settlers are left to finish (their writes fail once the committer is closed)
		}
		close(results)
		settlers.Wait()
	}()
	s.poll(k, func(it *Item) bool {
		select {
		case sem <- struct{}{}:
		case <-s.stop:
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), k.Timeout)
		started.Add(1)
		var once sync.Once
		k.DeliverAsync(ctx, it, func(err error) {
			once.Do(func() {
				results <- asyncResult{it: it, err: err, cancel: cancel}
				started.Done()
			})
		})
		return true
	})
}

// poll scans k's due items every pollEvery, or at once when kicked, until
// the store stops, and hands each item it claims (take) to hand; an item
// hand refuses (false: the store is stopping) is given back and the scan
// ends.
func (s *Store) poll(k *kind, hand func(it *Item) bool) {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		k.newScan(s.commit.Fenced() == nil)
		s.scan(k.Name, time.Now(), func(it *Item, _ []byte) bool {
			if !k.take(it) {
				return true
			}
			if !hand(it) {
				k.untake(it)
				return false
			}
			return true
		})
		select {
		case <-s.stop:
			return
		case <-k.kick:
		case <-t.C:
		}
	}
}

// scan calls fn for the items of kind due before limit, in due order,
// until fn returns false.
func (s *Store) scan(kind string, limit time.Time, fn func(it *Item, key []byte) bool) {
	prefix := []byte("ob/" + kind + "/")
	end := itemKey(kind, limit, "")
	_ = s.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			key := it.Item().KeyCopy(nil)
			if bytes.Compare(key, end) > 0 {
				return nil
			}
			var item Item
			err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &item) })
			if err != nil {
				s.log.Error("outbox: unreadable item", "kind", kind, "err", err)
				continue
			}
			if !fn(&item, key) {
				return nil
			}
		}
		return nil
	})
}

func (s *Store) dispatch(k *kind, work chan<- *Item) {
	defer s.wg.Done()
	defer close(work)
	s.poll(k, func(it *Item) bool {
		select {
		case work <- it:
			return true
		case <-s.stop:
			return false
		}
	})
}

func (s *Store) worker(k *kind, work <-chan *Item) {
	defer s.wg.Done()
	for it := range work {
		ctx, cancel := context.WithTimeout(context.Background(), k.Timeout)
		err := k.Deliver(ctx, it)
		cancel()
		k.release(it, s.settle(k, it, err))
	}
}

// settle writes the result of one attempt: delivered items are removed,
// items given up are removed after GiveUp, anything else is rescheduled
// with back-off. It returns once the write committed (k.release relies
// on it), and whether it did.
func (s *Store) settle(k *kind, it *Item, err error) bool {
	oldKey := itemKey(k.Name, it.Due, it.ID)
	switch {
	case err == nil:
		// Removing done work need not be synced: if the removal is lost
		// in a crash the work is redone (at least once).
		if werr := s.commit.WriteLazy(groupcommit.Op{Key: oldKey, Delete: true}); werr != nil {
			s.log.Error("outbox: cannot remove done item", "kind", k.Name, "id", it.ID, "err", werr)
			return false
		}
		k.Depth(-1)
		return true
	case IsPermanent(err) || (k.MaxAge > 0 && time.Since(it.Created) > k.MaxAge):
		s.log.Warn("outbox: giving up", "kind", k.Name, "id", it.ID, "attempts", it.Attempts+1, "err", err)
		if k.GiveUp != nil {
			if !IsPermanent(err) {
				err = fmt.Errorf("%w: %w", ErrExpired, err)
			}
			k.GiveUp(it, err)
		}
		if werr := s.commit.Write(groupcommit.Op{Key: oldKey, Delete: true}); werr != nil {
			s.log.Error("outbox: cannot remove an item given up", "kind", k.Name, "id", it.ID, "err", werr)
			return false
		}
		k.Depth(-1)
		return true
	}
	it.Attempts++
	it.LastErr = err.Error()
	back := Backoff(it.Attempts, k.MaxBackoff)
	it.Due = time.Now().Add(back)
	v, _ := json.Marshal(it)
	if werr := s.commit.Write(groupcommit.Op{Key: oldKey, Delete: true}, groupcommit.Op{Key: itemKey(k.Name, it.Due, it.ID), Value: v}); werr != nil {
		s.log.Error("outbox: cannot reschedule", "kind", k.Name, "id", it.ID, "err", werr)
		return false
	}
	s.log.Debug("outbox: retry scheduled", "kind", k.Name, "id", it.ID, "attempt", it.Attempts, "in", back, "err", err)
	return true
}
