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
// and query_sm, in two generations so memory stays bounded: when the
// current generation is full it becomes the previous one.
type statusBook struct {
	mu       sync.Mutex
	cur, old map[string]MessageStatus // guarded by mu
	max      int
}

// MessageStatus is what the API reports about a message.
type MessageStatus struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"-"`
	Channel string    `json:"channel"`
	To      string    `json:"to"`
	State   string    `json:"state"` // accepted, queued, blocked, held, rejected, failed, delivered, undeliverable, expired...
	Reason  string    `json:"reason,omitempty"`
	SMSCID  string    `json:"carrier_id,omitempty"`
	Updated time.Time `json:"updated"`
}

func newStatusBook(max int) *statusBook {
	return &statusBook{cur: make(map[string]MessageStatus), old: map[string]MessageStatus{}, max: max}
}

func (b *statusBook) put(s MessageStatus) {
	b.mu.Lock()
	if len(b.cur) >= b.max/2 {
		b.old, b.cur = b.cur, make(map[string]MessageStatus, b.max/2)
	}
	b.cur[s.ID] = s
	b.mu.Unlock()
}

func (b *statusBook) update(id string, fn func(*MessageStatus)) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.cur[id]
	if !ok {
		if s, ok = b.old[id]; !ok {
			return false
		}
	}
	fn(&s)
	b.cur[id] = s
	return true
}

func (b *statusBook) get(id string) (MessageStatus, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.cur[id]; ok {
		return s, true
	}
	s, ok := b.old[id]
	return s, ok
}
