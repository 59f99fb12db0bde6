package gateway

import (
	"context"
	"errors"
	"fmt"
	"github.com/dgraph-io/badger/v4"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/whatsapp"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// waNumber is one WhatsApp business number and its client.
type waNumber struct {
	cfg    WANumberConfig
	tenant *Tenant
	client *whatsapp.Client
}

// waChannel is the WhatsApp Cloud API channel of the gateway: a client per
// business number, the signed webhook receiver (mounted on the HTTP server
// at /webhooks/whatsapp, durable before it answers 200), and the 24-hour
// window the receiver keeps.
type waChannel struct {
	g        *Gateway
	numbers  map[string]*waNumber // by phone_number_id
	byTenant map[string]*waNumber // the tenant's first number
	recv     *whatsapp.Receiver
	window   *whatsapp.Window
	metrics  *whatsapp.Metrics
	mock     *whatsapptest.Server
}

// ErrWhatsAppDisabled is returned when no WhatsApp number is configured.
var ErrWhatsAppDisabled = errors.New("gateway: WhatsApp is not configured")

// Defaults of the built-in WhatsApp mock.
const (
	mockToken       = "optgate-mock-token"
	mockAppSecret   = "optgate-mock-app-secret"
	mockVerifyToken = "optgate-mock-verify-token"
	mockPhoneID     = "100000000000001"
)

func (g *Gateway) newWhatsApp() error {
	cfg := &g.cfg.WhatsApp
	if g.cfg.WhatsAppSimulator.Enabled {
		if cfg.Token == "" {
			cfg.Token = mockToken
		}
		if cfg.AppSecret == "" {
			cfg.AppSecret = mockAppSecret
		}
		if cfg.VerifyToken == "" {
			cfg.VerifyToken = mockVerifyToken
		}
		if len(cfg.Numbers) == 0 && len(g.tenantList) > 0 {
			t := g.tenantList[0]
			num := ""
			if len(t.cfg.Numbers) > 0 {
				num = t.cfg.Numbers[0]
			}
			cfg.Numbers = []WANumberConfig{{PhoneNumberID: mockPhoneID, Number: num, Tenant: t.ID}}
		}
	}
	if len(cfg.Numbers) == 0 {
		return nil
	}
	wa := &waChannel{g: g, numbers: map[string]*waNumber{}, byTenant: map[string]*waNumber{}, metrics: whatsapp.NewMetrics(g.registererOrNil())}
	ids := make([]string, 0, len(cfg.Numbers))
	for _, n := range cfg.Numbers {
		wn := &waNumber{cfg: n, tenant: g.tenants[n.Tenant]}
		wa.numbers[n.PhoneNumberID] = wn
		if wa.byTenant[n.Tenant] == nil {
			wa.byTenant[n.Tenant] = wn
		}
		ids = append(ids, n.PhoneNumberID)
	}
	recv, err := whatsapp.NewReceiver(g.db, whatsapp.ReceiverConfig{AppSecret: cfg.AppSecret, VerifyToken: cfg.VerifyToken,
		PhoneNumberIDs: ids, Handler: wa, MaxRequestBodySize: g.cfg.HTTP.MaxBodyBytes, Logger: g.log.With("component", "whatsapp"),
		Metrics: wa.metrics})
	if err != nil {
		return fmt.Errorf("whatsapp receiver: %w", err)
	}
	wa.recv = recv
	wa.window = recv.Window()
	g.wa = wa
	return nil
}

func (g *Gateway) startWhatsApp() error {
	wa := g.wa
	if wa == nil {
		return nil
	}
	base := g.cfg.WhatsApp.GraphURL
	if g.cfg.WhatsAppSimulator.Enabled {
		wa.mock = whatsapptest.NewServer(whatsapptest.Config{Token: g.cfg.WhatsApp.Token, AppSecret: g.cfg.WhatsApp.AppSecret,
			WebhookURL: "http://" + g.HTTPAddr() + "/webhooks/whatsapp", AutoStatuses: []string{"sent", "delivered"}, EnforceWindow: true})
		if base == "" {
			base = wa.mock.URL()
		}
	}
	for _, n := range wa.numbers {
		c, err := whatsapp.NewClient(whatsapp.ClientConfig{BaseURL: base, Version: g.cfg.WhatsApp.Version, PhoneNumberID: n.cfg.PhoneNumberID,
			Token: g.cfg.WhatsApp.Token, Rate: n.cfg.Rate, Window: wa.window, Logger: g.log.With("component", "whatsapp"), Metrics: wa.metrics})
		if err != nil {
			return fmt.Errorf("whatsapp number %s: %w", n.cfg.PhoneNumberID, err)
		}
		n.client = c
	}
	return nil
}

func (g *Gateway) stopWhatsApp() {
	wa := g.wa
	if wa == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wa.recv.Shutdown(ctx)
	for _, n := range wa.numbers {
		if n.client != nil {
			n.client.Close()
		}
	}
	if wa.mock != nil {
		wa.mock.Close()
	}
}

// WhatsAppMock returns the built-in Graph API mock, if enabled.
func (g *Gateway) WhatsAppMock() *whatsapptest.Server {
	if g.wa == nil {
		return nil
	}
	return g.wa.mock
}

func (g *Gateway) waWebhook(ctx *fasthttp.RequestCtx) {
	if g.wa == nil {
		writeErr(ctx, 404, "not_found", "", "WhatsApp is not configured")
		return
	}
	g.wa.recv.HandleFastHTTP(ctx)
}

// waWindow refuses free-form WhatsApp messages outside the 24-hour window
// before Meta is called; templates (and our own replies to a user who just
// wrote) go on.
func (g *Gateway) waWindow(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) {
		if m.Channel != ChannelWhatsApp || m.Template || g.wa == nil {
			next.Handle(ctx, m)
			return
		}
		n := g.wa.byTenant[m.Tenant.ID]
		if n == nil {
			m.Finish(Outcome{Kind: Rejected, Reason: ReasonNoRoute, Status: smpp.StatusInvDstAdr, Err: ErrWhatsAppDisabled})
			return
		}
		if !g.wa.window.Open(n.cfg.PhoneNumberID, strings.TrimPrefix(m.To, "+"), time.Now()) {
			g.metrics.blocked.WithLabelValues(m.Tenant.ID, ReasonWindowClosed).Inc()
			m.Finish(Outcome{Kind: Blocked, Reason: ReasonWindowClosed, Status: windowStatus(m.Account),
				Err: errors.New("WhatsApp 24-hour window closed: a template is required")})
			return
		}
		next.Handle(ctx, m)
	})
}

