package receipt

import (
	"hash/maphash"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// Book maps (SMSC, normalised carrier id) to our message. It is
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
// is also written, asynchronously, to the gateway's Badger store (see
// store) with a TTL of ttl, and a receipt the book does not know is
// looked up there (lookupStored) before it is given up. A final receipt
// removes its mapping from both.
//
// A Book is safe for concurrent use. Add runs on the MT path and Receive
// on the SMSC session's read goroutine: neither waits for a disk or a
// peer.
type Book struct {
	seed     maphash.Seed
	mu       sync.Mutex
	cur, old map[uint64]packedTarget // guarded by mu
	curSince time.Time               // guarded by mu: when cur started
	oldSince time.Time               // guarded by mu: when old started
	max      int                     // guarded by mu
	ttl      time.Duration

	parked map[uint64]parkedReceipt // guarded by mu (one lock with the maps: a
	// lookup that misses and the park that follows must not race with Add)
	grace time.Duration

	store *store // nil until OpenStore (and in tests without one)

	names   Names
	deliver func(Target, Report, func(smpp.CommandStatus))
	miss    func(*Missed) // nil on a single node
	count   func(smsc, outcome string)
	log     *slog.Logger
}

// packedTarget is a Target without pointers.
type packedTarget struct {
	msgID           uint64
	tenant, account uint16
	origin          uint8
	part, parts     uint8
	fromLen, toLen  uint8
	from, to        [20]byte
}

type parkedReceipt struct {
	at    time.Time
	final bool
	r     Report
	// lookup is set while the store is being asked (lookupStored): the
	// receipt does not expire then, so a lookup that finds the mapping
	// and no longer finds the receipt parked knows Add delivered it.
	lookup bool
	// reclaim is set when the other nodes said nobody has it
	// (Missed.Nobody): at expiry it is asked of them once more, from
	// smsc, in case its mapping came to another node meanwhile.
	reclaim bool
	smsc    SMSC
}

// New returns an empty book; OpenStore makes it durable.
func New(c Config) *Book {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return &Book{seed: maphash.MakeSeed(), cur: make(map[uint64]packedTarget), old: map[uint64]packedTarget{},
		curSince: time.Now(), oldSince: time.Now(), max: c.Max, ttl: c.TTL, parked: map[uint64]parkedReceipt{}, grace: c.Grace,
		names: c.Names, deliver: c.Deliver, miss: c.Miss, count: c.Count, log: c.Log}
}

// noAnswer is the answer of a receipt already answered.
func noAnswer(smpp.CommandStatus) {}

func (b *Book) key(s SMSC, id string, fromReceipt bool) uint64 {
	return b.keyOf(s, dlr.CanonicalKey(id, s.IDBase, fromReceipt))
}

// keyOf is the book's key for an id already in canonical form
// (dlr.CanonicalKey): the store keeps the same form, so both meet.
func (b *Book) keyOf(s SMSC, canon string) uint64 {
	var h maphash.Hash
	h.SetSeed(b.seed)
	h.WriteString(s.Name)
	h.WriteByte('|')
	h.WriteString(canon)
	return h.Sum64()
}

// rotateLocked starts a new generation when the current one is full or
// older than ttl/2, and forgets the old one once it started more than ttl
// ago, so the book never answers for a mapping older than ttl (it may
// forget one sooner: the store still has it). b.mu must be held.
func (b *Book) rotateLocked(now time.Time) {
	if len(b.cur) >= b.max/2 || now.Sub(b.curSince) > b.ttl/2 {
		b.old, b.oldSince = b.cur, b.curSince
		b.cur, b.curSince = make(map[uint64]packedTarget), now
	}
	if len(b.old) > 0 && now.Sub(b.oldSince) > b.ttl {
		b.old = map[uint64]packedTarget{}
	}
}

// pack keeps what the book needs of t: numbers past 20 bytes and parts
// past 255 are cut, and an id that is not hex is kept as 0.
func pack(t Target) packedTarget {
	p := packedTarget{tenant: t.Tenant, account: t.Account, origin: t.Origin, part: uint8(min(t.Part, 255)), parts: uint8(min(t.Parts, 255))}
	p.msgID, _ = strconv.ParseUint(t.MsgID, 16, 64)
	p.fromLen = uint8(copy(p.from[:], t.From))
	p.toLen = uint8(copy(p.to[:], t.To))
	return p
}

func unpack(p packedTarget) Target {
	return Target{MsgID: strconv.FormatUint(p.msgID, 16), Tenant: p.tenant, Account: p.account,
		Origin: p.origin, From: string(p.from[:p.fromLen]), To: string(p.to[:p.toLen]), Part: int(p.part), Parts: int(p.parts)}
}

// Add maps the id an SMSC gave one part of our message (its
// submit_sm_resp's message_id) to where the part's receipts go. A receipt
// that came first and is parked is delivered now, on this goroutine.
func (b *Book) Add(s SMSC, smscID string, t Target) {
	canon := dlr.CanonicalKey(smscID, s.IDBase, false)
	k := b.keyOf(s, canon)
	p := pack(t)
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
		b.store.put(s.Name, canon, p)
	}
	b.mu.Unlock()
	if parked {
		b.deliver(t, pr.r, noAnswer)
	}
}

