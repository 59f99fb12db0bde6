package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// heldPayload is what we keep of a held message to send it later.
type heldPayload struct {
	ID         string `json:"id"`
	Account    string `json:"account,omitempty"`
	Origin     Origin `json:"origin"`
	From       string `json:"from"`
	To         string `json:"to"`
	Text       string `json:"text,omitempty"`
	Body       []byte `json:"body,omitempty"`
	DataCoding uint8  `json:"dc,omitempty"`
	ESMClass   uint8  `json:"esm,omitempty"`
	TLVs       []byte `json:"tlvs,omitempty"`
	RegDlr     uint8  `json:"rd,omitempty"`
	Category   uint8  `json:"cat,omitempty"`
	Bulk       bool   `json:"bulk,omitempty"`
	Channel    string `json:"channel"`
	// WA is a WhatsApp message's template (and WAInteractive its reply
	// buttons): without them a released message would go out empty.
	WA            *WAContent     `json:"wa,omitempty"`
	WAInteractive *WAInteractive `json:"wa_interactive,omitempty"`
}

// heldPayloadOf is the one builder of a heldPayload (a message held for
// attestation, or queued by an ack: store account): everything needed to
// send m later, its WhatsApp content included, as stored JSON.
func heldPayloadOf(m *Message) ([]byte, error) {
	hp := heldPayload{ID: m.ID, Origin: m.Origin, From: m.From, To: m.To, Text: m.Text, Body: m.Body,
		DataCoding: m.DataCoding, ESMClass: m.ESMClass, TLVs: m.TLVs, RegDlr: m.RegisteredDelivery,
		Category: uint8(m.Category), Bulk: m.Bulk, Channel: m.Channel, Account: accountID(m.Account)}
	if m.WA != nil {
		hp.WA, hp.WAInteractive = m.WA, m.WA.Interactive
	}
	return json.Marshal(hp)
}

// decodeHeld is the one decoder of a stored heldPayload.
func decodeHeld(b []byte) (heldPayload, error) {
	var p heldPayload
	err := json.Unmarshal(b, &p)
	return p, err
}

// message rebuilds the message p keeps, for tenant t; the caller sets
// Received and done.
func (p *heldPayload) message(g *Gateway, t *Tenant) *Message {
	m := &Message{ID: p.ID, Tenant: t, Account: g.accounts[p.Account], Origin: p.Origin, Channel: p.Channel, From: p.From, To: p.To,
		Text: p.Text, Body: p.Body, DataCoding: p.DataCoding, ESMClass: p.ESMClass, TLVs: p.TLVs, RegisteredDelivery: p.RegDlr,
		Category: consent.Category(p.Category), Bulk: p.Bulk, WA: p.WA}
	if p.WAInteractive != nil {
		if m.WA == nil {
			m.WA = &WAContent{}
		}
		m.WA.Interactive = p.WAInteractive
	}
	return m
}

func jsonBytes(b []byte) json.RawMessage {
	v, _ := json.Marshal(base64.StdEncoding.EncodeToString(b))
	return v
}

func unjsonBytes(v json.RawMessage) ([]byte, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(s)
}

// hold stores a message for an attestation tenant's unknown recipient and
// sends the attestation prompt when one is due.
func (g *Gateway) hold(ctx context.Context, m *Message, d consent.Decision) {
	p, _ := heldPayloadOf(m)
	hr, err := g.consent.Hold(ctx, consent.HeldMessage{ID: m.ID, Tenant: m.Tenant.ID, Channel: m.Channel, Sender: m.From,
		Recipient: m.To, Payload: p})
	if errors.Is(err, consent.ErrHoldLimit) {
		// The recipient has not answered the prompt and has as many
		// messages waiting as a recipient may: refuse this one for what it
		// is (no consent yet, 0x403) rather than as a store failure the
		// platform would retry.
		r := status.ReasonAttestationPending
		g.metrics.blocked.WithLabelValues(m.Tenant.ID, r.String()).Inc()
		m.Finish(Outcome{Kind: Blocked, Reason: r, Err: err})
		return
	}
	if err != nil {
		m.Finish(Outcome{Kind: Failed, Reason: ReasonInternal, Retry: true, Err: err})
		return
	}
	if !hr.Held {
		if hr.Decision.Allow {
			// The recipient answered meanwhile: send on.
			g.mtAfterScreen(ctx, m)
			return
		}
		m.Finish(Outcome{Kind: Blocked, Reason: status.FromConsent(hr.Decision.Reason)})
		return
	}
	if hr.Prompt != nil {
		g.sendReply(m.Tenant, *hr.Prompt)
	}
	m.Finish(Outcome{Kind: Held, Reason: status.ReasonAttestationPending})
}

// disclaim sends the tenant's disclaimer before the first message to a
// recipient, once.
func (g *Gateway) disclaim(ctx context.Context, m *Message) {
	rep, err := g.consent.Disclaim(ctx, m.Tenant.ID, m.Channel, m.From, m.To)
	if err != nil {
		g.log.Warn("disclaimer not recorded", "tenant", m.Tenant.ID, "err", err)
		return
	}
	if rep != nil {
		g.sendReply(m.Tenant, *rep)
	}
}

func accountID(a *Account) string {
	if a == nil {
		return ""
	}
	return a.ID()
}

// sendReply sends a confirmation, help text or prompt.
func (g *Gateway) sendReply(t *Tenant, rep consent.Reply) { g.sendConsentReply(nil, t, rep) }

// releaseHeld sends a message that waited for the recipient's YES.
func (g *Gateway) releaseHeld(t *Tenant, h consent.HeldMessage) {
	p, err := decodeHeld(h.Payload)
	if err != nil {
		g.log.Error("held message unreadable", "tenant", t.ID, "id", h.ID, "err", err)
		return
	}
	m := p.message(g, t)
	m.Received, m.done = time.Now(), g.recordReleased
	g.mt.Handle(context.Background(), m)
}

// failHeld reports a held message that will never be sent.
func (g *Gateway) failHeld(t *Tenant, h consent.HeldMessage, reason status.Reason) {
	p, _ := decodeHeld(h.Payload) // unreadable: the zero payload, whose receipt goes nowhere
	g.statuses.Update(h.ID, status.StateFailed, reason)
	m := &Message{ID: h.ID, Tenant: t, Account: g.accounts[p.Account], From: p.From, To: p.To}
	if p.Origin == OriginSMPP && m.Account == nil {
		return
	}
	g.forwardSynthetic(m, p.Origin, dlr.Rejected, smpp.StatusNoConsent)
}

func (g *Gateway) recordReleased(m *Message, o Outcome) { g.record(m, o) }

// record updates the status book and the metrics for an outcome.
func (g *Gateway) record(m *Message, o Outcome) {
	// Stamped with the message's arrival, so a receipt that overtook this
	// answer (and stamped its own, later time) is not overwritten.
	g.statuses.Put(MessageStatus{ID: m.ID, Tenant: m.Tenant.ID, Channel: m.Channel, To: m.To, State: o.Kind.State(), Reason: o.Reason,
		Updated: m.Received})
	g.metrics.mtOutcome(m.Channel, o.Kind).Inc()
}

// mtAfterScreen continues a message past the consent screen.
func (g *Gateway) mtAfterScreen(ctx context.Context, m *Message) { g.afterScreen.Handle(ctx, m) }
