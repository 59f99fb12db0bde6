package receipt

import (
	"time"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// Several nodes (doc.go, "Several nodes"): a receipt this book finds
// nowhere is handed to Config.Miss as a Missed, which asks the other nodes;
// a node asked by another calls Claim.

// Missed is a receipt the book found neither in memory nor in the store,
// handed to Config.Miss. While Miss works on it the receipt stays parked
// (when the lot had room) and does not expire, so an Add that brings its
// mapping here still delivers it. Exactly one of Taken, Retry and Nobody
// must be called, once; it answers the SMSC.
type Missed struct {
	SMSC   SMSC
	Report Report

	b      *Book
	k      uint64
	parked bool
	late   bool // asked again at expiry (ExpireParked): the SMSC has its answer
	answer func(smpp.CommandStatus)
}

// missed hands a receipt found nowhere to b.miss; parked says whether
// lookupOrPark parked it (with a store lookup it is marked as looked up
// already, which keeps it from expiring).
func (b *Book) missed(s SMSC, r Report, k uint64, parked bool, answer func(smpp.CommandStatus)) {
	if parked && !b.markLookup(k, true) {
		b.count(s.Name, "parked")
		answer(smpp.StatusOK) // Add delivered it meanwhile
		return
	}
	b.miss(&Missed{SMSC: s, Report: r, b: b, k: k, parked: parked, answer: answer})
}

// markReclaim marks the receipt parked under k, which the other nodes did
// not know, to be asked of them again at expiry; it clears its lookup
// mark, so it expires.
func (b *Book) markReclaim(k uint64, s SMSC) {
	b.mu.Lock()
	if p, ok := b.parked[k]; ok {
		p.lookup, p.reclaim, p.smsc = false, true, s
		b.parked[k] = p
	}
	b.mu.Unlock()
}

// Taken: another node owned the message and forwarded the receipt
// durably. The SMSC is answered ESME_ROK.
func (m *Missed) Taken() {
	if m.parked {
		m.b.unpark(m.k)
	}
	m.b.count(m.SMSC.Name, "claimed")
	m.answer(smpp.StatusOK)
}

// Retry: the owner could not forward it, or not every node answered. The
// SMSC is answered ESME_RX_T_APPN and sends the receipt again, unless an
// Add here delivered it meanwhile (ESME_ROK).
func (m *Missed) Retry() {
	if m.late {
		m.b.count(m.SMSC.Name, "uncorrelated") // nobody to ask again
		return
	}
	if m.parked && !m.b.unpark(m.k) {
		m.b.count(m.SMSC.Name, "parked")
		m.answer(smpp.StatusOK)
		return
	}
	m.b.count(m.SMSC.Name, "retried")
	m.answer(smpp.StatusXTAppn)
}

// Nobody: every other node said it has no such message. The receipt stays
// parked for the rest of its grace period, as on a single node, and the
// SMSC is answered ESME_ROK; at expiry it is asked of them once more.
func (m *Missed) Nobody() {
	outcome := "uncorrelated"
	if m.parked {
		outcome = "parked"
		m.b.markReclaim(m.k, m.SMSC)
	}
	m.b.count(m.SMSC.Name, outcome)
	m.answer(smpp.StatusOK)
}

// Claim takes a receipt another node could not correlate: when this book
// knows its mapping (in memory, or in the store when store is set) it
// delivers the receipt with answer, as Receive would, and returns true (a
// final receipt removes the mapping, so a second claim of it finds
// nothing). Otherwise it returns false and leaves answer alone: nothing is
// parked, the caller may ask again. err is a failing store.
func (b *Book) Claim(s SMSC, r Report, answer func(smpp.CommandStatus), store bool) (found bool, err error) {
	final := r.State.Final()
	canon := dlr.CanonicalKey(r.ID, s.IDBase, true)
	k := b.keyOf(s, canon)
	b.mu.Lock()
	b.rotateLocked(time.Now())
	p, ok := b.takeLocked(k, final)
	b.mu.Unlock()
	var t Target
	switch {
	case ok:
		t = unpack(p)
		if final && b.store != nil {
			b.store.del(s.Name, canon)
		}
	case !store || b.store == nil:
		return false, nil
	default:
		t, ok, err = b.store.get(s.Name, canon)
		if err != nil || !ok {
			return false, err
		}
		if final {
			b.store.del(s.Name, canon)
		} else {
			b.remember(k, pack(t))
		}
	}
	b.count(s.Name, "correlated")
	b.deliver(t, r, answer)
	return true, nil
}
