package gateway

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
)

// Channels.
const (
	ChannelSMS      = consent.ChannelSMS
	ChannelWhatsApp = consent.ChannelWhatsApp
)

// Origin says where an MT message came from, and so where its answer and
// receipts go back to.
type Origin uint8

// Origins.
const (
	OriginSMPP     Origin = iota + 1 // an upstream ESME's submit_sm or data_sm
	OriginHTTP                       // POST /v1/messages
	OriginInternal                   // an auto-reply (confirmation, help, prompt)
)

// Message is one outbound (MT) message on its way through the chain.
type Message struct {
	ID       string // ours, returned to the platform
	Tenant   *Tenant
	Account  *Account // upstream account for OriginSMPP
	Origin   Origin
	Channel  string
	From     string // our number, E.164 (or alphanumeric sender)
	To       string // recipient, E.164
	Category consent.Category
	Bulk     bool // append the opt-out footer
	Template bool // WhatsApp template message (allowed outside the 24-hour window)

	// Content: either Text (HTTP, replies) or the SMPP body as received.
	Text       string
	Body       []byte // short_message as received (encoded per DataCoding)
	DataCoding uint8
	ESMClass   uint8 // UDHI kept when relaying a part
	TLVs       []byte
	// RegisteredDelivery asks the SMSC for a receipt (bits 0–1).
	RegisteredDelivery uint8
	Received           time.Time

	// WhatsApp specifics.
	WA *WAContent

	// tried is the SMSCs this message was refused by (bits by
	// smscLink.idx), for failover at send time.
	tried uint64

	// req is the upstream request to answer, for OriginSMPP.
	req  *smpp.Request
	done func(*Message, Outcome)
	fin  atomic.Bool
}

// Finish reports the outcome of the message to whoever submitted it. Only
// the first call counts; every path through the chain ends in one call.
func (m *Message) Finish(o Outcome) {
	if !m.fin.CompareAndSwap(false, true) {
		return
	}
	if m.done != nil {
		m.done(m, o)
	}
}

// Outcome is what happened to a message.
type Outcome struct {
	Kind   OutcomeKind
	Reason string // block reason (consent reason name) or failure code
	Status smpp.CommandStatus
	Err    error
	SMSC   string // which SMSC took it
	SMSCID string // the SMSC's message id
	Parts  int
}

// OutcomeKind classifies outcomes.
type OutcomeKind uint8

// Outcome kinds.
const (
	Accepted OutcomeKind = iota + 1 // a carrier (SMSC or Meta) accepted it
	Queued                          // durably queued (ack: store), will be sent
	Blocked                         // refused for consent reasons, nothing sent
	Held                            // held until the recipient answers the attestation prompt
	Rejected                        // invalid (bad number, too long, bad encoding)
	Failed                          // could not be sent (temporary or permanent carrier error)
)

var outcomeNames = [...]string{"", "accepted", "queued", "blocked", "held", "rejected", "failed"}

func (k OutcomeKind) String() string {
	if int(k) < len(outcomeNames) {
		return outcomeNames[k]
	}
	return "unknown"
}

// idGen makes our message ids: 16 hex digits, time-ordered and unique
// within a process; the start is the boot time in nanoseconds so ids do
// not repeat across restarts.
type idGen struct{ n atomic.Uint64 }

func newIDGen() *idGen {
	g := &idGen{}
	g.n.Store(uint64(time.Now().UnixNano()))
	return g
}

func (g *idGen) next() string { return strconv.FormatUint(g.n.Add(1), 16) }

// statusBook remembers recent message states for GET /v1/messages/{id}
// and query_sm. It is written for every message, so it is built for the
// hot path. Our ids are sequential within a process, so the book is a ring
// indexed by id: the records of new messages are written one after the
// other in memory (no hash probe that misses the cache, no map growth) and
// the ring's size bounds memory to the latest len(ring) ids. Records hold no
// pointers, so the garbage collector does not scan them. A record whose
// slot already holds a newer id (a held message released much later, an id
// from before a restart) goes to a small two-generation map instead.
type statusBook struct {
	g     *Gateway
	ring  []statusRec // len is a power of two
	mask  uint64
	locks [64]sync.Mutex // ring[i] is guarded by locks[i%64]
	late  lateStatuses
	store *statusStore // nil: memory only (status_store.go)
}

// lateStatuses is the map part of the book, bounded by two generations
// (when the current one is full it becomes the old one).
type lateStatuses struct {
	mu       sync.Mutex
	max      int                  // per generation
	cur, old map[uint64]statusRec // guarded by mu
}

// statusRec is a packed MessageStatus.
type statusRec struct {
	id      uint64 // 0: free slot (our ids are never 0)
	at      int64
	tenant  uint16
	reason  uint16 // interned
	state   uint16 // interned
	channel uint8
	toLen   uint8
	to      [16]byte
}

