package gateway

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/outbox"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
)

// moIn is one inbound user message as the MO consent core takes it,
// whatever channel brought it.
type moIn struct {
	t *Tenant
	// msg is what the consent store keeps: Channel, Sender (our number
	// that received it), Recipient (the user's key), Text, MessageID,
	// ReceivedAt (now when zero) and the channel's evidence.
	msg consent.InboundMessage
	// seen is what noteChannel records as the channel the user last
	// wrote on: "sms", "whatsapp/<phone_number_id>".
	seen string
	// via is the SMSC link it came over (its replies go back through it
	// when the link can submit); nil for WhatsApp.
	via *smscLink
	// retried: the SMSC's retry of an MO whose answer may have been lost
	// (moretry.go); fwdBefore: its first attempt forwarded it.
	retried, fwdBefore bool
}

// moSource is the channel adapter the MO consent core calls back: how
// the channel applies the message to the consent store, and how it is
// told how far the core got. Its methods run on the core's goroutine.
type moSource interface {
	// apply records msg in the consent store (WhatsApp orders it by
	// event time first) and returns the store's result.
	apply(ctx context.Context, t *Tenant, msg consent.InboundMessage) (consent.Result, error)
	// applied is told the stored result, before the tenant's copy.
	applied(res consent.Result)
	// accepted is called once the change and the tenant's copy are
	// durable, before the counting and the replies: the SMS adapter
	// answers its SMSC ESME_ROK here.
	accepted()
}

// moConsent is the MO consent core, one for every channel: it runs an
// inbound message through the consent engine (src.apply), forwards it and
// the consent events to the tenant durably, tells src it was accepted,
// counts it, notes the channel the user wrote on and sends the engine's
// replies (releasing or failing held messages).
//
// It returns an error when the message must be retried by the channel
// (the adapter answers ESME_RX_T_APPN, or the webhook receiver retries),
// or one matching consent.ErrInvalidNumber when no retry can help (the
// adapter answers or dead-letters it). Every outcome is counted the same
// way for every channel: optgate_gateway_mo_total{tenant,outcome} and
// optgate_gateway_messages_total{direction="mo",channel,outcome}.
func (g *Gateway) moConsent(ctx context.Context, in *moIn, src moSource) error {
	t, ch := in.t, in.msg.Channel
	if in.msg.ReceivedAt.IsZero() {
		in.msg.ReceivedAt = time.Now()
	}
	res, err := src.apply(ctx, t, in.msg)
	if err != nil {
		if errors.Is(err, consent.ErrInvalidNumber) {
			g.countMO(t, ch, "invalid_number", "invalid_number")
			return err
		}
		g.countMO(t, ch, "store_failed", "store_failed")
		g.log.Error("MO not stored, asking for a retry", "tenant", t.ID, "channel", ch, "err", err)
		return err
	}
	src.applied(res)
	if res.Stale {
		src.accepted() // an opt-in older than the last consent change (WhatsApp): nothing to forward
		return nil
	}
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
	if in.retried {
		fres.Duplicate = in.fwdBefore
	}
	if err := g.forwardMO(t, ch, in.msg.Recipient, in.msg.Sender, in.msg.Text, fres); err != nil {
		g.countMO(t, ch, "store_failed", "store_failed")
		g.log.Error("MO not queued for the tenant, asking for a retry", "tenant", t.ID, "channel", ch, "err", err)
		return err
	}
	src.accepted()
	outcome := "forwarded"
	if res.Matched {
		outcome = "keyword"
	}
	received := "received"
	if res.Duplicate {
		outcome = "duplicate"
		received = "duplicate"
	}
	if in.retried {
		outcome = "retry" // the SMSC's retry of an MO whose answer it may not have had
		received = "duplicate"
	}
	g.countMO(t, ch, outcome, received)
	g.noteChannel(t, res.Recipient, in.seen)
	g.sendReplies(in.via, t, res)
	return nil
}

// countMO counts one inbound message in optgate_gateway_mo_total (by
// tenant) and optgate_gateway_messages_total (by channel).
func (g *Gateway) countMO(t *Tenant, channel, outcome, messages string) {
	g.metrics.mo.WithLabelValues(t.ID, outcome).Inc()
	g.metrics.messages.WithLabelValues("mo", channel, messages).Inc()
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
		d := &smpp.DeliverSM{SM: smpp.SM{Source: addrOf(from, consent.TONInternational, npiISDN), Dest: addrOf(to, consent.TONInternational, npiISDN)}}
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
