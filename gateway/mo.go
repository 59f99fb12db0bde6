package gateway

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
)

// serveSMSC handles requests an SMSC sends on our binds: delivery
// receipts and mobile-originated messages. The deliver_sm_resp says
// ESME_ROK only once what the message carried is safe: a consent change
// synced to disk, a receipt forwarded or durably queued. A storage failure
// answers ESME_RX_T_APPN so the SMSC retries.
func (g *Gateway) serveSMSC(l *smscLink, r *smpp.Request) {
	if g.refuseSMSCWhileUnhealthy(r) {
		return // diskfault.go: the SMSC retries
	}
	switch p := r.PDU.(type) {
	case *smpp.DeliverSM:
		if p.IsReceipt() {
			g.handleReceipt(l, r, p)
			return
		}
		g.handleMO(l, r, &p.SM)
	case *smpp.DataSM:
		sm := &smpp.SM{Source: p.Source, Dest: p.Dest, ESMClass: p.ESMClass, DataCoding: p.DataCoding, TLVs: p.TLVs}
		if p.ESMClass&smpp.ESMClassTypeMask == smpp.ESMClassReceipt || p.ESMClass&smpp.ESMClassTypeMask == smpp.ESMClassIntermediate {
			g.handleReceipt(l, r, &smpp.DeliverSM{SM: *sm})
			return
		}
		g.handleMO(l, r, sm)
	case *smpp.AlertNotification:
		// Nothing to do: no response exists.
	default:
		r.Respond(smpp.StatusInvCmdID, nil)
	}
}

// handleMO processes a mobile-originated message from an SMSC.
func (g *Gateway) handleMO(l *smscLink, r *smpp.Request, sm *smpp.SM) {
	from, to, t, ok := g.moKeys(l, r, sm)
	if !ok {
		return // dead-lettered and answered (deadletter.go)
	}
	body := sm.Text()
	dc := coding.DataCoding(sm.DataCoding)
	text, finish, ex, ok := g.moText(l, r, sm, t, from, to)
	if !ok {
		return // a part stored until its set completes, or refused: answered
	}
	// user_message_reference is no id to deduplicate by: it is the
	// handset's message reference (TP-MR, 8 bits, cycling; constant from
	// some SMSCs), so two different MOs (HELP then STOP, or STOP, START,
	// STOP) may carry the same one. A single-part MO's retry is told by
	// the retry memory (moretry.go) instead.
	ex.track = ex.reading != "" // single part: readings was called
	if finish != nil {
		// The part that completed a stored set: the SMSC's retry of it
		// (its answer lost) completes the set again, and is known by
		// that part's octets (with its UDH and reference, if any).
		ex.track, ex.body, ex.dc = true, body, uint8(dc)
	}
	go g.inbound(l, r, t, ChannelSMS, to, from, text, "", finish, ex)
}