// MessageStatus is what the API reports about a message.
type MessageStatus struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"-"`
	Channel string    `json:"channel"`
	To      string    `json:"to"`
	State   string    `json:"state"` // accepted, queued, blocked, held, rejected, failed, delivered, undeliverable, expired...
	Reason  string    `json:"reason,omitempty"`
	Updated time.Time `json:"updated"`
}

// newStatusBook returns a book that keeps at least the latest size
// messages (size is rounded up to a power of two).
func newStatusBook(g *Gateway, size int) *statusBook {
	n := 1
	for n < size {
		n <<= 1
	}
	b := &statusBook{g: g, ring: make([]statusRec, n), mask: uint64(n - 1)}
	b.late.max = max(n/16, 1024)
	b.late.cur = map[uint64]statusRec{}
	b.late.old = map[uint64]statusRec{}
	return b
}

// interned strings (states, reasons) as small integers.
var (
	internMu  sync.RWMutex
	internIdx = map[string]uint16{"": 0}
	internStr = []string{""}
)

func intern(s string) uint16 {
	internMu.RLock()
	i, ok := internIdx[s]
	internMu.RUnlock()
	if ok {
		return i
	}
	internMu.Lock()
	defer internMu.Unlock()
	if i, ok := internIdx[s]; ok {
		return i
	}
	if len(internStr) >= 1<<16-1 {
		return 0
	}
	i = uint16(len(internStr))
	internStr = append(internStr, s)
	internIdx[s] = i
	return i
}

func interned(i uint16) string {
	internMu.RLock()
	defer internMu.RUnlock()
	if int(i) < len(internStr) {
		return internStr[i]
	}
	return ""
}

func parseID(id string) (uint64, bool) {
	n, err := strconv.ParseUint(id, 16, 64)
	return n, err == nil
}

// slot returns id's ring slot, locked.
func (b *statusBook) slot(id uint64) (*statusRec, *sync.Mutex) {
	i := id & b.mask
	mu := &b.locks[i%uint64(len(b.locks))]
	mu.Lock()
	return &b.ring[i], mu
}

func (b *statusBook) put(s MessageStatus) {
	id, ok := parseID(s.ID)
	if !ok || id == 0 {
		return
	}
	r := statusRec{id: id, at: s.Updated.UnixNano(), state: intern(s.State), reason: intern(s.Reason)}
	if t := b.g.tenants[s.Tenant]; t != nil {
		r.tenant = t.idx
	}
	if s.Channel == ChannelWhatsApp {
		r.channel = 1
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
func keepLater(r *statusRec, prev statusRec) {
	if prev.at > r.at {
		r.state, r.reason, r.at = prev.state, prev.reason, prev.at
	}
}

func (b *statusBook) update(idStr string, state, reason string) bool {
	id, ok := parseID(idStr)
	if !ok || id == 0 {
		return false
	}
	e, mu := b.slot(id)
	switch {
	case e.id == id:
	case e.id < id:
		// Not recorded yet (a receipt overtook the answer that records
		// the message): keep the state; put fills in the rest.
		*e = statusRec{id: id}
	default:
		mu.Unlock()
		b.late.update(id, state, reason, b.store)
		return true
	}
	setState(e, state, reason)
	if b.store != nil {
		b.store.enqueue(*e)
	}
	mu.Unlock()
	return true
}

// Progress ranks of delivery states, for setState.
const (
	rankOther     = iota // accepted, queued, held, unknown...: the answer to the submit
	rankEnroute          // enroute, accepted_by_carrier, sent
	rankDelivered        // delivered
	rankRead             // read (WhatsApp)
	rankFailed           // undeliverable, failed, expired, deleted, rejected: terminal
)

func stateRank(s string) int {
	switch s {
	case "enroute", "accepted_by_carrier", "sent":
		return rankEnroute
	case "delivered":
		return rankDelivered
	case "read":
		return rankRead
	case "undeliverable", "failed", "expired", "deleted", "rejected":
		return rankFailed
	}
	return rankOther
}

// setState moves r to state unless that would go backwards: receipts and
// WhatsApp statuses arrive out of order (read before delivered, sent
// after delivered), so a state only replaces one of lower or equal rank
// (sent < delivered < read). A failure is terminal: nothing replaces it,
// not even a later delivered or read (a multi-device user can report both;
// the failure is what the platform must see), and a failure replaces any
// earlier progress. Equal ranks refresh the time (and the reason), except
// between failures, where the first one stays.
func setState(r *statusRec, state, reason string) {
	cur, next := stateRank(interned(r.state)), stateRank(state)
	if r.state != 0 && (next < cur || next == rankFailed && cur == rankFailed) {
		return
	}
	r.state, r.at = intern(state), time.Now().UnixNano()
	if reason != "" {
		r.reason = intern(reason)
	}
}

func (l *lateStatuses) rotate() {
	if len(l.cur) >= l.max {
		l.old, l.cur = l.cur, make(map[uint64]statusRec)
	}
}

func (l *lateStatuses) put(r statusRec, store *statusStore) {
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

func (l *lateStatuses) update(id uint64, state, reason string, store *statusStore) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.cur[id]
	if !ok {
		r, ok = l.old[id]
		if !ok {
			r = statusRec{id: id}
		}
		l.rotate()
	}
	setState(&r, state, reason)
	l.cur[id] = r
	if store != nil {
		store.enqueue(r)
	}
}

func (l *lateStatuses) get(id uint64) (statusRec, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.cur[id]; ok {
		return r, true
	}
	r, ok := l.old[id]
	return r, ok
}

func (b *statusBook) get(idStr string) (MessageStatus, bool) {
	id, ok := parseID(idStr)
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
	ms := MessageStatus{ID: idStr, Channel: ChannelSMS, To: string(r.to[:r.toLen]), State: interned(r.state),
		Reason: interned(r.reason), Updated: time.Unix(0, r.at).UTC()}
	if r.channel == 1 {
		ms.Channel = ChannelWhatsApp
	}
	if t := b.g.tenantAt(r.tenant); t != nil {
		ms.Tenant = t.ID
	}
	return ms, true
}
