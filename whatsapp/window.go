package whatsapp

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
)

// WindowDuration is the length of the customer service window opened by a user message.
const WindowDuration = 24 * time.Hour

// windowTTL is how long a window record is kept; well past WindowDuration so that a record
// never expires while its window could still be open.
const windowTTL = 2 * WindowDuration

const windowPrefix = "wa/window/"

// Window is the durable 24-hour customer service window per (phone-number-id, wa_id), kept in
// Badger under "wa/window/". A user message opens or refreshes it; a 131047 from Meta closes it
// until the next user message. It is safe for concurrent use.
//
// A record holds the last inbound time and the last closing time, 8 bytes each (Unix
// nanoseconds, big-endian); records expire after 48 h.
type Window struct {
	db  *badger.DB
	log *slog.Logger
	// mu serialises the read-modify-writes of records: Close and RecordBatch, and the spool's
	// window records, which are read here and written by its group commit (appendRecords).
	mu sync.Mutex
	// batch indexes the records of one appendRecords call by key; guarded by mu.
	batch map[string]int
	// observe, when set (Observe), is told of every change stored here.
	observe func(u WindowUpdate, closed bool)
}

// Observe sets fn, called after each user message (closed false) or close
// (closed true) this node records is stored, by RecordBatch, Close or the
// receiver's spool: a cluster shares them with the other nodes, which
// store them with Apply. fn must not block. Set it before the receiver
// starts.
func (w *Window) Observe(fn func(u WindowUpdate, closed bool)) { w.observe = fn }

func (w *Window) notify(ups []WindowUpdate, closed bool) {
	if w.observe == nil {
		return
	}
	for _, u := range ups {
		w.observe(u, closed)
	}
}

// Apply stores a window fact another node recorded: a user message at
// u.At, or a close at u.At when closed. Records only move forward, as
// with RecordBatch and Close, so facts applied late or twice change
// nothing; Apply is not observed.
func (w *Window) Apply(u WindowUpdate, closed bool) error {
	if closed {
		return w.close(u.PhoneNumberID, u.WaID, u.At)
	}
	return w.recordBatch([]WindowUpdate{u})
}

// NewWindow returns a Window stored in db. log may be nil.
func NewWindow(db *badger.DB, log *slog.Logger) *Window {
	if log == nil {
		log = slog.Default()
	}
	return &Window{db: db, log: log}
}

func windowKey(phoneNumberID, waID string) []byte {
	waID = recipientKey(waID)
	k := make([]byte, 0, len(windowPrefix)+len(phoneNumberID)+1+len(waID))
	k = append(k, windowPrefix...)
	k = append(k, phoneNumberID...)
	k = append(k, '/')
	return append(k, waID...)
}

type windowRecord struct {
	lastInbound int64 // Unix ns
	closedAt    int64 // Unix ns; 0 if never closed
}

func (r windowRecord) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(r.lastInbound))
	binary.BigEndian.PutUint64(b[8:], uint64(r.closedAt))
	return b
}

func decodeWindow(b []byte) windowRecord {
	if len(b) < 16 {
		return windowRecord{}
	}
	return windowRecord{int64(binary.BigEndian.Uint64(b)), int64(binary.BigEndian.Uint64(b[8:]))}
}

func readWindow(txn *badger.Txn, key []byte) (windowRecord, error) {
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return windowRecord{}, nil
	}
	if err != nil {
		return windowRecord{}, err
	}
	var r windowRecord
	err = it.Value(func(v []byte) error { r = decodeWindow(v); return nil })
	return r, err
}

// Open reports whether the window is open at now: the last user message is less than 24 h old
// and Meta has not reported 131047 since. Storage errors fail closed (false), so a free-form
// message is refused rather than sent outside the window.
func (w *Window) Open(phoneNumberID, waID string, now time.Time) bool {
	var r windowRecord
	err := w.db.View(func(txn *badger.Txn) (err error) {
		r, err = readWindow(txn, windowKey(phoneNumberID, waID))
		return err
	})
	if err != nil {
		w.log.Warn("whatsapp: window lookup failed; treating as closed", "err", err)
		return false
	}
	if r.lastInbound == 0 || r.closedAt >= r.lastInbound {
		return false
	}
	age := now.Sub(time.Unix(0, r.lastInbound))
	return age < WindowDuration
}

