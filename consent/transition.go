package consent

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// optOutKind is what an opt-out blocks.
type optOutKind uint8

const (
	kindAll         optOutKind = iota // plain opt-out, tenant's scope
	kindAllFamily                     // STOPALL family: whole tenant
	kindMarketing                     // marketing only (keyword, operator, import)
	kindMarketingWA                   // marketing only, set by WhatsApp
)

func (k optOutKind) flags() uint8 {
	return [...]uint8{fAll, fAll | fAllFamily, fMkt, fMktWA}[k]
}

func (k optOutKind) full() bool { return k == kindAll || k == kindAllFamily }

func (k optOutKind) class() string {
	return [...]string{"all", "all_senders", "marketing", "marketing_whatsapp"}[k]
}

// origin is the evidence common to every record a change touches.
type origin struct {
	Evidence // Source, Sender, Keyword, Normalized, Lang, Text, MessageID, Operator, ConsentSource, ProofRef, Detail, Received
}

// transition is one opt-out or opt-in request.
type transition struct {
	chans  []string // channels to change; chans[0] is the one the request came on
	sender string   // sender key; "" when unknown (operator, import)
	rcpt   string   // E.164
	org    origin
	// reply: produce the confirmation (subject to RepeatConfirmWindow),
	// in lang, from sender.
	reply bool
	lang  string
	// allSenders (opt-in without sender): clear every sender-scoped record.
	allSenders bool
	// exactScope (import): the opt-out applies to sender's record when
	// sender is set, whatever the tenant's Scope.
	exactScope bool
	// noArchive (import): schedule no conversation.archived event.
	noArchive bool
}

func (c *change) chansFor(ch string) []string {
	if !c.t.cfg.CrossChannel {
		return []string{ch}
	}
	out := []string{ch}
	for _, o := range channels {
		if o != ch {
			out = append(out, o)
		}
	}
	return out
}

func (c *change) record(rs *recState, old, nw State, class string, o origin) uint64 {
	e := o.Evidence
	e.Channel, e.Recipient, e.Scope = rs.ch, rs.rcpt, scopeName(rs.scope)
	e.Old, e.New, e.Class = old.String(), nw.String(), class
	return c.evidence(e)
}

func (c *change) event(res *Result, typ, ch, scope, rcpt string, id uint64) {
	res.Events = append(res.Events, Event{
		ID: strconv.FormatUint(id, 36), Type: typ, Tenant: c.t.cfg.ID, Channel: ch,
		Sender: scope, Recipient: rcpt, Time: c.now.UTC(),
	})
}

// optOut applies an opt-out of kind k.
func (c *change) optOut(res *Result, tr transition, k optOutKind) error {
	scope := ""
	if k != kindAllFamily && (c.t.cfg.Scope == ScopeSender || tr.exactScope) && tr.sender != "" {
		scope = tr.sender
	}
	now := c.now.UnixNano()
	var (
		first       *recState
		firstChange bool
		lastConfirm int64
	)
	for i, ch := range tr.chans {
		rt, err := c.rec(ch, tr.rcpt, "")
		if err != nil {
			return err
		}
		// The sender is a number (or WhatsApp phone number id) of the
		// channel the request came on (chans[0]): no sender of another
		// channel matches it, so a cross-channel opt-out in sender scope is
		// tenant-wide on the other channels (otherwise it would block
		// nothing there).
		var rs *recState
		if tr.sender != "" && i == 0 {
			if rs, err = c.rec(ch, tr.rcpt, tr.sender); err != nil {
				return err
			}
		}
		target := rt
		if scope != "" && rs != nil {
			target = rs
		}
		old := effective(rs, rt)
		wasPending := rt.r.state == StatePending
		before, beforeState := target.r.flags, target.r.state
		target.r.flags |= k.flags()
		if k.full() {
			target.r.state = StateOptedOut
			if target.r.optedOutAt == 0 {
				target.r.optedOutAt = now
			}
		}
		changed := target.r.flags != before || target.r.state != beforeState
		if k.full() && wasPending {
			if err := c.takeHeld(ch, tr.rcpt, &res.Dropped); err != nil {
				return err
			}
			if rt != target {
				rt.r.state = StateNone
				c.mark(rt)
			}
			changed = true
		}
		if k.full() && i == 0 && !tr.noArchive && old != StateOptedOut && target.r.archiveDue == 0 {
			due := c.now.Add(c.t.cfg.ArchiveAfter).UnixNano()
			target.r.archiveDue = due
			c.set(archiveKey(due, c.t.cfg.ID, ch, tr.rcpt, target.scope), nil)
		}
		nw := effective(rs, rt)
		if changed {
			c.mark(target)
			id := c.record(target, old, nw, k.class(), tr.org)
			typ := EventOptedOut
			if !k.full() {
				typ = EventMarketingOptedOut
			}
			c.event(res, typ, ch, target.scope, tr.rcpt, id)
			res.Changed = true
		}
		if i == 0 {
			res.Old, res.New = old, nw
			first, firstChange = target, changed
			lastConfirm = rt.r.lastConfirm
			if rs != nil && rs.r.lastConfirm > lastConfirm {
				lastConfirm = rs.r.lastConfirm
			}
		}
	}
	if tr.reply && (firstChange || c.windowOver(lastConfirm)) {
		first.r.lastConfirm = now
		c.mark(first)
		if k.full() || res.New == StateOptedOut {
			c.reply(res, ReplyOptOut, c.t.templates(tr.lang).OptOut, tr)
		} else {
			// Marketing only: transactional messages continue, so the reply
			// must not say "no more messages".
			c.reply(res, ReplyMarketingOptOut, c.t.templates(tr.lang).MarketingOptOut, tr)
		}
	}
	return nil
}

