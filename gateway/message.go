package gateway

import (
	"hash/fnv"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
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

// idGen makes our message ids: at most 16 hex digits, time-ordered and
// unique within a process; the start is the boot time in nanoseconds so
// ids do not repeat across restarts.
//
// In a cluster the ids must not meet across nodes either (the work
// queue de-duplicates by id, held messages are keyed by it, a platform
// matches receipts by it), and boot times in nanoseconds do: two nodes
// started a millisecond apart issue the same ids after a million
// messages. So a node's ids carry a 16-bit tag, a hash of its name, in
// their top bits, and the 48 bits below count from the boot time in
// microseconds (they wrap every 8.9 years; a node restarted issues ids
// above its last ones unless it sent more than a million messages a
// second). Two node names of one cluster whose tags collide (a chance of
// about n²/131,072 for n nodes) are refused at start (clusterIDTags).
type idGen struct {
	n         atomic.Uint64
	tag, mask uint64
}

func newIDGen(node string) *idGen {
	g := &idGen{mask: ^uint64(0)}
	if node == "" {
		g.n.Store(uint64(time.Now().UnixNano()))
		return g
	}
	g.tag, g.mask = idTag(node)<<48, 1<<48-1
	g.n.Store(uint64(time.Now().UnixMicro()))
	return g
}

// idTag is a node's 16-bit id tag, never 0 (0 is no id).
func idTag(node string) uint64 {
	h := fnv.New32a()
	h.Write([]byte(node))
	return max(uint64(h.Sum32()&0xffff), 1)
}

func (g *idGen) next() string { return strconv.FormatUint(g.tag|g.n.Add(1)&g.mask, 16) }

// parseID reads one of our message ids.
func parseID(id string) (uint64, bool) { return status.ParseID(id) }
