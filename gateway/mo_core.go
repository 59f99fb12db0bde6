package gateway

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/outbox"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
)

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
