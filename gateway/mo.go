package gateway

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/outbox"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
	"github.com/optgate/optgate/smpp/dlr"
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

func (g *Gateway) handleReceipt(l *smscLink, r *smpp.Request, d *smpp.DeliverSM) {
	pr, ok := parseReceipt(d)
	if !ok {
		g.metrics.receipts.WithLabelValues(l.name, "unparsable").Inc()
		if pr.id == "" && pr.stat == "" {
			// Flagged a receipt but carrying none (no id, no state in
			// its text or TLVs): read as the MO it may be, so a STOP an
			// SMSC mislabelled is still screened, kept and forwarded.
			g.handleMO(l, r, &d.SM)
			return
		}
		r.Respond(smpp.StatusOK, nil) // half a receipt: nothing to correlate; retrying will not help
		return
	}
	final := pr.state.Final()
	t, found, parked := g.receipts.lookupOrPark(l, pr.id, final, func(t receiptTarget) {
		g.forwardReceipt(l, t, pr, func(smpp.CommandStatus) {})
	})
	if !found && g.receipts.lookupStored(l, r, pr, final, parked) {
		return // not in memory: a store lookup, off this goroutine, forwards and answers
	}
	answer := func(st smpp.CommandStatus) { r.Respond(st, nil) }
	if !found {
		if parked {
			g.metrics.receipts.WithLabelValues(l.name, "parked").Inc()
		} else {
			g.metrics.receipts.WithLabelValues(l.name, "uncorrelated").Inc()
		}
		answer(smpp.StatusOK)
		return
	}
	g.metrics.receipts.WithLabelValues(l.name, "correlated").Inc()
	g.forwardReceipt(l, t, pr, answer)
}

// forwardReceipt sends a receipt to where its message came from and calls
// answer with the status for the SMSC.
func (g *Gateway) forwardReceipt(_ *smscLink, t receiptTarget, pr parsedReceipt, answer func(smpp.CommandStatus)) {
	state := receiptStateName(pr.state)
	reason := ""
	if pr.err != "" && pr.err != "000" {
		reason = "err:" + pr.err
	}
	g.statuses.update(t.msgID, state, reason)
	switch t.origin {
	case OriginSMPP:
		d := upstreamReceipt(t, pr)
		done := func(res smpp.Result) {
			if res.Err == nil {
				g.metrics.forwarded.WithLabelValues("receipt", "smpp").Inc()
				answer(smpp.StatusOK)
				return
			}
			g.spoolDeliver(t.account, d, answer)
		}
		// This runs on the SMSC session's read goroutine: never wait for
		// the upstream's window here (that would stall the SMSC's
		// responses). Try a free slot now; else wait on a goroutine.
		err := g.smppSrv.DeliverAsync(doneCtx, t.account.ID(), d, done)
		if errors.Is(err, context.Canceled) { // every receiver's window is full
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := g.smppSrv.DeliverAsync(ctx, t.account.ID(), d, done); err != nil {
					g.spoolDeliver(t.account, d, answer)
				}
			}()
			return
		}
		if err != nil {
			g.spoolDeliver(t.account, d, answer)
		}
	case OriginHTTP:
		err := g.emit(t.tenant, "message.status", map[string]any{
			"id": t.msgID, "to": t.to, "from": t.from, "state": state, "error": pr.err, "part": t.part, "parts": t.parts,
		})
		if err != nil {
			answer(smpp.StatusXTAppn)
			return
		}
		answer(smpp.StatusOK)
	default:
		answer(smpp.StatusOK)
	}
}

// upstreamReceipt is the deliver_sm receipt for an upstream ESME, with
// our message id in both the text and the TLV form.
func upstreamReceipt(t receiptTarget, pr parsedReceipt) *smpp.DeliverSM {
	done := pr.done
	if done.IsZero() {
		done = time.Now()
	}
	st := pr.state
	if st == 0 {
		st = dlr.StateFromStat(pr.stat)
	}
	stat := pr.stat
	if stat == "" {
		stat = st.Stat()
	}
	errField := pr.err
	if errField == "" {
		errField = "000"
	}
	body := dlr.Format(dlr.Receipt{ID: t.msgID, Submitted: 1, Delivered: boolInt(st == dlr.Delivered),
		SubmitDate: done, DoneDate: done, Stat: stat, State: st, Err: errField})
	d := &smpp.DeliverSM{SM: smpp.SM{
		Source:       addrOf(t.to, 1, 1),
		Dest:         addrOf(t.from, 1, 1),
		ESMClass:     smpp.ESMClassReceipt,
		ShortMessage: []byte(body),
	}}
	_ = d.TLVs.SetCString(smpp.TagReceiptedMessageID, t.msgID)
	_ = d.TLVs.SetUint8(smpp.TagMessageState, uint8(st))
	return d
}

