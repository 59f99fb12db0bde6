package status

import (
	"strconv"
	"sync"
	"time"

	"github.com/optgate/optgate/consent"
)

// Tenants is what the book knows of tenants: a record keeps its tenant as
// a small index (from 1; 0 is none), the API and the store by its id.
type Tenants interface {
	// TenantIndex is the index of the tenant with id; 0 when there is none.
	TenantIndex(id string) uint16
	// TenantID is the id of the tenant at index i; "" when there is none.
	TenantID(i uint16) string
}

// MessageStatus is what the API reports about a message.
type MessageStatus struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"-"`
	Channel string    `json:"channel"`
	To      string    `json:"to"`
	State   State     `json:"state"`
	Reason  Reason    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
}

// Book remembers recent message states for GET /v1/messages/{id} and
// query_sm. It is written for every message, so it is built for the hot
// path. Our ids are sequential within a process, so the book is a ring
// indexed by id: the records of new messages are written one after the
// other in memory (no hash probe that misses the cache, no map growth) and
// the ring's size bounds memory to the latest len(ring) ids. Records hold
// no pointers, so the garbage collector does not scan them. A record whose
// slot already holds a newer id (a held message released much later, an
// id from before a restart) goes to a small two-generation map instead.
// With a Store (OpenStore), every change is also written durably, and Get
// falls back to it for what memory no longer holds.
type Book struct {
	tenants Tenants
	ring    []rec // len is a power of two
	mask    uint64
	locks   [64]sync.Mutex // ring[i] is guarded by locks[i%64]
	late    lateRecs
	store   *Store // nil: memory only
}

// lateRecs is the map part of the book, bounded by two generations (when
// the current one is full it becomes the old one).
type lateRecs struct {
	mu       sync.Mutex
	max      int            // per generation
	cur, old map[uint64]rec // guarded by mu
}

// rec is a packed MessageStatus.
type rec struct {
	id      uint64 // 0: free slot (our ids are never 0)
	at      int64
	tenant  uint16
	reason  Reason
	state   State
	channel uint8 // chanSMS or chanWhatsApp
	toLen   uint8
	to      [16]byte
}

// A record's channel (rec.channel; stored as is).
const (
	chanSMS      = 0
	chanWhatsApp = 1
)

// NewBook returns a book that keeps at least the latest size messages
// (size is rounded up to a power of two).
func NewBook(tenants Tenants, size int) *Book {
	n := 1
	for n < size {
		n <<= 1
	}
	b := &Book{tenants: tenants, ring: make([]rec, n), mask: uint64(n - 1)}
	b.late.max = max(n/16, 1024)
	b.late.cur = map[uint64]rec{}
	b.late.old = map[uint64]rec{}
	return b
}

// ParseID reads one of our message ids (hexadecimal).
func ParseID(id string) (uint64, bool) {
	n, err := strconv.ParseUint(id, 16, 64)
	return n, err == nil
}

// slot returns id's ring slot, locked.
func (b *Book) slot(id uint64) (*rec, *sync.Mutex) {
	i := id & b.mask
	mu := &b.locks[i%uint64(len(b.locks))]
	mu.Lock()
	return &b.ring[i], mu
}

// Put records s, the answer to a message's submit. A state the book holds
// with a later time (a receipt that overtook the answer) is kept; who and
// where come from s.
func (b *Book) Put(s MessageStatus) {
	id, ok := ParseID(s.ID)
	if !ok || id == 0 {
		return
	}
	r := rec{id: id, at: s.Updated.UnixNano(), state: s.State, reason: s.Reason, tenant: b.tenants.TenantIndex(s.Tenant)}
	if s.Channel == consent.ChannelWhatsApp {
		r.channel = chanWhatsApp
	}
	r.toLen = uint8(copy(r.to[:], s.To))
	e, mu := b.slot(id)
	switch {
	case e.id == id:
		keepLater(&r, *e)
		*e = r
	case e.id < id:
		// Slot ids only grow, so id was never in the late map: take the
		// slot (what it held is older than the latest len(ring) ids).
		*e = r
	default:
		mu.Unlock()
		b.late.put(r, b.store)
		return
	}
	if b.store != nil {
		b.store.enqueue(r)
	}
	mu.Unlock()
}

// keepLater keeps prev's state in r when prev is later: a receipt can
// overtake the submit's own answer; who and where come from r.
func keepLater(r *rec, prev rec) {
	if prev.at > r.at {
		r.state, r.reason, r.at = prev.state, prev.reason, prev.at
	}
}

// Update moves message id to state s (with reason r, when r is not
// ReasonNone) if s Replaces its state; false for an id that is not ours.
func (b *Book) Update(idStr string, s State, r Reason) bool {
	id, ok := ParseID(idStr)
	if !ok || id == 0 {
		return false
	}
	e, mu := b.slot(id)
	switch {
	case e.id == id:
	case e.id < id:
		// Not recorded yet (a receipt overtook the answer that records
		// the message): keep the state; Put fills in the rest.
		*e = rec{id: id}
	default:
		mu.Unlock()
		b.late.update(id, s, r, b.store)
		return true
	}
	setState(e, s, r)
	if b.store != nil {
		b.store.enqueue(*e)
	}
	mu.Unlock()
	return true
}

// setState moves r to s, stamped now, if s Replaces r's state.
func setState(r *rec, s State, reason Reason) {
	if !s.Replaces(r.state) {
		return
	}
	r.state, r.at = s, time.Now().UnixNano()
	if reason != ReasonNone {
		r.reason = reason
	}
}

// mergeState moves dst to src's state by the same rule, keeping dst's
// who and where and src's time.
func mergeState(dst *rec, src rec) {
	if src.state == StateNone || !src.state.Replaces(dst.state) {
		return
	}
	dst.state, dst.at = src.state, src.at
	if src.reason != ReasonNone {
		dst.reason = src.reason
	}
}

func (l *lateRecs) rotate() {
	if len(l.cur) >= l.max {
		l.old, l.cur = l.cur, make(map[uint64]rec)
	}
}

func (l *lateRecs) put(r rec, store *Store) {
	l.mu.Lock()
	defer l.mu.Unlock()
	prev, ok := l.cur[r.id]
	if !ok {
		prev, ok = l.old[r.id]
		l.rotate()
	}
	if ok {
		keepLater(&r, prev)
	}
	l.cur[r.id] = r
	if store != nil {
		store.enqueue(r)
	}
}

func (l *lateRecs) update(id uint64, s State, reason Reason, store *Store) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.cur[id]
	if !ok {
		r, ok = l.old[id]
		if !ok {
			r = rec{id: id}
		}
		l.rotate()
	}
	setState(&r, s, reason)
	l.cur[id] = r
	if store != nil {
		store.enqueue(r)
	}
}

func (l *lateRecs) get(id uint64) (rec, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.cur[id]; ok {
		return r, true
	}
	r, ok := l.old[id]
	return r, ok
}

// Get returns what the book knows of message id: from memory, or from
// the store for a message memory no longer holds (or holds only a later
// state change of).
func (b *Book) Get(idStr string) (MessageStatus, bool) {
	id, ok := ParseID(idStr)
	if !ok {
		return MessageStatus{}, false
	}
	e, mu := b.slot(id)
	r, ok := *e, e.id == id && id != 0
	mu.Unlock()
	if !ok {
		r, ok = b.late.get(id)
	}
	if (!ok || r.tenant == 0) && b.store != nil && id != 0 {
		// Not in memory (from before a restart, or older than the book
		// keeps), or only a state change of such a message: the store
		// knows the rest.
		if stored, found := b.store.read(id); found {
			if ok {
				mergeState(&stored, r)
			}
			r, ok = stored, true
		}
	}
	if !ok {
		return MessageStatus{}, false
	}
	return b.status(idStr, r), true
}

// status unpacks r.
func (b *Book) status(id string, r rec) MessageStatus {
	ms := MessageStatus{ID: id, Channel: consent.ChannelSMS, To: string(r.to[:r.toLen]), State: r.state, Reason: r.reason,
		Tenant: b.tenants.TenantID(r.tenant), Updated: time.Unix(0, r.at).UTC()}
	if r.channel == chanWhatsApp {
		ms.Channel = consent.ChannelWhatsApp
	}
	return ms
}