func windowStatus(a *Account) smpp.CommandStatus {
	if a != nil && a.cfg.Statuses.WhatsAppWindow != 0 {
		return smpp.CommandStatus(a.cfg.Statuses.WhatsAppWindow)
	}
	return smpp.StatusWhatsAppWindow
}

// sendWhatsApp sends over the Cloud API on its own goroutine (the client
// retries with back-off) and finishes the message with Meta's answer.
func (g *Gateway) sendWhatsApp(_ context.Context, m *Message) {
	if g.wa == nil {
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonNoRoute, Status: smpp.StatusInvDstAdr, Err: ErrWhatsAppDisabled})
		return
	}
	n := g.wa.byTenant[m.Tenant.ID]
	if n == nil || n.client == nil {
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonNoRoute, Status: smpp.StatusInvDstAdr, Err: ErrWhatsAppDisabled})
		return
	}
	wm := whatsapp.Message{PhoneNumberID: n.cfg.PhoneNumberID, To: m.To, BizOpaqueCallbackData: m.ID}
	if m.WA != nil && m.WA.TemplateName != "" {
		tpl := &whatsapp.Template{Name: m.WA.TemplateName, Language: m.WA.Language}
		if len(m.WA.Params) > 0 {
			c := whatsapp.Component{Type: "body"}
			for _, p := range m.WA.Params {
				c.Parameters = append(c.Parameters, whatsapp.TextParam(p))
			}
			tpl.Components = append(tpl.Components, c)
		}
		if len(m.WA.NamedParams) > 0 {
			c := whatsapp.Component{Type: "body"}
			for k, v := range m.WA.NamedParams {
				c.Parameters = append(c.Parameters, whatsapp.NamedParam(k, v))
			}
			tpl.Components = append(tpl.Components, c)
		}
		wm.Template = tpl
	} else {
		wm.Text = &whatsapp.Text{Body: m.Text}
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		wamid, err := n.client.Send(ctx, wm)
		if err != nil {
			var ae *whatsapp.APIError
			reason := ReasonCarrier
			if errors.Is(err, whatsapp.ErrWindowClosed) {
				m.Finish(Outcome{Kind: Blocked, Reason: ReasonWindowClosed, Status: windowStatus(m.Account), Err: err})
				return
			}
			if errors.As(err, &ae) && ae.Code == consent.WhatsAppMarketingBlocked {
				reason = consent.ReasonMarketingOptOut.String()
			}
			m.Finish(Outcome{Kind: Failed, Reason: reason, Status: smpp.StatusDeliveryFailure, Err: err})
			return
		}
		m.Finish(Outcome{Kind: Accepted, SMSC: "whatsapp", SMSCID: wamid})
	}()
}

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
	switch ev.Signal() {
	case whatsapp.SignalMarketingStop, whatsapp.SignalMarketingResume:
		rcpt, id := "", ""
		switch {
		case ev.Message != nil:
			rcpt, id = ev.Message.From, ev.Message.ID
		case ev.Preference != nil:
			rcpt = ev.Preference.WaID
		case ev.Status != nil:
			rcpt, id = ev.Status.RecipientID, ev.Status.ID
		}
		var res consent.Result
		var err error
		if ev.Status != nil {
			res, err = g.consent.DeliveryFailed(ctx, consent.DeliveryFailure{Tenant: t.ID, Channel: ChannelWhatsApp, Sender: sender,
				Recipient: rcpt, Code: consent.WhatsAppMarketingBlocked, MessageID: id, At: ev.Status.Timestamp})
		} else {
			res, err = g.consent.SetMarketingPreference(ctx, consent.MarketingPreference{Tenant: t.ID, Sender: sender, Recipient: rcpt,
				Stop: ev.Signal() == whatsapp.SignalMarketingStop, MessageID: id, At: time.Now()})
		}
		if err != nil {
			return err
		}
		g.sendReplies(nil, t, res)
		if err := g.forwardEvents(t, res); err != nil {
			return err
		}
	case whatsapp.SignalWindowClosed:
		_ = wa.window.Close(ev.PhoneNumberID, ev.Status.RecipientID, time.Now())
	}
	switch {
	case ev.Message != nil && ev.Signal() == whatsapp.SignalKeyword:
		msg := ev.Message
		res, err := g.consent.Inbound(ctx, consent.InboundMessage{Tenant: t.ID, Channel: ChannelWhatsApp, Sender: sender,
			Recipient: msg.From, Text: msg.KeywordText(), MessageID: msg.ID, ReceivedAt: msg.Timestamp})
		if err != nil {
			if errors.Is(err, consent.ErrInvalidNumber) {
				return nil
			}
			g.metrics.mo.WithLabelValues(t.ID, "store_failed").Inc()
			return err // retried by the receiver
		}
		if err := g.forwardMO(t, ChannelWhatsApp, "+"+strings.TrimPrefix(msg.From, "+"), sender, msg.KeywordText(), res); err != nil {
			g.metrics.mo.WithLabelValues(t.ID, "store_failed").Inc()
			return err
		}
		if res.Matched {
			g.metrics.keywords.WithLabelValues(res.Match.Class.String(), res.Match.Lang).Inc()
		}
		g.metrics.messages.WithLabelValues("mo", ChannelWhatsApp, "received").Inc()
		g.noteChannel(t, res.Recipient, ChannelWhatsApp)
		g.sendReplies(nil, t, res)
	case ev.Status != nil:
		st := ev.Status
		state := st.Status
		if st.Status == "failed" {
			state = "undeliverable"
		}
		reason := ""
		if len(st.Errors) > 0 {
			reason = fmt.Sprintf("err:%d", st.Errors[0].Code)
		}
		if st.BizOpaque != "" {
			g.statuses.update(st.BizOpaque, state, reason)
		}
		if t.cfg.Webhook.URL != "" && st.BizOpaque != "" {
			if err := g.emit(t, "message.status", map[string]any{"id": st.BizOpaque, "channel": ChannelWhatsApp, "state": state,
				"error": reason}); err != nil {
				return err
			}
		}
	}
	return nil
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