// doneCtx is an already cancelled context: a window Acquire with it takes
// a free slot or fails at once.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func receiptStateName(s dlr.State) string {
	switch s {
	case dlr.Delivered:
		return "delivered"
	case dlr.Expired:
		return "expired"
	case dlr.Deleted:
		return "deleted"
	case dlr.Undeliverable:
		return "undeliverable"
	case dlr.Accepted:
		return "accepted_by_carrier"
	case dlr.Rejected:
		return "rejected"
	case dlr.Enroute:
		return "enroute"
	}
	return "unknown"
}

// messageState maps our state names to message_state for query_sm.
func messageState(s string) uint8 {
	switch s {
	case "delivered":
		return uint8(dlr.Delivered)
	case "expired":
		return uint8(dlr.Expired)
	case "undeliverable", "failed":
		return uint8(dlr.Undeliverable)
	case "blocked", "rejected":
		return uint8(dlr.Rejected)
	case "accepted", "queued", "held", "enroute", "accepted_by_carrier":
		return uint8(dlr.Enroute)
	}
	return uint8(dlr.Unknown)
}

// spoolDeliver keeps a deliver_sm for an upstream ESME that is not bound
// (or refused it) in the durable outbox, then answers the SMSC.
func (g *Gateway) spoolDeliver(a *Account, d *smpp.DeliverSM, answer func(smpp.CommandStatus)) {
	raw, err := smpp.AppendPDU(nil, 0, 0, d)
	if err != nil {
		answer(smpp.StatusSysErr)
		return
	}
	if err := g.outbox.Put(&outbox.Item{ID: g.ids.next(), Kind: "deliver", Account: a.ID(), Payload: jsonBytes(raw)}); err != nil {
		g.log.Error("cannot spool deliver_sm", "account", a.ID(), "err", err)
		answer(smpp.StatusXTAppn)
		return
	}
	answer(smpp.StatusOK)
}

// deliverSpooled is the outbox worker for spooled deliver_sm.
func (g *Gateway) deliverSpooled(ctx context.Context, it *outbox.Item) error {
	raw, err := unjsonBytes(it.Payload)
	if err != nil {
		return outbox.Permanent(err)
	}
	_, p, err := smpp.Decode(raw)
	if err != nil {
		return outbox.Permanent(err)
	}
	_, _, err = g.smppSrv.Deliver(ctx, it.Account, p)
	if err == nil {
		g.metrics.forwarded.WithLabelValues("spooled", "smpp").Inc()
	}
	return err
}