// moText reads an MO's text: a single part's as link l reads its octets
// (ex says how, for the keyword screen and the evidence), or a
// concatenated set's once its last part arrived (finish is then set, for
// the part that completed the stored set). It returns false when it
// answered the SMSC itself: a part stored until its set completes, or a
// part refused.
func (g *Gateway) moText(l *smscLink, r *smpp.Request, sm *smpp.SM, t *Tenant, from, to string) (text string, finish func(ok bool), ex moExtra, ok bool) {
	body := sm.Text()
	dc := coding.DataCoding(sm.DataCoding)
	// held hands a part of a concatenated MO to addPart: answered (and
	// false returned) unless it completed its set.
	held := func(p part) bool {
		msg, done, err := g.addPart(p)
		switch {
		case errors.Is(err, errBadPart):
			// A retry cannot fix it, and it may hold part of a STOP: it is
			// kept with its raw PDU, logged and counted, then answered.
			g.metrics.mo.WithLabelValues(t.ID, "bad_part").Inc()
			g.deadLetterMO(l, r, sm, unkeyedRefusedPart, err)
			return false
		case err != nil:
			g.metrics.mo.WithLabelValues(t.ID, "store_failed").Inc()
			g.log.Error("MO part not stored, asking the SMSC to retry", "tenant", t.ID, "err", err)
			r.Respond(smpp.StatusXTAppn, nil)
			return false
		case msg == nil:
			r.Respond(smpp.StatusOK, nil) // stored; the set is not complete yet
			return false
		}
		text, finish = msg.Text, done
		return true
	}
	switch {
	case sm.ESMClass&smpp.ESMClassUDHI != 0:
		udh, rest, err := coding.ParseUDH(body)
		if err != nil {
			// A header that cannot be used (a concatenation element
			// numbering its part 0 or beyond the total, which TS 23.040
			// 9.2.3.24.1 says to ignore; a malformed element) is skipped
			// when its length fits, and the rest is the text; UDHI set
			// over octets that hold no header (an SMSC copying esm_class
			// carelessly) leaves them all the text. Either way a STOP is
			// still screened, and the MO kept and forwarded.
			g.metrics.mo.WithLabelValues(t.ID, "bad_udh").Inc()
			rest = body
			if len(body) > 0 && 1+int(body[0]) <= len(body) {
				rest = body[1+int(body[0]):]
			}
			text, _ = coding.Decode(l.readAs(dc), rest)
			ex.readings(l, dc, rest)
		} else if udh.Concat && udh.Total > 1 {
			// The reference width is part of the set.
			if !held(part{set: from + "|" + to, ref: udh.Ref, ref8: !udh.Ref16, total: udh.Total, seq: udh.Seq, dc: l.readAs(dc), data: rest}) {
				return text, nil, ex, false
			}
		} else {
			text, _ = coding.Decode(l.readAs(dc), rest)
			ex.readings(l, dc, rest)
		}
	default:
		// sar_* numbering part 0 or beyond the total is ignored, like the
		// UDH element (the part is a message of its own).
		if ref, total, seq, ok := sm.TLVs.SAR(); ok && total > 1 && seq >= 1 && seq <= total {
			if !held(part{set: from + "|" + to, ref: ref, total: total, seq: seq, dc: l.readAs(dc), data: body}) {
				return text, nil, ex, false
			}
		} else {
			var err error
			text, err = coding.Decode(l.readAs(dc), body)
			if err != nil {
				text = ""
			}
			ex.readings(l, dc, body)
		}
	}
	return text, finish, ex, true
}

// moExtra is what handleMO knows of a single-part MO beyond its text: how
// its octets were read, for the keyword screen and the evidence.
type moExtra struct {
	reading    string // how text was decoded: "gsm7", "ia5 (data_coding 0 read as ia5)", ...
	alt        string // another reading of the octets, screened when text has no keyword
	altReading string
	// track: a single-part MO or the part completing a set, whose SMSC
	// retry only its content can tell (moretry.go); body and dc are
	// its octets and data_coding as received.
	track bool
	body  []byte
	dc    uint8
}

// readings fills e for octets b that link l labelled dc: the reading used
// (with the SMSC's override, if any) and, when the octets make sense only
// in another alphabet or form (coding.PackedGSM7Reading: packed septets
// labelled GSM or IA5; coding.AltReading: GSM 03.38 labelled IA5, Latin-1
// labelled GSM; coding.LittleEndianUCS2: UTF-16LE labelled UCS-2), that
// other reading.
func (e *moExtra) readings(l *smscLink, dc coding.DataCoding, b []byte) {
	e.body, e.dc = b, uint8(dc)
	read := l.readAs(dc)
	name := coding.CharsetName(read)
	e.reading = name
	if read != dc {
		e.reading += " (data_coding " + strconv.Itoa(int(dc)) + " read as " + e.reading + ")"
	}
	if name == "gsm7" || name == "ia5" {
		if pk, ok := coding.PackedGSM7Reading(b); ok {
			e.alt, e.altReading = pk, "gsm7 packed (data_coding "+strconv.Itoa(int(dc))+" holds packed GSM 03.38 septets)"
			return
		}
	}
	if alt, ok := coding.AltReading(read, b); ok {
		e.alt, _ = coding.Decode(alt, b)
		e.altReading = coding.CharsetName(alt) + " (data_coding " + strconv.Itoa(int(dc)) + " holds " + coding.CharsetName(alt) + " octets)"
	} else if read == coding.UCS2 {
		if le, ok := coding.LittleEndianUCS2(b); ok {
			e.alt, e.altReading = le, "ucs2 little-endian (data_coding 8 holds UTF-16LE octets)"
		}
	}
}

