package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/whatsapp"
)

// isTemplate reports whether m is a WhatsApp template message.
func isTemplate(m *Message) bool { return m.WA != nil && m.WA.TemplateName != "" }

// templateCategory is the configured category of a tenant's template, or
// "" when the template is not configured.
func templateCategory(t *Tenant, name string) string {
	return t.cfg.WhatsAppTemplates[name]
}

// waWindow is the WhatsApp stage after the consent screen. A template the
// tenant configured as marketing is screened again as marketing when the
// request did not say so (the category is the template's, not the
// caller's; an unconfigured template keeps the request's category). A
// free-form message outside the 24-hour window of its business number and
// recipient is refused before Meta is called; templates go on.
func (g *Gateway) waWindow(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) {
		if m.Channel != ChannelWhatsApp || g.wa == nil {
			next.Handle(ctx, m)
			return
		}
		n := g.wa.numberFor(m)
		if n == nil {
			m.Finish(Outcome{Kind: Rejected, Reason: ReasonInvalidSender, Err: fmt.Errorf("sender %s is not one of the tenant's WhatsApp numbers", m.From)})
			return
		}
		if isTemplate(m) {
			if m.Category != consent.CategoryMarketing && templateCategory(m.Tenant, m.WA.TemplateName) == TemplateMarketing {
				m.Category = consent.CategoryMarketing
				if m.Origin != OriginInternal && !g.screenMarketing(m) {
					return
				}
			}
			next.Handle(ctx, m)
			return
		}
		if !g.wa.window.Open(n.cfg.PhoneNumberID, strings.TrimPrefix(m.To, "+"), time.Now()) {
			g.metrics.blocked.WithLabelValues(m.Tenant.ID, ReasonWindowClosed.String()).Inc()
			m.Finish(Outcome{Kind: Blocked, Reason: ReasonWindowClosed, Err: errors.New("WhatsApp 24-hour window closed: a template is required")})
			return
		}
		next.Handle(ctx, m)
	})
}

// screenMarketing checks m again as a marketing message and Finishes it
// when consent blocks it; it reports whether m may go on.
func (g *Gateway) screenMarketing(m *Message) bool {
	d, err := g.consent.Check(m.Tenant.ID, m.Channel, m.From, m.To, consent.CategoryMarketing)
	if err != nil {
		g.log.Error("consent check failed", "tenant", m.Tenant.ID, "err", err)
		m.Finish(Outcome{Kind: Failed, Reason: ReasonInternal, Retry: true, Err: err})
		return false
	}
	if d.Action == consent.ActionBlock {
		g.metrics.blocked.WithLabelValues(m.Tenant.ID, d.Reason.String()).Inc()
		m.Finish(Outcome{Kind: Blocked, Reason: status.FromConsent(d.Reason), Err: fmt.Errorf("recipient blocked: %s", d.Reason)})
		return false
	}
	return true
}

// waMessage builds the Cloud API message for m: to the wa_id the person
// last wrote from (see sendTo), with an authenticated biz_opaque (opaque).
func (wa *waChannel) waMessage(n *waNumber, m *Message) whatsapp.Message {
	wm := whatsapp.Message{PhoneNumberID: n.cfg.PhoneNumberID, To: wa.sendTo(m.Tenant, m.To),
		BizOpaqueCallbackData: wa.opaque(m.Tenant.ID, m.ID)}
	if m.WA != nil && m.WA.Interactive != nil {
		in := m.WA.Interactive
		b := &whatsapp.Buttons{Body: in.Body, Buttons: make([]whatsapp.Button, 0, len(in.Buttons))}
		for _, rb := range in.Buttons {
			b.Buttons = append(b.Buttons, whatsapp.Button{ID: rb.ID, Title: rb.Title})
		}
		wm.Buttons = b
		return wm
	}
	if !isTemplate(m) {
		wm.Text = &whatsapp.Text{Body: m.Text}
		return wm
	}
	c := m.WA
	tpl := &whatsapp.Template{Name: c.TemplateName, Language: c.Language}
	if len(c.HeaderParams) > 0 || c.HeaderMedia != nil {
		h := whatsapp.Component{Type: "header"}
		for _, p := range c.HeaderParams {
			h.Parameters = append(h.Parameters, whatsapp.TextParam(p))
		}
		if hm := c.HeaderMedia; hm != nil {
			h.Parameters = append(h.Parameters, whatsapp.Parameter{Type: hm.Type, MediaID: hm.ID, Link: hm.Link})
		}
		tpl.Components = append(tpl.Components, h)
	}
	if len(c.Params) > 0 || len(c.NamedParams) > 0 {
		body := whatsapp.Component{Type: "body"}
		for _, p := range c.Params {
			body.Parameters = append(body.Parameters, whatsapp.TextParam(p))
		}
		// Named parameters in name order: a JSON object has none, and the
		// request Meta sees should not change from one send to the next.
		names := make([]string, 0, len(c.NamedParams))
		for k := range c.NamedParams {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			body.Parameters = append(body.Parameters, whatsapp.NamedParam(k, c.NamedParams[k]))
		}
		tpl.Components = append(tpl.Components, body)
	}
	for _, b := range c.Buttons {
		bc := whatsapp.Component{Type: "button", SubType: b.SubType, Index: b.Index}
		if bc.SubType == "" {
			bc.SubType = "quick_reply"
		}
		if bc.SubType == "quick_reply" {
			bc.Parameters = []whatsapp.Parameter{whatsapp.PayloadParam(b.Payload)}
		} else {
			bc.Parameters = []whatsapp.Parameter{whatsapp.TextParam(b.Text)}
		}
		tpl.Components = append(tpl.Components, bc)
	}
	wm.Template = tpl
	return wm
}

// sendWhatsApp sends over the Cloud API on its own goroutine (the client
// retries with back-off) and finishes the message with Meta's answer.
func (g *Gateway) sendWhatsApp(_ context.Context, m *Message) {
	if g.wa == nil {
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonNoRoute, Err: ErrWhatsAppDisabled})
		return
	}
	n := g.wa.numberFor(m)
	if n == nil || n.client == nil {
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonNoRoute, Err: ErrWhatsAppDisabled})
		return
	}
	wm := g.wa.waMessage(n, m)
	if err := wm.Validate(); err != nil {
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonInvalidTemplate, Err: err})
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		wamid, err := n.client.Send(ctx, wm)
		if err != nil {
			var ae *whatsapp.APIError
			reason := ReasonCarrier
			if errors.Is(err, whatsapp.ErrWindowClosed) {
				m.Finish(Outcome{Kind: Blocked, Reason: ReasonWindowClosed, Err: err})
				return
			}
			if errors.As(err, &ae) {
				switch {
				case ae.Code == consent.WhatsAppMarketingBlocked:
					reason = status.ReasonMarketingOptOut
				case ae.Class == whatsapp.ClassAuth:
					// Counted in optgate_whatsapp_token_errors_total by the client.
					err = fmt.Errorf("Meta refused the WhatsApp access token (expired or revoked): rotate whatsapp.token: %w", err)
				}
			}
			m.Finish(Outcome{Kind: Failed, Reason: reason, Err: err})
			return
		}
		m.Finish(Outcome{Kind: Accepted, SMSC: "whatsapp", SMSCID: wamid})
	}()
}
