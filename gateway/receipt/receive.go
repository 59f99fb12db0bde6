package receipt

import (
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// Receive correlates a carrier's receipt r that came on req from SMSC s
// and delivers it (Config.Deliver), which answers req. A receipt whose
// mapping is not in memory is looked up in the store off this goroutine;
// one found nowhere waits parked for the grace period (its mapping may
// come: some SMSCs send a receipt before the submit_sm_resp is read) and
// is answered ESME_ROK at once, or, with Config.Miss (several nodes), once
// the other nodes have answered.
func (b *Book) Receive(s SMSC, req *smpp.Request, r Report) {
	final := r.State.Final()
	t, found, parked := b.lookupOrPark(s, r, final)
	if !found && b.lookupStored(s, req, r, final, parked) {
		return // not in memory: a store lookup, off this goroutine, forwards and answers
	}
	answer := func(st smpp.CommandStatus) { req.Respond(st, nil) }
	if !found && b.miss != nil {
		b.missed(s, r, b.key(s, r.ID, true), parked, answer)
		return
	}
	if !found {
		if parked {
			b.count(s.Name, "parked")
		} else {
			b.count(s.Name, "uncorrelated")
		}
		answer(smpp.StatusOK)
		return
	}
	b.count(s.Name, "correlated")
	b.deliver(t, r, answer)
}

// storeLookup is a receipt waiting for a store lookup.
type storeLookup struct {
	s             SMSC
	r             *smpp.Request
	pr            Report
	final, parked bool
}

// lookupStored takes a receipt the memory book did not know (parked says
// whether lookupOrPark parked it) and looks it up in the store on a
// worker, which forwards it and answers r. It returns false, leaving r to
// the caller, when there is no store.
func (b *Book) lookupStored(sm SMSC, r *smpp.Request, pr Report, final, parked bool) bool {
	s := b.store
	if s == nil {
		return false
	}
	k := b.key(sm, pr.ID, true)
	if parked && !b.markLookup(k, true) { // before a worker can see it
		b.count(sm.Name, "parked")
		r.Respond(smpp.StatusOK, nil) // Add delivered it meanwhile
		return true
	}
	s.lookMu.RLock() // a leaf: no other lock is taken while it is held
	if s.lookClosed {
		s.lookMu.RUnlock()
		if parked {
			b.markLookup(k, false)
		}
		return false
	}
	select {
	case s.lookups <- storeLookup{s: sm, r: r, pr: pr, final: final, parked: parked}:
		s.lookMu.RUnlock()
		return true
	default:
	}
	s.lookMu.RUnlock()
	// Too many lookups waiting: ask the SMSC to send it again later
	// rather than give it up.
	s.busy.Inc()
	if parked && !b.unpark(k) {
		b.count(sm.Name, "parked")
		r.Respond(smpp.StatusOK, nil) // Add delivered it meanwhile
		return true
	}
	r.Respond(smpp.StatusXTAppn, nil)
	return true
}

// resolve looks a receipt up in the store and forwards it if found; it
// runs on a lookup worker. A receipt still parked is taken from the lot
// only when the store has its mapping: if Add takes it first, Add
// delivers it and resolve only answers (a parked receipt being looked up
// does not expire, so a receipt gone from the lot was delivered). On a
// miss it stays parked for the rest of its grace period.
func (b *Book) resolve(q storeLookup) {
	s := b.store
	if h := s.lookHook.Load(); h != nil {
		(*h)()
	}
	canon := dlr.CanonicalKey(q.pr.ID, q.s.IDBase, true)
	k := b.keyOf(q.s, canon)
	answer := func(st smpp.CommandStatus) { q.r.Respond(st, nil) }
	t, found, err := s.get(q.s.Name, canon)
	switch {
	case err != nil:
		s.lookErr.Inc()
		s.logErr("receipt store lookup", err)
		if q.parked && !b.unpark(k) {
			b.count(q.s.Name, "parked")
			answer(smpp.StatusOK) // Add delivered it meanwhile
			return
		}
		answer(smpp.StatusXTAppn) // the SMSC sends it again
		return
	case !found:
		s.miss.Inc()
		if b.miss != nil {
			b.missed(q.s, q.pr, k, q.parked, answer)
			return
		}
		outcome := "uncorrelated"
		if q.parked {
			outcome = "parked" // add may still deliver it within the grace period
			b.markLookup(k, false)
		}
		b.count(q.s.Name, outcome)
		answer(smpp.StatusOK)
		return
	}
	s.hit.Inc()
	b.count(q.s.Name, "correlated")
	if q.parked && !b.unpark(k) {
		answer(smpp.StatusOK) // Add delivered it meanwhile
		return
	}
	if q.final {
		s.del(q.s.Name, canon)
	} else {
		b.remember(k, pack(t)) // its final receipt will take the fast path
	}
	b.deliver(t, q.pr, answer)
}