// LastInbound returns the time of the last recorded user message, if any.
func (w *Window) LastInbound(phoneNumberID, waID string) (time.Time, bool, error) {
	var r windowRecord
	err := w.db.View(func(txn *badger.Txn) (err error) {
		r, err = readWindow(txn, windowKey(phoneNumberID, waID))
		return err
	})
	if err != nil || r.lastInbound == 0 {
		return time.Time{}, false, err
	}
	return time.Unix(0, r.lastInbound), true, nil
}

// Record notes a user message at time at; the window only moves forward.
func (w *Window) Record(phoneNumberID, waID string, at time.Time) error {
	return w.RecordBatch([]WindowUpdate{{PhoneNumberID: phoneNumberID, WaID: waID, At: at}})
}

// WindowUpdate is one user message for RecordBatch.
type WindowUpdate struct {
	PhoneNumberID, WaID string
	At                  time.Time
}

// RecordBatch records several user messages in one transaction (retried on conflict).
func (w *Window) RecordBatch(ups []WindowUpdate) error {
	err := w.recordBatch(ups)
	if err == nil {
		w.notify(ups, false)
	}
	return err
}

func (w *Window) recordBatch(ups []WindowUpdate) error {
	if len(ups) == 0 {
		return nil
	}
	return w.update(func(txn *badger.Txn) error {
		for _, u := range ups {
			k := windowKey(u.PhoneNumberID, u.WaID)
			r, err := readWindow(txn, k)
			if err != nil {
				return err
			}
			at := u.At.UnixNano()
			if at <= r.lastInbound {
				continue
			}
			r.lastInbound = at
			if err := txn.SetEntry(badger.NewEntry(k, r.encode()).WithTTL(windowTTL)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close records that Meta reported the window closed (131047) at time at. The window stays
// closed until a user message newer than at is recorded. A report older than the last user
// message is ignored: the user reopened the window after Meta refused the send (statuses arrive
// late and out of order, whatsapp.md §7).
func (w *Window) Close(phoneNumberID, waID string, at time.Time) error {
	err := w.close(phoneNumberID, waID, at)
	if err == nil {
		w.notify([]WindowUpdate{{PhoneNumberID: phoneNumberID, WaID: waID, At: at}}, true)
	}
	return err
}

func (w *Window) close(phoneNumberID, waID string, at time.Time) error {
	k := windowKey(phoneNumberID, waID)
	return w.update(func(txn *badger.Txn) error {
		r, err := readWindow(txn, k)
		if err != nil {
			return err
		}
		if at.UnixNano() <= r.closedAt || at.UnixNano() < r.lastInbound {
			return nil
		}
		r.closedAt = at.UnixNano()
		return txn.SetEntry(badger.NewEntry(k, r.encode()).WithTTL(windowTTL))
	})
}

// update runs fn in a read-write transaction, retrying a bounded number of times on conflict.
func (w *Window) update(fn func(*badger.Txn) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	for range 8 {
		err = w.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
	}
	return err
}

// appendRecords appends to ops the writes that move the records of ups forward, as RecordBatch
// does, for a group commit. The caller holds w.mu until that commit is done, so that no Close
// or RecordBatch comes between these reads and the writes.
func (w *Window) appendRecords(ops []groupcommit.Op, ups []WindowUpdate) ([]groupcommit.Op, error) {
	if w.batch == nil {
		w.batch = make(map[string]int)
	}
	defer clear(w.batch)
	err := w.db.View(func(txn *badger.Txn) error {
		for _, u := range ups {
			k := windowKey(u.PhoneNumberID, u.WaID)
			i, seen := w.batch[string(k)]
			var rec windowRecord
			if seen {
				rec = decodeWindow(ops[i].Value)
			} else {
				var err error
				if rec, err = readWindow(txn, k); err != nil {
					return err
				}
			}
			at := u.At.UnixNano()
			if at <= rec.lastInbound {
				continue
			}
			rec.lastInbound = at
			op := groupcommit.Op{Key: k, Value: rec.encode(), TTL: windowTTL}
			if seen {
				ops[i] = op
			} else {
				w.batch[string(k)] = len(ops)
				ops = append(ops, op)
			}
		}
		return nil
	})
	return ops, err
}