// handleMO processes a mobile-originated message from an SMSC.
func (g *Gateway) handleMO(l *smscLink, r *smpp.Request, sm *smpp.SM) {
	from, to, t, ok := g.moKeys(l, r, sm)
	if !ok {
		return // dead-lettered and answered (deadletter.go)
	}
	body := sm.Text()
	dc := coding.DataCoding(sm.DataCoding)
	var ex moExtra
	var text string
	var finish func(ok bool) // for the part that completed a stored set
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
				return
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
				return
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

// inbound runs an MO through the consent engine, answers the SMSC, sends
// the replies and forwards the message and events to the tenant.
//
// It runs on a goroutine of its own, so it recovers its panics: the panic
// is logged and counted, and an SMSC not answered yet gets ESME_RX_T_APPN
// (it retries; a retried MO is recognised as a duplicate).
//
// finish, if not nil, is told whether the SMSC was answered ESME_ROK (the
// stored parts of a concatenated MO are removed, or restored for the retry).
func (g *Gateway) inbound(l *smscLink, r *smpp.Request, t *Tenant, channel, to, from, text, msgID string, finish func(ok bool), ex moExtra) {
	answered := false
	// An MO the SMSC gives no id for is followed (moretry.go): if its
	// answer may not reach the SMSC, what was done is remembered so that
	// the retry does not do it again.
	var try moAttempt
	tracked := ex.track && g.retries != nil
	if tracked {
		g.beginAttempt(&try, l, from, to, ex)
		if try.retried && try.prior.ID != "" {
			msgID = try.prior.ID // the consent store knows it: a Duplicate
		}
	}
	respond := func(st smpp.CommandStatus) {
		answered = true
		if finish != nil && st != smpp.StatusOK {
			finish(false) // the parts wait again before the SMSC is told to retry
		}
		switch {
		case !tracked:
			r.Respond(st, nil)
		case st != smpp.StatusOK:
			g.unanswered(l, t, channel, from, to, ex, &try) // before the SMSC learns it must retry
			r.Respond(st, nil)
		default:
			r.RespondNotify(st, nil, func(written bool) {
				switch {
				case !written:
					g.lostAnswer(l, t, channel, from, to, ex, &try)
				case try.retried:
					go func() { // the callback must not wait for the store
						if err := g.retries.forget(try.key); err != nil {
							g.log.Warn("answered MO retry not forgotten", "smsc", l.name, "err", err)
						}
					}()
				}
			})
		}
		if finish != nil && st == smpp.StatusOK {
			finish(true)
		}
	}
	defer func() {
		if v := recover(); v != nil {
			g.metrics.panics.Inc()
			g.log.Error("panic handling an MO", "tenant", t.ID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !answered {
				respond(smpp.StatusXTAppn)
			}
		}
	}()
	if h := testHookInbound.Load(); h != nil {
		(*h)()
	}
	res, err := g.consent.Inbound(context.Background(), consent.InboundMessage{
		Tenant: t.ID, Channel: channel, Sender: to, Recipient: from, Text: text, MessageID: msgID, ReceivedAt: time.Now(),
		Simulated: g.fromSimulator(l),
		Reading:   ex.reading, AltText: ex.alt, AltReading: ex.altReading,
	})
	if err != nil {
		if errors.Is(err, consent.ErrInvalidNumber) {
			g.metrics.mo.WithLabelValues(t.ID, "invalid_number").Inc()
			g.metrics.messages.WithLabelValues("mo", channel, "invalid_number").Inc()
			respond(smpp.StatusOK) // a retry cannot fix it
			return
		}
		g.metrics.mo.WithLabelValues(t.ID, "store_failed").Inc()
		g.metrics.messages.WithLabelValues("mo", channel, "store_failed").Inc()
		g.log.Error("MO not stored, asking the SMSC to retry", "tenant", t.ID, "err", err)
		respond(smpp.StatusXTAppn)
		return
	}
	try.changed = res.Changed || len(res.Replies) > 0
	if h := testHookAfterConsent.Load(); h != nil {
		(*h)()
	}
	// Forward to the tenant before acknowledging, so the platform's copy
	// is durable too. The confirmation itself was stored pending by the
	// consent engine in the same synced change as the opt-out. A retry
	// whose first attempt stored its copy is not forwarded again; one
	// whose first attempt did not is, although the consent store calls it
	// a Duplicate.
	fres := res
	if try.retried {
		fres.Duplicate = try.fwd
	}
	if ferr := g.forwardMO(t, channel, from, to, text, fres); ferr != nil {
		g.metrics.mo.WithLabelValues(t.ID, "store_failed").Inc()
		g.metrics.messages.WithLabelValues("mo", channel, "store_failed").Inc()
		g.log.Error("MO not queued for the tenant, asking the SMSC to retry", "tenant", t.ID, "err", ferr)
		respond(smpp.StatusXTAppn)
		return
	}
	try.fwd = true
	respond(smpp.StatusOK)
	outcome := "forwarded"
	if res.Matched {
		outcome = "keyword"
	}
	received := "received" // as the WhatsApp channel counts its MOs
	if res.Duplicate {
		outcome = "duplicate"
		received = "duplicate"
	}
	if try.retried {
		outcome = "retry" // the SMSC's retry of an MO whose answer it may not have had
		received = "duplicate"
	}
	g.metrics.mo.WithLabelValues(t.ID, outcome).Inc()
	g.metrics.messages.WithLabelValues("mo", channel, received).Inc()
	g.noteChannel(t, res.Recipient, channel)
	g.sendReplies(l, t, res)
}

// testHookInbound, if set, runs at the start of every inbound (tests).
var testHookInbound atomic.Pointer[func()]

// testHookAfterConsent, if set, runs in inbound once the consent store
// applied the MO, before it is forwarded (tests).
var testHookAfterConsent atomic.Pointer[func()]

// heldActions releases or fails the held messages a consent change
// decided.
func (g *Gateway) heldActions(t *Tenant, res consent.Result) {
	for _, h := range res.Released {
		g.releaseHeld(t, h)
	}
	for _, h := range res.Dropped {
		g.failHeld(t, h, "recipient_opted_out")
	}
}

// sendReplies sends the engine's replies from the number that received
// the keyword, through the SMSC it came from when it can submit, and
// releases or fails held messages.
func (g *Gateway) sendReplies(l *smscLink, t *Tenant, res consent.Result) {
	for _, rep := range res.Replies {
		g.sendConsentReply(l, t, rep)
	}
	g.heldActions(t, res)
}

// sendConsentReply sends one reply the consent engine stored pending, and
// reports it sent once the carrier accepted it. A reply that fails stays
// pending and is retried by resendPendingReplies.
func (g *Gateway) sendConsentReply(l *smscLink, t *Tenant, rep consent.Reply) {
	if rep.ID != "" {
		if _, busy := g.replying.LoadOrStore(rep.ID, struct{}{}); busy {
			return
		}
	}
	m := &Message{ID: g.ids.next(), Tenant: t, Origin: OriginInternal, Channel: rep.Channel,
		From: rep.Sender, To: rep.Recipient, Text: rep.Text, Received: time.Now(),
		done: func(m *Message, o Outcome) {
			g.record(m, o)
			if o.Kind == Accepted {
				g.metrics.replies.WithLabelValues(string(rep.Kind), rep.Lang).Inc()
				if rep.ID != "" {
					if err := g.consent.ReplySent(rep.ID); err != nil {
						g.log.Warn("reply sent but not recorded as sent", "tenant", t.ID, "err", err)
					}
				}
			} else {
				g.log.Warn("auto-reply not sent, will retry", "tenant", t.ID, "kind", string(rep.Kind), "outcome", o.Kind.String(), "err", o.Err)
			}
			if rep.ID != "" {
				g.replying.Delete(rep.ID)
			}
		}}
	if m.Channel == "" {
		m.Channel = ChannelSMS
	}
	g.sendVia(l, m)
}

// resendPendingReplies sends the replies a crash or a carrier failure left
// pending (older than a grace period, so as not to race the first send),
// and gives up on those older than ten minutes.
func (g *Gateway) resendPendingReplies(now time.Time) {
	err := g.consent.PendingReplies(now.Add(-30*time.Second), func(rep consent.Reply) bool {
		t := g.tenants[rep.Tenant]
		if t == nil || now.Sub(rep.Created) > 10*time.Minute {
			g.log.Error("auto-reply abandoned after retries", "tenant", rep.Tenant, "kind", string(rep.Kind), "created", rep.Created)
			g.metrics.replies.WithLabelValues("abandoned", rep.Lang).Inc()
			_ = g.consent.ReplySent(rep.ID)
			return true
		}
		g.sendConsentReply(nil, t, rep)
		return true
	})
	if err != nil {
		g.log.Warn("pending replies", "err", err)
	}
}

// sendVia sends an internal message through link l when l can submit,
// else through the normal route.
func (g *Gateway) sendVia(l *smscLink, m *Message) {
	if m.Channel != ChannelSMS || l == nil || l.cfg.Mode == "receiver" {
		g.mt.Handle(context.Background(), m)
		return
	}
	g.sendOn(l, m)
}

// forwardMO hands the MO (and any consent events) to the tenant: deliver_sm
// to its bound ESMEs and/or a webhook, both durable before we acknowledge.
func (g *Gateway) forwardMO(t *Tenant, channel, from, to, text string, res consent.Result) error {
	if res.Duplicate {
		return nil
	}
	var items []*outbox.Item
	for _, ev := range res.Events {
		it, err := g.eventItem(t, ev.Type, map[string]any{"channel": ev.Channel, "recipient": ev.Recipient, "sender": ev.Sender, "event_id": ev.ID})
		if err != nil {
			return err
		}
		if it != nil {
			items = append(items, it)
		}
	}
	data := map[string]any{"channel": channel, "from": from, "to": to, "text": text}
	if res.Matched {
		data["keyword"] = res.Match.Keyword
		data["keyword_class"] = res.Match.Class.String()
		data["lang"] = res.Match.Lang
	}
	it, err := g.eventItem(t, "message.received", data)
	if err != nil {
		return err
	}
	if it != nil {
		items = append(items, it)
	}
	if len(items) > 0 {
		if err := g.outbox.Put(items...); err != nil {
			return err
		}
	}
	if channel != ChannelSMS {
		return nil
	}
	for _, a := range t.accounts {
		d := &smpp.DeliverSM{SM: smpp.SM{Source: addrOf(from, 1, 1), Dest: addrOf(to, 1, 1)}}
		enc, dc := encodeText(text)
		d.DataCoding = dc
		if len(enc) <= smpp.MaxShortMessage {
			d.ShortMessage = enc
		} else {
			_ = d.TLVs.Set(smpp.TagMessagePayload, enc)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _, err := g.smppSrv.Deliver(ctx, a.ID(), d)
		cancel()
		if err == nil {
			g.metrics.forwarded.WithLabelValues("mo", "smpp").Inc()
			continue
		}
		if !errors.Is(err, smpp.ErrNotBound) {
			g.log.Warn("MO not accepted by upstream, spooling", "account", a.ID(), "err", err)
		}
		serr := make(chan smpp.CommandStatus, 1)
		g.spoolDeliver(a, d, func(st smpp.CommandStatus) { serr <- st })
		if st := <-serr; st != smpp.StatusOK {
			return errors.New("spool failed: " + st.String())
		}
	}
	return nil
}

func encodeText(s string) ([]byte, uint8) {
	dc := coding.Best(s)
	b, err := coding.Encode(dc, s)
	if err != nil {
		b, _ = coding.Encode(coding.UCS2, s)
		dc = coding.UCS2
	}
	return b, uint8(dc)
}