func (c *change) windowOver(last int64) bool {
	w := c.t.cfg.RepeatConfirmWindow
	return w < 0 || last == 0 || c.now.Sub(time.Unix(0, last)) >= w
}

func (c *change) reply(res *Result, kind ReplyKind, text string, tr transition) {
	r := c.t.templates(tr.lang)
	res.Replies = append(res.Replies, c.pendingReply(kind, text, r.lang, tr.chans[0], tr.org.Sender, tr.rcpt))
}

// pendingReply makes a reply with its id and stores it pending, in the same
// synced change, until ReplySent: a crash before it was sent leaves it in
// PendingReplies, which the gateway resends.
func (c *change) pendingReply(kind ReplyKind, text, lang, ch, sender, rcpt string) Reply {
	rep := Reply{
		ID:     fmt.Sprintf("%016x%06x", c.now.UnixNano(), c.s.seq.Add(1)&0xFFFFFF),
		Tenant: c.t.cfg.ID, Created: c.now.UTC(),
		Kind: kind, Text: text, Lang: lang, Channel: ch, Sender: sender, Recipient: rcpt,
	}
	b, _ := json.Marshal(&rep) // plain struct: cannot fail
	c.set(replyKey(rep.ID), b)
	return rep
}

// optIn re-subscribes (opt-in keyword, YES to a prompt, operator opt-in):
// it clears plain and marketing opt-outs (not WhatsApp's own marketing
// stop) from the tenant-wide record and the sender's (or, with allSenders,
// every sender's) record, cancels their archive schedules, sets the
// tenant-wide record opted-in and releases held messages.
func (c *change) optIn(res *Result, tr transition) error {
	now := c.now.UnixNano()
	var (
		first       *recState
		firstChange bool
		lastConfirm int64
		kind        = ReplyOptIn
	)
	for i, ch := range tr.chans {
		rt, err := c.rec(ch, tr.rcpt, "")
		if err != nil {
			return err
		}
		scopes := []*recState{rt}
		var rs *recState
		if tr.sender != "" {
			if rs, err = c.rec(ch, tr.rcpt, tr.sender); err != nil {
				return err
			}
			scopes = append(scopes, rs)
		}
		if tr.allSenders {
			names, err := c.scopes(ch, tr.rcpt)
			if err != nil {
				return err
			}
			for _, n := range names {
				if n == "" || n == tr.sender {
					continue
				}
				r, err := c.rec(ch, tr.rcpt, n)
				if err != nil {
					return err
				}
				scopes = append(scopes, r)
			}
		}
		old := effective(rs, rt)
		wasPending := rt.r.state == StatePending
		changed := false
		for _, r := range scopes {
			if r.r.flags&(fAll|fAllFamily|fMkt) != 0 || (r != rt && r.r.state == StateOptedOut) {
				r.r.flags &^= fAll | fAllFamily | fMkt
				if r != rt {
					r.r.state = StateNone
				}
				r.r.optedOutAt = 0
				changed = true
				c.mark(r)
			}
			if r.r.archiveDue != 0 {
				c.del(archiveKey(r.r.archiveDue, c.t.cfg.ID, ch, tr.rcpt, r.scope))
				r.r.archiveDue = 0
				c.mark(r)
			}
		}
		if rt.r.state != StateOptedIn {
			rt.r.state = StateOptedIn
			c.mark(rt)
			changed = true
		}
		if wasPending {
			if err := c.takeHeld(ch, tr.rcpt, &res.Released); err != nil {
				return err
			}
		}
		nw := effective(rs, rt)
		if changed {
			id := c.record(rt, old, nw, "all", tr.org)
			c.event(res, EventOptedIn, ch, "", tr.rcpt, id)
			res.Changed = true
		}
		if i == 0 {
			res.Old, res.New = old, nw
			first, firstChange = rt, changed
			lastConfirm = rt.r.lastConfirm
			if rs != nil && rs.r.lastConfirm > lastConfirm {
				lastConfirm = rs.r.lastConfirm
			}
			if wasPending {
				kind = ReplyAttestationConfirm
			}
		}
	}
	if tr.reply && (firstChange || c.windowOver(lastConfirm)) {
		first.r.lastConfirm = now
		c.mark(first)
		tpl := c.t.templates(tr.lang)
		text := tpl.OptIn
		if kind == ReplyAttestationConfirm {
			text = tpl.AttestationConfirm
		}
		c.reply(res, kind, text, tr)
	}
	return nil
}

// marketingResume clears WhatsApp's own marketing stop (user_preferences
// resume) from the tenant-wide and sender records.
func (c *change) marketingResume(res *Result, tr transition) error {
	for _, ch := range tr.chans {
		rt, err := c.rec(ch, tr.rcpt, "")
		if err != nil {
			return err
		}
		list := []*recState{rt}
		if tr.sender != "" {
			rs, err := c.rec(ch, tr.rcpt, tr.sender)
			if err != nil {
				return err
			}
			list = append(list, rs)
		}
		for _, r := range list {
			if r.r.flags&fMktWA == 0 {
				continue
			}
			r.r.flags &^= fMktWA
			c.mark(r)
			st := effective(nil, rt)
			id := c.record(r, st, st, "marketing_whatsapp_resume", tr.org)
			c.event(res, EventMarketingResumed, ch, r.scope, tr.rcpt, id)
			res.Changed = true
		}
	}
	return nil
}