// lookupOrPark finds the target of a receipt (final receipts remove the
// mapping); when it is not known yet it parks r, under the same lock, to
// be delivered when the mapping arrives within the grace period. parked
// is false when the receipt was neither found nor parked (the lot is full).
func (b *Book) lookupOrPark(s SMSC, r Report, final bool) (t Target, found, parked bool) {
	canon := dlr.CanonicalKey(r.ID, s.IDBase, true)
	k := b.keyOf(s, canon)
	b.mu.Lock()
	b.rotateLocked(time.Now())
	p, ok := b.takeLocked(k, final)
	if !ok {
		if len(b.parked) < 100000 {
			b.parked[k] = parkedReceipt{at: time.Now(), final: final, r: r}
			parked = true
		}
		b.mu.Unlock()
		return Target{}, false, parked
	}
	b.mu.Unlock()
	if final && b.store != nil {
		b.store.del(s.Name, canon)
	}
	return unpack(p), true, false
}

// takeLocked returns the mapping under k, removing it for a final
// receipt. b.mu must be held.
func (b *Book) takeLocked(k uint64, final bool) (packedTarget, bool) {
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
	return p, ok
}

// unpark removes the receipt parked under k and reports whether it was
// still there (false: add has delivered it, or it expired).
func (b *Book) unpark(k uint64) bool {
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
func (b *Book) markLookup(k uint64, on bool) bool {
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
func (b *Book) remember(k uint64, p packedTarget) {
	b.mu.Lock()
	b.rotateLocked(time.Now())
	b.cur[k] = p
	b.mu.Unlock()
}

// ExpireParked drops parked receipts older than the grace period and
// returns how many (they go uncorrelated). One the other nodes did not
// know when it came (several nodes) is handed to Config.Miss once more
// instead, its SMSC long answered: its mapping may have reached another
// node since (an SMSC that answers a submit only once its receipt is
// answered), and that Missed counts the outcome.
func (b *Book) ExpireParked(now time.Time) int {
	b.mu.Lock()
	n := 0
	var again []*Missed
	for k, p := range b.parked {
		if now.Sub(p.at) > b.grace && !p.lookup {
			delete(b.parked, k)
			if p.reclaim && b.miss != nil {
				again = append(again, &Missed{SMSC: p.smsc, Report: p.r, b: b, k: k, answer: noAnswer, late: true})
				continue
			}
			n++
		}
	}
	b.mu.Unlock()
	for _, m := range again {
		b.miss(m)
	}
	return n
}

// Parse reads a carrier receipt (TLV form first, then text, as
// smpp.DeliverSM.Receipt does); ok is false when it gives no id or no
// state.
func Parse(d *smpp.DeliverSM) (r Report, ok bool) {
	dr, ok := d.Receipt()
	return Report{ID: dr.ID, State: dr.State, Stat: dr.Stat, Err: dr.Err, Done: dr.DoneDate}, ok
}