// smsMO is the SMS adapter of one MO to the MO consent core (moConsent):
// it applies the MO to the consent store as it is, and answers the SMSC
// (ESME_ROK once accepted, ESME_RX_T_APPN on a failure), keeping the
// retry memory (moretry.go) of an MO the SMSC gives no id for.
type smsMO struct {
	g      *Gateway
	l      *smscLink
	r      *smpp.Request
	in     moIn
	ex     moExtra
	finish func(ok bool) // for the part that completed a stored set
	// try follows an MO whose answer may not reach the SMSC: what was
	// done is remembered so that the retry does not do it again.
	try      moAttempt
	tracked  bool
	answered bool
}

// inbound runs an MO from an SMSC through the MO consent core, answering
// the SMSC.
//
// It runs on a goroutine of its own, so it recovers its panics: the panic
// is logged and counted, and an SMSC not answered yet gets ESME_RX_T_APPN
// (it retries; a retried MO is recognised as a duplicate).
//
// finish, if not nil, is told whether the SMSC was answered ESME_ROK (the
// stored parts of a concatenated MO are removed, or restored for the retry).
func (g *Gateway) inbound(l *smscLink, r *smpp.Request, t *Tenant, channel, to, from, text, msgID string, finish func(ok bool), ex moExtra) {
	s := &smsMO{g: g, l: l, r: r, ex: ex, finish: finish, in: moIn{t: t, seen: channel, via: l,
		msg: consent.InboundMessage{Tenant: t.ID, Channel: channel, Sender: to, Recipient: from, Text: text, MessageID: msgID,
			Simulated: g.fromSimulator(l), Reading: ex.reading, AltText: ex.alt, AltReading: ex.altReading}}}
	s.tracked = ex.track && g.retries != nil
	if s.tracked {
		g.beginAttempt(&s.try, l, from, to, ex)
		if s.try.retried && s.try.prior.ID != "" {
			s.in.msg.MessageID = s.try.prior.ID // the consent store knows it: a Duplicate
		}
		s.in.retried, s.in.fwdBefore = s.try.retried, s.try.fwd
	}
	defer func() {
		if v := recover(); v != nil {
			g.metrics.panics.Inc()
			g.log.Error("panic handling an MO", "tenant", t.ID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !s.answered {
				s.respond(smpp.StatusXTAppn)
			}
		}
	}()
	if h := testHookInbound.Load(); h != nil {
		(*h)()
	}
	switch err := g.moConsent(context.Background(), &s.in, s); {
	case err == nil:
	case errors.Is(err, consent.ErrInvalidNumber):
		s.respond(smpp.StatusOK) // a retry cannot fix it
	default:
		s.respond(smpp.StatusXTAppn)
	}
}

func (s *smsMO) apply(ctx context.Context, _ *Tenant, msg consent.InboundMessage) (consent.Result, error) {
	return s.g.consent.Inbound(ctx, msg)
}

func (s *smsMO) applied(res consent.Result) { s.try.changed = res.Changed || len(res.Replies) > 0 }

func (s *smsMO) accepted() {
	s.try.fwd = true
	s.respond(smpp.StatusOK)
}

// respond answers the SMSC with st, restoring the stored parts of a set
// first when st asks for a retry, and remembering a tracked MO whose
// answer may not reach the SMSC.
func (s *smsMO) respond(st smpp.CommandStatus) {
	g, l, in := s.g, s.l, &s.in
	s.answered = true
	if s.finish != nil && st != smpp.StatusOK {
		s.finish(false) // the parts wait again before the SMSC is told to retry
	}
	switch {
	case !s.tracked:
		s.r.Respond(st, nil)
	case st != smpp.StatusOK:
		g.unanswered(l, in.t, in.msg.Channel, in.msg.Recipient, in.msg.Sender, s.ex, &s.try) // before the SMSC learns it must retry
		s.r.Respond(st, nil)
	default:
		s.r.RespondNotify(st, nil, func(written bool) {
			switch {
			case !written:
				g.lostAnswer(l, in.t, in.msg.Channel, in.msg.Recipient, in.msg.Sender, s.ex, &s.try)
			case s.try.retried:
				go func() { // the callback must not wait for the store
					if err := g.retries.forget(s.try.key); err != nil {
						g.log.Warn("answered MO retry not forgotten", "smsc", l.name, "err", err)
					}
				}()
			}
		})
	}
	if s.finish != nil && st == smpp.StatusOK {
		s.finish(true)
	}
}
