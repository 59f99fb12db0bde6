package gateway

import (
	"strconv"
	"sync"
	"time"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// receiptTarget is where a carrier's delivery receipt for one part goes.
type receiptTarget struct {
	msgID   string
	tenant  *Tenant
	account *Account
	origin  Origin
	from    string
	to      string
	part    int
	parts   int
}

// receiptBook maps (SMSC, normalised carrier id) to our message. It keeps
// two generations so memory stays bounded under any load: when the current
// generation holds max/2 entries, or is older than ttl/2, it becomes the
// old one and the previous old one is dropped. Receipts that arrive before
// their mapping (some SMSCs send ACCEPTD before submit_sm_resp is read) are
// parked for a grace period.
type receiptBook struct {
	mu       sync.Mutex
	cur, old map[string]receiptTarget // guarded by mu
	curSince time.Time                // guarded by mu
	max      int
	ttl      time.Duration

	parkMu sync.Mutex
	parked map[string]parkedReceipt // guarded by parkMu
	grace  time.Duration
}

type parkedReceipt struct {
	at      time.Time
	deliver func(receiptTarget)
}

func newReceiptBook(max int, ttl, grace time.Duration) *receiptBook {
	return &receiptBook{cur: make(map[string]receiptTarget), old: map[string]receiptTarget{}, curSince: time.Now(),
		max: max, ttl: ttl, parked: map[string]parkedReceipt{}, grace: grace}
}

func receiptKey(l *smscLink, id string, fromReceipt bool) string {
	return l.name + "|" + dlr.CanonicalKey(id, l.idBase, fromReceipt)
}

func (b *receiptBook) add(l *smscLink, smscID string, t receiptTarget) {
	k := receiptKey(l, smscID, false)
	b.mu.Lock()
	if len(b.cur) >= b.max/2 || time.Since(b.curSince) > b.ttl/2 {
		b.old, b.cur, b.curSince = b.cur, make(map[string]receiptTarget, len(b.cur)), time.Now()
	}
	b.cur[k] = t
	b.mu.Unlock()
	b.parkMu.Lock()
	p, ok := b.parked[k]
	if ok {
		delete(b.parked, k)
	}
	b.parkMu.Unlock()
	if ok {
		p.deliver(t)
	}
}

// lookup finds the target of a receipt; final receipts remove the mapping.
func (b *receiptBook) lookup(l *smscLink, id string, final bool) (receiptTarget, bool) {
	k := receiptKey(l, id, true)
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.cur[k]
	if ok {
		if final {
			delete(b.cur, k)
		}
		return t, true
	}
	t, ok = b.old[k]
	if ok && final {
		delete(b.old, k)
	}
	return t, ok
}

// park keeps a receipt whose mapping is not known yet; deliver runs when
// the mapping arrives within the grace period. It reports false when the
// parking lot is full.
func (b *receiptBook) park(l *smscLink, id string, deliver func(receiptTarget)) bool {
	k := receiptKey(l, id, true)
	b.parkMu.Lock()
	defer b.parkMu.Unlock()
	if len(b.parked) >= 100000 {
		return false
	}
	b.parked[k] = parkedReceipt{at: time.Now(), deliver: deliver}
	return true
}

// expireParked drops parked receipts older than the grace period and
// returns how many.
func (b *receiptBook) expireParked(now time.Time) int {
	b.parkMu.Lock()
	defer b.parkMu.Unlock()
	n := 0
	for k, p := range b.parked {
		if now.Sub(p.at) > b.grace {
			delete(b.parked, k)
			n++
		}
	}
	return n
}

// parsedReceipt is what a carrier receipt says.
type parsedReceipt struct {
	id    string
	state dlr.State
	stat  string
	err   string
	done  time.Time
}

// parseReceipt reads the TLV form first (receipted_message_id,
// message_state, network_error_code), then the text form.
func parseReceipt(d *smpp.DeliverSM, text []byte) (parsedReceipt, bool) {
	var r parsedReceipt
	if id, ok := d.TLVs.ReceiptedMessageID(); ok && len(id) > 0 {
		r.id = string(id)
		if st, ok := d.TLVs.MessageState(); ok {
			r.state = dlr.State(st)
			r.stat = r.state.Stat()
		}
		if _, code, ok := d.TLVs.NetworkErrorCode(); ok {
			r.err = strconv.Itoa(int(code))
		}
	}
	if rc, err := dlr.Parse(string(text)); err == nil {
		if r.id == "" {
			r.id = rc.ID
		}
		if r.stat == "" {
			r.stat, r.state = rc.Stat, rc.State
		}
		if r.err == "" {
			r.err = rc.Err
		}
		r.done = rc.DoneDate
	}
	if r.stat == "" && r.state != 0 {
		r.stat = r.state.Stat()
	}
	return r, r.id != ""
}

func dlrState(v uint8) dlr.State { return dlr.State(v) }
