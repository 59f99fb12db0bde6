package gateway

import (
	"context"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/smpp"
)

// waChannel is the WhatsApp Cloud API channel of the gateway.
type waChannel struct{}

// ErrWhatsAppDisabled is returned when no WhatsApp number is configured.
var ErrWhatsAppDisabled = errors.New("gateway: WhatsApp is not configured")

func (g *Gateway) newWhatsApp() error   { return nil }
func (g *Gateway) startWhatsApp() error { return nil }
func (g *Gateway) stopWhatsApp()        {}

func (g *Gateway) waWebhook(ctx *fasthttp.RequestCtx) {
	writeErr(ctx, 404, "not_found", "", "WhatsApp is not configured")
}

func (g *Gateway) waWindow(next Handler) Handler { return next }

func (g *Gateway) sendWhatsApp(_ context.Context, m *Message) {
	m.Finish(Outcome{Kind: Rejected, Reason: ReasonNoRoute, Status: smpp.StatusInvDstAdr, Err: ErrWhatsAppDisabled})
}

// chooseChannel picks the channel for an API message.
func (g *Gateway) chooseChannel(t *Tenant, explicit, to string) (string, error) {
	switch explicit {
	case "", ChannelSMS:
		return ChannelSMS, nil
	case ChannelWhatsApp:
		return ChannelWhatsApp, nil
	}
	return "", errors.New("channel must be sms or whatsapp")
}

// defaultSender is the tenant's first number for a channel.
func (g *Gateway) defaultSender(t *Tenant, channel string) string {
	if channel == ChannelSMS && len(t.cfg.Numbers) > 0 {
		return t.cfg.Numbers[0]
	}
	return ""
}
