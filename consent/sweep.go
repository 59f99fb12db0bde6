package consent

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// SweepReport counts what one Sweep did.
type SweepReport struct {
	Archived int // conversation.archived events emitted
	Expired  int // held messages expired (message.held_expired events)
}

// sweepLimit bounds the work of one Sweep call (Run calls it again).
const sweepLimit = 10000

// Sweep emits the events that are due at now: conversation.archived for
// opt-outs ArchiveAfter old and not lifted, and message.held_expired for
// held messages past their TTL. Each event goes to Config.OnEvent and is
// then removed from the durable schedule, in one synced change per event,
// under the recipient's stripe lock so it cannot race a re-subscription
// (which cancels the schedule). If OnEvent fails the event stays scheduled
// and Sweep stops, returning the error.
//
// Delivery is exactly once as long as the process does not die between
// OnEvent returning and the removal being synced; if it does, the event is
// emitted again after restart with the same Event.ID (at-least-once with a
// stable ID), which consumers must use to deduplicate.
func (s *Store) Sweep(now time.Time) (SweepReport, error) {
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	var rep SweepReport
	for _, pfx := range []byte{pfxArchive, pfxExpiry} {
		keys, err := s.dueKeys(pfx, now)
		if err != nil {
			return rep, err
		}
		for _, k := range keys {
			var ok bool
			if pfx == pfxArchive {
				ok, err = s.archiveOne(k)
				if ok {
					rep.Archived++
				}
			} else {
				ok, err = s.expireOne(k)
				if ok {
					rep.Expired++
				}
			}
			if err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// dueKeys lists up to sweepLimit keys of a timed prefix due at now.
func (s *Store) dueKeys(pfx byte, now time.Time) ([][]byte, error) {
	var keys [][]byte
	limit := binary.BigEndian.AppendUint64([]byte{pfx, 0}, uint64(now.UnixNano()))
	err := s.view(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = []byte{pfx, 0}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid() && len(keys) < sweepLimit; it.Next() {
			k := it.Item().Key()
			if len(k) >= 10 && string(k[:10]) > string(limit) {
				break
			}
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: sweep scan: %v", ErrStorage, err)
	}
	return keys, nil
}

func (s *Store) emit(e Event) error {
	s.metrics.events.WithLabelValues(e.Type).Inc()
	if s.cfg.OnEvent == nil {
		return nil
	}
	return s.cfg.OnEvent(e)
}

func (s *Store) archiveOne(k []byte) (bool, error) {
	due, f, err := parseTimedKey(k)
	if err != nil {
		return false, err
	}
	tn, ch, rcpt, scope := f[0], f[1], f[2], f[3]
	t := s.tenants[tn]
	if err := s.begin(); err != nil {
		return false, err
	}
	defer s.end()
	mu := &s.stripes[s.stripe(tn, rcpt)]
	mu.Lock()
	defer mu.Unlock()
	if t == nil { // tenant removed from the configuration: drop its schedule
		return false, s.submit([]op{{Key: k, Delete: true}}, nil)
	}
	c := s.newChange(t)
	defer c.discard()
	if ok, err := c.exists(k); err != nil || !ok {
		return false, err // cancelled meanwhile
	}
	r, err := c.rec(ch, rcpt, scope)
	if err != nil {
		return false, err
	}
	c.del(k)
	emitted := false
	if r.r.archiveDue == due && r.r.flags&fAll != 0 {
		ev := Event{ID: "archive-" + strconv.FormatUint(uint64(due), 36) + "-" + strconv.FormatUint(stableHash(k), 36),
			Type: EventArchived, Tenant: tn, Channel: ch, Sender: scope, Recipient: rcpt, Time: time.Unix(0, due).UTC()}
		if err := s.emit(ev); err != nil {
			return false, err
		}
		emitted = true
		r.r.archiveDue = 0
		c.mark(r)
	}
	return emitted, c.commit()
}

func (s *Store) expireOne(k []byte) (bool, error) {
	_, f, err := parseTimedKey(k)
	if err != nil {
		return false, err
	}
	tn, ch, rcpt, id := f[0], f[1], f[2], f[3]
	t := s.tenants[tn]
	if err := s.begin(); err != nil {
		return false, err
	}
	defer s.end()
	mu := &s.stripes[s.stripe(tn, rcpt)]
	mu.Lock()
	defer mu.Unlock()
	hk := heldKey(tn, ch, rcpt, id)
	if t == nil {
		return false, s.submit([]op{{Key: k, Delete: true}, {Key: hk, Delete: true}}, nil)
	}
	c := s.newChange(t)
	defer c.discard()
	item, err := c.txn.Get(hk)
	if err != nil {
		c.del(k) // released or dropped meanwhile: remove the stale index entry
		return false, c.commit()
	}
	h := HeldMessage{ID: id, Tenant: tn, Channel: ch, Recipient: rcpt}
	if err := item.Value(func(v []byte) error { return unmarshalHeld(v, &h) }); err != nil {
		return false, fmt.Errorf("%w: held message: %v", ErrStorage, err)
	}
	if err := s.emit(Event{ID: "expired-" + id, Type: EventHeldExpired, Tenant: tn, Channel: ch,
		Sender: h.Sender, Recipient: rcpt, Time: h.ExpiresAt, Held: &h}); err != nil {
		return false, err
	}
	c.del(k)
	c.del(hk)
	if err := c.commit(); err != nil {
		return false, err
	}
	s.metrics.held.Dec()
	return true, nil
}

// Run calls Sweep every interval until ctx ends, logging errors.
func (s *Store) Run(ctx context.Context, interval time.Duration) error {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		if _, err := s.Sweep(s.clock()); err != nil {
			s.log.Error("consent sweep", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
		}
	}
}

// stableHash is an FNV-1a hash of b, stable across processes (event IDs).
func stableHash(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
