package gateway

import (
	"hash/maphash"
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

// receiptBook maps (SMSC, normalised carrier id) to our message. It is
// written for every message that asks for a receipt, so it is built for
// the hot path: the key is a 64-bit hash and the records hold no pointers
// (tenants and accounts by index, numbers inline), so the garbage
// collector never scans it. It keeps two generations so memory stays
// bounded under any load: when the current generation holds max/2
// entries, or is older than ttl/2, it becomes the old one. Receipts that
// arrive before their mapping (some SMSCs send ACCEPTD before
// submit_sm_resp is read) are parked for a grace period.
//
// The book is only the fast path for recent messages: at a high rate it
// rotates long before ttl, and it is empty after a restart. Every mapping
// is also written, asynchronously, to the gateway store (store, see
// receiptStore) with a TTL of ttl, and a receipt the book does not know is
// looked up there (lookupStored) before it is given up. A final receipt
// removes its mapping from both.
type receiptBook struct {
	g        *Gateway
	seed     maphash.Seed
	mu       sync.Mutex
	cur, old map[uint64]packedTarget // guarded by mu
	curSince time.Time               // guarded by mu: when cur started
	oldSince time.Time               // guarded by mu: when old started
	max      int
	ttl      time.Duration

	parked map[uint64]parkedReceipt // guarded by mu (one lock with the maps: a
	// lookup that misses and the park that follows must not race with add)
	grace time.Duration

	store *receiptStore // nil until openStore (and in tests without one)
}

// packedTarget is a receiptTarget without pointers.
type packedTarget struct {
	msgID           uint64
	tenant, account uint16
	origin          Origin
	part, parts     uint8
	fromLen, toLen  uint8
	from, to        [20]byte
}

type parkedReceipt struct {
	at      time.Time
	final   bool
	deliver func(receiptTarget)
	// lookup is set while the store is being asked (lookupStored): the
	// receipt does not expire then, so a lookup that finds the mapping
	// and no longer finds the receipt parked knows add delivered it.
	lookup bool
}

func newReceiptBook(g *Gateway, max int, ttl, grace time.Duration) *receiptBook {
	return &receiptBook{g: g, seed: maphash.MakeSeed(), cur: make(map[uint64]packedTarget), old: map[uint64]packedTarget{},
		curSince: time.Now(), oldSince: time.Now(), max: max, ttl: ttl, parked: map[uint64]parkedReceipt{}, grace: grace}
}

func (b *receiptBook) key(l *smscLink, id string, fromReceipt bool) uint64 {
	return b.keyOf(l, dlr.CanonicalKey(id, l.idBase, fromReceipt))
}

// keyOf is the book's key for an id already in canonical form
// (dlr.CanonicalKey): the store keeps the same form, so both meet.
func (b *receiptBook) keyOf(l *smscLink, canon string) uint64 {
	var h maphash.Hash
	h.SetSeed(b.seed)
	h.WriteString(l.name)
	h.WriteByte('|')
	h.WriteString(canon)
	return h.Sum64()
}

// rotateLocked starts a new generation when the current one is full or
// older than ttl/2, and forgets the old one once it started more than ttl
// ago, so the book never answers for a mapping older than ttl (it may
// forget one sooner: the store still has it). b.mu must be held.
func (b *receiptBook) rotateLocked(now time.Time) {
	if len(b.cur) >= b.max/2 || now.Sub(b.curSince) > b.ttl/2 {
		b.old, b.oldSince = b.cur, b.curSince
		b.cur, b.curSince = make(map[uint64]packedTarget), now
	}
	if len(b.old) > 0 && now.Sub(b.oldSince) > b.ttl {
		b.old = map[uint64]packedTarget{}
	}
}

func (b *receiptBook) pack(t receiptTarget) packedTarget {
	p := packedTarget{origin: t.origin, part: uint8(min(t.part, 255)), parts: uint8(min(t.parts, 255))}
	p.msgID, _ = parseID(t.msgID)
	if t.tenant != nil {
		p.tenant = t.tenant.idx
	}
	if t.account != nil {
		p.account = t.account.idx
	}
	p.fromLen = uint8(copy(p.from[:], t.from))
	p.toLen = uint8(copy(p.to[:], t.to))
	return p
}

func (b *receiptBook) unpack(p packedTarget) receiptTarget {
	return receiptTarget{msgID: strconv.FormatUint(p.msgID, 16), tenant: b.g.tenantAt(p.tenant), account: b.g.accountAt(p.account),
		origin: p.origin, from: string(p.from[:p.fromLen]), to: string(p.to[:p.toLen]), part: int(p.part), parts: int(p.parts)}
}

func (b *receiptBook) add(l *smscLink, smscID string, t receiptTarget) {
	canon := dlr.CanonicalKey(smscID, l.idBase, false)
	k := b.keyOf(l, canon)
	p := b.pack(t)
	b.mu.Lock()
	b.rotateLocked(time.Now())
	pr, parked := b.parked[k]
	if parked {
		delete(b.parked, k)
		if !pr.final {
			b.cur[k] = p // later receipts for it still correlate
		}
	} else {
		b.cur[k] = p
	}
	if b.store != nil && (!parked || !pr.final) {
		// Queued under b.mu: a receipt that finds the mapping (and queues its
		// del) can do so only after this put is queued, so the writer never
		// sees the del first and keeps a stale mapping. Never blocks: a full
		// queue drops and counts.
		b.store.put(l.name, canon, p)
	}
	b.mu.Unlock()
	if parked {
		pr.deliver(t)
	}
}

// lookupOrPark finds the target of a receipt (final receipts remove the
// mapping); when it is not known yet it parks deliver, under the same
// lock, to run when the mapping arrives within the grace period. parked is
// false when the receipt was neither found nor parked (the lot is full).
func (b *receiptBook) lookupOrPark(l *smscLink, id string, final bool, deliver func(receiptTarget)) (t receiptTarget, found, parked bool) {
	canon := dlr.CanonicalKey(id, l.idBase, true)
	k := b.keyOf(l, canon)
	b.mu.Lock()
	b.rotateLocked(time.Now())
	p, ok := b.cur[k]
	if ok && final {
		delete(b.cur, k)
	}
	if !ok {
		p, ok = b.old[k]
		if ok && final {
			delete(b.old, k)
		}
	}
	if !ok {
		if len(b.parked) < 100000 {
			b.parked[k] = parkedReceipt{at: time.Now(), final: final, deliver: deliver}
			parked = true
		}
		b.mu.Unlock()
		return receiptTarget{}, false, parked
	}
	b.mu.Unlock()
	if final && b.store != nil {
		b.store.del(l.name, canon)
	}
	return b.unpack(p), true, false
}

// unpark removes the receipt parked under k and reports whether it was
// still there (false: add has delivered it, or it expired).
func (b *receiptBook) unpark(k uint64) bool {
	b.mu.Lock()
	_, ok := b.parked[k]
	if ok {
		delete(b.parked, k)
	}
	b.mu.Unlock()
	return ok
}

// markLookup sets or clears the lookup mark of the receipt parked under k
// and reports whether it is still parked.
func (b *receiptBook) markLookup(k uint64, on bool) bool {
	b.mu.Lock()
	p, ok := b.parked[k]
	if ok {
		p.lookup = on
		b.parked[k] = p
	}
	b.mu.Unlock()
	return ok
}

// remember puts a mapping found in the store back in the book, so later
// receipts for the same message take the fast path.
func (b *receiptBook) remember(k uint64, p packedTarget) {
	b.mu.Lock()
	b.rotateLocked(time.Now())
	b.cur[k] = p
	b.mu.Unlock()
}

// expireParked drops parked receipts older than the grace period and
// returns how many.
func (b *receiptBook) expireParked(now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for k, p := range b.parked {
		if now.Sub(p.at) > b.grace && !p.lookup {
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

// parseReceipt reads a carrier receipt (TLV form first, then text).
func parseReceipt(d *smpp.DeliverSM) (parsedReceipt, bool) {
	r, ok := d.Receipt()
	return parsedReceipt{id: r.ID, state: r.State, stat: r.Stat, err: r.Err, done: r.DoneDate}, ok
}
