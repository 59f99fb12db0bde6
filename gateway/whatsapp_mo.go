package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"strings"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/whatsapp"
)

// HandleEvent is the WhatsApp receiver's handler: it runs after the
// webhook body was made durable, and may be retried, so it is idempotent
// (the consent engine drops a repeated message id).
func (wa *waChannel) HandleEvent(ctx context.Context, ev whatsapp.Event) error {
	g := wa.g
	n := wa.numbers[ev.PhoneNumberID]
	if n == nil || n.tenant == nil {
		return nil // not ours: acknowledged and dropped (counted by the receiver)
	}
	t := n.tenant
	sender := n.cfg.Number
	if sender == "" {
		sender = "+" + strings.TrimPrefix(ev.DisplayPhoneNumber, "+")
	}
	if msg := ev.Message; msg != nil {
		if msg.Type == "system" && msg.SystemType == "user_changed_number" {
			return wa.numberChanged(ctx, n, sender, ev)
		}
		if msg.From == "" && msg.Type == "system" {
			return nil // a system notice about no user (e.g. user_changed_user_id alone): nothing to key
		}
		p, reason, err := wa.resolve(t, msg.From, msg.UserID)
		if err != nil {
			return err
		}
		if reason != "" {
			return wa.unkeyed(t, ev, reason)
		}
		if msg.From == "" {
			// The receiver opens windows by wa_id; a user known by user_id only opens it here.
			at := msg.Timestamp
			if at.IsZero() {
				at = time.Now()
			}
			if err := wa.window.Record(ev.PhoneNumberID, p.key, at); err != nil {
				return err
			}
		}
		if p.key != "+"+strings.TrimPrefix(msg.From, "+") {
			// Consent and the rest see the canonical key (the wa_id is kept in the evidence).
			m := *msg
			m.From = p.key[1:]
			ev.Message, msg = &m, &m
		}
		if ev.Signal() == whatsapp.SignalKeyword {
			return wa.inboundKeyword(ctx, n, sender, p, msg)
		}
	}
	switch ev.Signal() {
	case whatsapp.SignalMarketingStop, whatsapp.SignalMarketingResume:
		if err := wa.marketingPreference(ctx, n, sender, ev); err != nil {
			return err
		}
	}
	// A 131047 status closes the window: the receiver did, at the status's
	// own time (a late status does not close a window the user reopened).
	switch {
	case ev.Kind == whatsapp.KindError:
		wa.metrics.ObserveNotificationErrors(ev.Errors)
		for _, e := range ev.Errors {
			g.log.Warn("whatsapp: Meta reported an error", "tenant", t.ID, "phone_number_id", ev.PhoneNumberID,
				"code", e.Code, "title", e.Title, "details", e.Details)
		}
	case ev.Status != nil:
		return wa.status(t, ev)
	}
	return nil
}

// inboundKeyword runs a user message through the MO consent core
// (keywords screened in event-time order, see waChannel.apply; forwarded;
// replies sent). A wa_id the consent store cannot key is dead-lettered.
func (wa *waChannel) inboundKeyword(ctx context.Context, n *waNumber, sender string, p waPerson, msg *whatsapp.InboundMessage) error {
	t := n.tenant
	in := moIn{t: t, seen: ChannelWhatsApp + "/" + n.cfg.PhoneNumberID,
		msg: consent.InboundMessage{Tenant: t.ID, Channel: ChannelWhatsApp, Sender: sender, Recipient: p.key,
			Text: msg.KeywordText(), MessageID: msg.ID, ReceivedAt: msg.Timestamp, WaID: p.waID, UserID: p.userID}}
	err := wa.g.moConsent(ctx, &in, wa)
	if errors.Is(err, consent.ErrInvalidNumber) {
		return wa.unkeyed(t, whatsapp.Event{PhoneNumberID: n.cfg.PhoneNumberID, Message: msg}, unkeyedBadWaID)
	}
	return err // nil, or retried by the receiver
}

// marketingPreference records a marketing stop or resume (the "Stop
// promotions" button, user_preferences, a 131050 failure) at the event's
// own time. Meta delivers out of order, so an event older than the last
// preference applied for the recipient and business number changes
// nothing: a stop and a resume arriving reversed leave the newer one in
// force. The last time is kept in the gateway store ("wp/" keys), synced
// before the event is acknowledged.
func (wa *waChannel) marketingPreference(ctx context.Context, n *waNumber, sender string, ev whatsapp.Event) error {
	g := wa.g
	t := n.tenant
	var rcpt, id string
	var at time.Time
	switch {
	case ev.Message != nil:
		rcpt, id, at = ev.Message.From, ev.Message.ID, ev.Message.Timestamp
	case ev.Preference != nil:
		rcpt, at = ev.Preference.WaID, ev.Preference.Timestamp
	case ev.Status != nil:
		rcpt, id, at = ev.Status.RecipientID, ev.Status.ID, ev.Status.Timestamp
	}
	if at.IsZero() {
		at = time.Now()
	}
	norm, err := consent.NormalizeRecipient(ChannelWhatsApp, t.cfg.DefaultRegion, rcpt)
	if err != nil {
		return nil // not a number we can keep consent for; nothing to retry
	}
	key := prefKey(t, sender, norm)
	mu := &wa.prefMu[maphash.String(wa.prefSeed, string(key))%uint64(len(wa.prefMu))]
	mu.Lock()
	defer mu.Unlock()
	last, err := g.lastPreference(key)
	if err != nil {
		return err
	}
	if at.UnixNano() < last {
		g.log.Info("whatsapp: marketing preference older than the last one ignored", "tenant", t.ID,
			"event_at", at.UTC(), "last_at", time.Unix(0, last).UTC())
		return nil
	}
	var res consent.Result
	if ev.Status != nil {
		res, err = g.consent.DeliveryFailed(ctx, consent.DeliveryFailure{Tenant: t.ID, Channel: ChannelWhatsApp, Sender: sender,
			Recipient: norm, Code: consent.WhatsAppMarketingBlocked, MessageID: id, At: at})
	} else {
		res, err = g.consent.SetMarketingPreference(ctx, consent.MarketingPreference{Tenant: t.ID, Sender: sender, Recipient: norm,
			Stop: ev.Signal() == whatsapp.SignalMarketingStop, MessageID: id, At: at})
	}
	if err != nil {
		return err
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(at.UnixNano()))
	if err := g.commit.Write(groupcommit.Op{Key: key, Value: v[:]}); err != nil {
		return err
	}
	if ev.Message != nil {
		g.noteWhatsApp(t, res.Recipient, n) // a button tap is an inbound message like any other
	}
	g.sendReplies(nil, t, res)
	return g.forwardEvents(t, res)
}

func prefKey(t *Tenant, sender, recipient string) []byte {
	return []byte("wp/" + t.ID + "/" + sender + "/" + recipient)
}

// lastPreference is the time (Unix ns) of the last marketing preference
// applied under key, 0 if none.
func (g *Gateway) lastPreference(key []byte) (int64, error) {
	var last int64
	_, err := readKey(g.db, key, func(v []byte) {
		if len(v) == 8 {
			last = int64(binary.BigEndian.Uint64(v))
		}
	})
	return last, err
}

// forwardEvents queues consent events for the tenant.
func (g *Gateway) forwardEvents(t *Tenant, res consent.Result) error {
	for _, ev := range res.Events {
		if err := g.emit(t, ev.Type, map[string]any{"channel": ev.Channel, "recipient": ev.Recipient, "sender": ev.Sender, "event_id": ev.ID}); err != nil {
			return err
		}
	}
	return nil
}
