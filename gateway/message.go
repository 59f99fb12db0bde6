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

	// req is the upstream request to answer, for OriginSMPP.
	req  *smpp.Request
	done func(*Message, Outcome)
	fin  atomic.Bool
}

// WAContent is the WhatsApp part of a message sent over the HTTP API.
type WAContent struct {
	TemplateName string            `json:"name,omitempty"`
	Language     string            `json:"language,omitempty"`
	Params       []string          `json:"params,omitempty"`
	NamedParams  map[string]string `json:"named_params,omitempty"`
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
// hot path: keys are our ids as integers and records hold no pointers, so
// the garbage collector does not scan them; two generations per shard keep
// memory bounded (when the current one is full it becomes the old one).
type statusBook struct {
	shards [16]statusShard
	max    int // per shard and generation
	g      *Gateway
}

type statusShard struct {
	mu       sync.Mutex
	cur, old map[uint64]statusRec // guarded by mu
}

// statusRec is a packed MessageStatus.
type statusRec struct {
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

func newStatusBook(g *Gateway, max int) *statusBook {
	b := &statusBook{max: max / 32, g: g}
	for i := range b.shards {
		b.shards[i].cur = map[uint64]statusRec{}
		b.shards[i].old = map[uint64]statusRec{}
	}
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

func (b *statusBook) shard(id uint64) *statusShard { return &b.shards[id&15] }

func (b *statusBook) put(s MessageStatus) {
	id, ok := parseID(s.ID)
	if !ok {
		return
	}
	r := statusRec{at: s.Updated.UnixNano(), state: intern(s.State), reason: intern(s.Reason)}
	if t := b.g.tenants[s.Tenant]; t != nil {
		r.tenant = t.idx
	}
	if s.Channel == ChannelWhatsApp {
		r.channel = 1
	}
	r.toLen = uint8(copy(r.to[:], s.To))
	sh := b.shard(id)
	sh.mu.Lock()
	if len(sh.cur) >= b.max {
		sh.old, sh.cur = sh.cur, make(map[uint64]statusRec)
	}
	if prev, ok := sh.cur[id]; ok && prev.at > r.at {
		// A receipt got here first (it can overtake the submit's own
		// answer): keep the later state, take who and where from r.
		r.state, r.reason, r.at = prev.state, prev.reason, prev.at
	}
	sh.cur[id] = r
	sh.mu.Unlock()
}

func (b *statusBook) update(idStr string, state, reason string) bool {
	id, ok := parseID(idStr)
	if !ok {
		return false
	}
	sh := b.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r, ok := sh.cur[id]
	if !ok {
		// Not recorded yet (a receipt overtook the answer that records
		// the message): keep the state; put fills in the rest.
		r, _ = sh.old[id]
		if len(sh.cur) >= b.max {
			sh.old, sh.cur = sh.cur, make(map[uint64]statusRec)
		}
	}
	r.state, r.at = intern(state), time.Now().UnixNano()
	if reason != "" {
		r.reason = intern(reason)
	}
	sh.cur[id] = r
	return true
}

func (b *statusBook) get(idStr string) (MessageStatus, bool) {
	id, ok := parseID(idStr)
	if !ok {
		return MessageStatus{}, false
	}
	sh := b.shard(id)
	sh.mu.Lock()
	r, ok := sh.cur[id]
	if !ok {
		r, ok = sh.old[id]
	}
	sh.mu.Unlock()
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