// chooseChannel picks the channel for an API message: an explicit channel
// wins; else SMS when the recipient's region matches one of the tenant's
// SMS numbers, WhatsApp when it does not and the tenant has a WhatsApp
// number (never to regions where WhatsApp Business is unavailable).
func (g *Gateway) chooseChannel(t *Tenant, explicit, to string) (string, error) {
	if explicit != "" && explicit != ChannelSMS && explicit != ChannelWhatsApp {
		return "", errors.New("channel must be sms or whatsapp")
	}
	if g.wa == nil || g.wa.byTenant[t.ID] == nil {
		if explicit == ChannelWhatsApp {
			return "", ErrWhatsAppDisabled
		}
		return ChannelSMS, nil
	}
	var regions []string
	for _, n := range t.cfg.Numbers {
		if pn, err := phonenumbers.Parse(n, ""); err == nil {
			regions = append(regions, phonenumbers.GetRegionCodeForNumber(pn))
		}
	}
	ch, err := whatsapp.ChooseChannel(whatsapp.ChannelRequest{Explicit: explicit, LastUsed: g.lastChannel(t, to),
		Recipient: whatsapp.E164(to), SMSNumberRegions: regions})
	if err != nil {
		return "", err
	}
	return string(ch), nil
}

// defaultSender is the tenant's first number for a channel.
func (g *Gateway) defaultSender(t *Tenant, channel string) string {
	if channel == ChannelWhatsApp && g.wa != nil {
		if n := g.wa.byTenant[t.ID]; n != nil {
			return n.cfg.Number
		}
	}
	if len(t.cfg.Numbers) > 0 {
		return t.cfg.Numbers[0]
	}
	return ""
}

func lastChannelKey(t *Tenant, recipient string) []byte {
	return []byte("lu/" + t.ID + "/" + recipient)
}

// noteChannel remembers the channel a recipient last wrote to us on, for
// the channel choice. The write is not synced on its own: losing the last
// few in a crash only changes a default.
func (g *Gateway) noteChannel(t *Tenant, recipient, channel string) {
	if g.wa == nil || recipient == "" {
		return // with one channel there is nothing to choose
	}
	if err := g.commit.writeLazy(kv{key: lastChannelKey(t, recipient), val: []byte(channel)}); err != nil {
		g.log.Debug("last channel not recorded", "err", err)
	}
}

// lastChannel is the channel the recipient last wrote to us on, or "".
func (g *Gateway) lastChannel(t *Tenant, recipient string) string {
	var ch string
	_ = g.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(lastChannelKey(t, recipient))
		if err != nil {
			return nil
		}
		return it.Value(func(v []byte) error { ch = string(v); return nil })
	})
	return ch
}
