package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nyaruka/phonenumbers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
	"github.com/optgate/optgate/whatsapp"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// waNumber is one WhatsApp business number and its client.
type waNumber struct {
	cfg    WANumberConfig
	tenant *Tenant
	client *whatsapp.Client // set by startWhatsApp, before the receiver starts
}

// waChannel is the WhatsApp Cloud API channel of the gateway: a client per
// business number, the signed webhook receiver (mounted on the HTTP server
// at /webhooks/whatsapp, durable before it answers 200), and the 24-hour
// window the receiver keeps.
type waChannel struct {
	g        *Gateway
	numbers  map[string]*waNumber   // by phone_number_id
	byTenant map[string]*waNumber   // the tenant's first number
	bySender map[waSender]*waNumber // by tenant and E.164 number
	regions  map[string][]string    // tenant → regions of its SMS number bank
	recv     *whatsapp.Receiver     // set by startWhatsApp once the clients are
	window   *whatsapp.Window
	metrics  *whatsapp.Metrics
	mock     *whatsapptest.Server

	// prefMu serialises the marketing preference changes of one recipient
	// (by hash) between the last-preference check and its update. It is
	// held across the consent call, so it comes before consent's stripe
	// locks; nothing else is taken under it.
	prefMu   [64]sync.Mutex
	prefSeed maphash.Seed

	// Identity (waperson.go).
	unmapped      atomic.Bool   // a body waits in dead letters for a user_id's number
	replayCh      chan struct{} // cap 1: replayUnmapped is wanted
	quit          chan struct{} // closed by stopWhatsApp
	opaqueKey     []byte        // MAC key of biz_opaque_callback_data
	unkeyedC      *prometheus.CounterVec
	numberChanges prometheus.Counter
	statusIgnored *prometheus.CounterVec
}

type waSender struct{ tenant, number string }

// ErrWhatsAppDisabled is returned when no WhatsApp number is configured.
var ErrWhatsAppDisabled = errors.New("gateway: WhatsApp is not configured")

// Defaults of the built-in WhatsApp mock.
const (
	mockToken       = "optgate-mock-token"
	mockAppSecret   = "optgate-mock-app-secret"
	mockVerifyToken = "optgate-mock-verify-token"
	mockPhoneID     = "100000000000001"
	mockDisplay     = "+15550783881" // the mock's display number, for a tenant without numbers
)

// Template categories of TenantConfig.WhatsAppTemplates.
const (
	TemplateMarketing      = "marketing"
	TemplateUtility        = "utility"
	TemplateAuthentication = "authentication"
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
			num := mockDisplay
			if len(t.cfg.Numbers) > 0 {
				num = t.cfg.Numbers[0]
			}
			cfg.Numbers = []WANumberConfig{{PhoneNumberID: mockPhoneID, Number: num, Tenant: t.ID}}
		}
	}
	if len(cfg.Numbers) == 0 {
		return nil
	}
	if cfg.AppSecret == "" || cfg.VerifyToken == "" {
		return errors.New("whatsapp: app_secret and verify_token are required for the webhook")
	}
	wa := &waChannel{g: g, numbers: map[string]*waNumber{}, byTenant: map[string]*waNumber{}, bySender: map[waSender]*waNumber{},
		regions: map[string][]string{}, metrics: whatsapp.NewMetrics(g.registererOrNil()), prefSeed: maphash.MakeSeed()}
	for _, n := range cfg.Numbers {
		wn := &waNumber{cfg: n, tenant: g.tenants[n.Tenant]}
		wa.numbers[n.PhoneNumberID] = wn
		if wa.byTenant[n.Tenant] == nil {
			wa.byTenant[n.Tenant] = wn
		}
		if k := (waSender{n.Tenant, n.Number}); wa.bySender[k] == nil {
			wa.bySender[k] = wn
		}
	}
	for id := range wa.byTenant {
		if t := g.tenants[id]; t != nil {
			for _, n := range t.cfg.Numbers {
				if pn, err := phonenumbers.Parse(n, ""); err == nil {
					wa.regions[id] = append(wa.regions[id], phonenumbers.GetRegionCodeForNumber(pn))
				}
			}
		}
	}
	wa.window = whatsapp.NewWindow(g.db, g.log.With("component", "whatsapp"))
	key, err := loadOpaqueKey(g.db)
	if err != nil {
		return fmt.Errorf("whatsapp: biz_opaque key: %w", err)
	}
	wa.opaqueKey = key
	wa.unkeyedC = g.metrics.unkeyed
	wa.numberChanges, wa.statusIgnored = whatsappIdentityMetrics(g.registererOrNil())
	wa.unmapped.Store(true) // dead letters of an earlier run may wait for a user_id's number
	wa.replayCh, wa.quit = make(chan struct{}, 1), make(chan struct{})
	g.wa = wa
	return nil
}

// startWhatsApp starts the mock (if enabled), the clients and then the
// webhook receiver, whose workers may at once replay bodies a crash left
// in the spool: everything they use must exist by then.
func (g *Gateway) startWhatsApp() error {
	wa := g.wa
	if wa == nil {
		return nil
	}
	cfg := &g.cfg.WhatsApp
	base := cfg.GraphURL
	if g.cfg.WhatsAppSimulator.Enabled {
		ids := make([]string, 0, len(wa.numbers))
		for id := range wa.numbers {
			ids = append(ids, id)
		}
		var templates []string // nil: the mock approves every name
		for _, t := range g.tenantList {
			for name := range t.cfg.WhatsAppTemplates {
				templates = append(templates, name)
			}
		}
		mock, err := whatsapptest.Listen(whatsapptest.Config{Token: cfg.Token, AppSecret: cfg.AppSecret, Addr: g.cfg.WhatsAppSimulator.Listen,
			WebhookURL: "http://" + g.HTTPAddr() + whatsapp.DefaultPath, AutoStatuses: []string{"sent", "delivered"}, EnforceWindow: true,
			PhoneNumberIDs: ids, Templates: templates})
		if err != nil {
			return fmt.Errorf("whatsapp_simulator: %w", err)
		}
		wa.mock = mock
		if base == "" {
			base = wa.mock.URL()
		}
	}
	log := g.log.With("component", "whatsapp")
	for _, n := range wa.numbers {
		c, err := whatsapp.NewClient(whatsapp.ClientConfig{BaseURL: base, Version: cfg.Version, PhoneNumberID: n.cfg.PhoneNumberID,
			Token: cfg.Token, Rate: n.cfg.Rate, Timeout: cfg.Timeout, Window: wa.window, Logger: log, Metrics: wa.metrics})
		if err != nil {
			return fmt.Errorf("whatsapp number %s: %w", n.cfg.PhoneNumberID, err)
		}
		n.client = c
	}
	ids := make([]string, 0, len(wa.numbers))
	for id := range wa.numbers {
		ids = append(ids, id)
	}
	recv, err := whatsapp.NewReceiver(g.db, whatsapp.ReceiverConfig{AppSecret: cfg.AppSecret, VerifyToken: cfg.VerifyToken,
		PhoneNumberIDs: ids, Handler: wa, MaxRequestBodySize: g.cfg.HTTP.MaxBodyBytes, Logger: log, Metrics: wa.metrics,
		Window: wa.window, DedupTTL: cfg.DedupTTL})
	if err != nil {
		return fmt.Errorf("whatsapp receiver: %w", err)
	}
	wa.recv = recv
	go wa.replayUnmapped(wa.quit)
	return nil
}

func (g *Gateway) stopWhatsApp() {
	wa := g.wa
	if wa == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if wa.recv != nil {
		close(wa.quit)
		wa.recv.Shutdown(ctx)
	}
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
	if g.wa.recv == nil {
		writeErr(ctx, 503, "unavailable", "", "WhatsApp is starting")
		return
	}
	g.wa.recv.HandleFastHTTP(ctx)
}

// numberFor is the business number a message goes out from: the one whose
// E.164 number is m.From (for a reply, the number that received the user's
// message), the tenant's first one when m.From is empty; nil when m.From is
// none of the tenant's WhatsApp numbers.
func (wa *waChannel) numberFor(m *Message) *waNumber {
	if m.From == "" {
		return wa.byTenant[m.Tenant.ID]
	}
	return wa.bySender[waSender{m.Tenant.ID, m.From}]
}

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
			m.Finish(Outcome{Kind: Rejected, Reason: ReasonInvalidSender, Status: smpp.StatusInvSrcAdr,
				Err: fmt.Errorf("sender %s is not one of the tenant's WhatsApp numbers", m.From)})
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
			g.metrics.blocked.WithLabelValues(m.Tenant.ID, ReasonWindowClosed).Inc()
			m.Finish(Outcome{Kind: Blocked, Reason: ReasonWindowClosed, Status: windowStatus(m.Account),
				Err: errors.New("WhatsApp 24-hour window closed: a template is required")})
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
		m.Finish(Outcome{Kind: Failed, Reason: ReasonInternal, Status: smpp.StatusXTAppn, Err: err})
		return false
	}
	if d.Action == consent.ActionBlock {
		g.metrics.blocked.WithLabelValues(m.Tenant.ID, d.Reason.String()).Inc()
		m.Finish(Outcome{Kind: Blocked, Reason: d.Reason.String(), Status: blockStatus(m.Account, d.Reason),
			Err: fmt.Errorf("recipient blocked: %s", d.Reason)})
		return false
	}
	return true
}

func windowStatus(a *Account) smpp.CommandStatus {
	if a != nil && a.cfg.Statuses.WhatsAppWindow != 0 {
		return smpp.CommandStatus(a.cfg.Statuses.WhatsAppWindow)
	}
	return smpp.StatusWhatsAppWindow
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
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonNoRoute, Status: smpp.StatusInvDstAdr, Err: ErrWhatsAppDisabled})
		return
	}
	n := g.wa.numberFor(m)
	if n == nil || n.client == nil {
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonNoRoute, Status: smpp.StatusInvDstAdr, Err: ErrWhatsAppDisabled})
		return
	}
	wm := g.wa.waMessage(n, m)
	if err := wm.Validate(); err != nil {
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonInvalidTemplate, Status: smpp.StatusInvMsgLen, Err: err})
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
				m.Finish(Outcome{Kind: Blocked, Reason: ReasonWindowClosed, Status: windowStatus(m.Account), Err: err})
				return
			}
			if errors.As(err, &ae) {
				switch {
				case ae.Code == consent.WhatsAppMarketingBlocked:
					reason = consent.ReasonMarketingOptOut.String()
				case ae.Class == whatsapp.ClassAuth:
					// Counted in optgate_whatsapp_token_errors_total by the client.
					err = fmt.Errorf("Meta refused the WhatsApp access token (expired or revoked): rotate whatsapp.token: %w", err)
				}
			}
			m.Finish(Outcome{Kind: Failed, Reason: reason, Status: smpp.StatusDeliveryFailure, Err: err})
			return
		}
		m.Finish(Outcome{Kind: Accepted, SMSC: "whatsapp", SMSCID: wamid})
	}()
}

// ReasonInvalidTemplate rejects a template message Meta would refuse (a
// media header without a media id or link, an unknown media type...).
const ReasonInvalidTemplate = "invalid_template"

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

// inboundKeyword screens a user message for consent keywords (ordered by
// event time, see keyword), forwards it and sends the replies.
func (wa *waChannel) inboundKeyword(ctx context.Context, n *waNumber, sender string, p waPerson, msg *whatsapp.InboundMessage) error {
	g, t := wa.g, n.tenant
	res, err := wa.keyword(ctx, n, sender, p, msg)
	if err != nil {
		if errors.Is(err, consent.ErrInvalidNumber) {
			return wa.unkeyed(t, whatsapp.Event{PhoneNumberID: n.cfg.PhoneNumberID, Message: msg}, unkeyedBadWaID)
		}
		g.metrics.mo.WithLabelValues(t.ID, "store_failed").Inc()
		return err // retried by the receiver
	}
	if res.Stale {
		return nil
	}
	if err := g.forwardMO(t, ChannelWhatsApp, p.key, sender, msg.KeywordText(), res); err != nil {
		g.metrics.mo.WithLabelValues(t.ID, "store_failed").Inc()
		return err
	}
	g.metrics.messages.WithLabelValues("mo", ChannelWhatsApp, "received").Inc()
	g.noteWhatsApp(t, res.Recipient, n)
	g.sendReplies(nil, t, res)
	return nil
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
	if err := g.commit.write(kv{key: key, val: v[:]}); err != nil {
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

// chooseChannel picks the channel for an API message: an explicit channel
// wins; else the channel the recipient last wrote on; else SMS when the
// recipient's region matches one of the tenant's SMS numbers, WhatsApp
// when it does not and the tenant has a WhatsApp number (never to regions
// where WhatsApp Business is unavailable).
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
	last, _ := g.lastChannel(t, to)
	ch, err := whatsapp.ChooseChannel(whatsapp.ChannelRequest{Explicit: explicit, LastUsed: last,
		Recipient: whatsapp.E164(to), SMSNumberRegions: g.wa.regions[t.ID]})
	if err != nil {
		return "", err
	}
	return string(ch), nil
}

// smppChannel applies the tenant's channel choice to an SMPP submit, for
// tenants with a WhatsApp number (the caller checks g.wa first, so an
// SMS-only gateway pays nothing; an account with channel: sms skips it).
// SMPP carries no channel and no template, so a submit goes to WhatsApp
// only when the recipient last wrote to the tenant there: the number bank
// rule that picks WhatsApp for a recipient who never wrote would turn every
// such submit into a free-form message outside the 24-hour window, refused
// with 0x404, so over SMPP it is not applied (SMS it stays). A message that
// goes to WhatsApp is decoded to text and sent from the business number
// the recipient last wrote to (else the tenant's first). Concatenated
// parts, message_payload and binary bodies stay on SMS: WhatsApp has no
// concatenation, and the parts would arrive as separate messages.
func (g *Gateway) smppChannel(m *Message) {
	first := g.wa.byTenant[m.Tenant.ID]
	if first == nil || m.ESMClass&smpp.ESMClassUDHI != 0 || len(m.TLVs) > 0 || !consent.ValidE164(m.To) {
		return
	}
	last, pid := g.lastChannel(m.Tenant, m.To)
	if last != string(whatsapp.ChannelWhatsApp) {
		return
	}
	// The rest of the choice still applies: never WhatsApp where it is
	// unavailable.
	ch, err := whatsapp.ChooseChannel(whatsapp.ChannelRequest{LastUsed: last, Recipient: whatsapp.E164(m.To),
		SMSNumberRegions: g.wa.regions[m.Tenant.ID]})
	if err != nil || ch != whatsapp.ChannelWhatsApp {
		return
	}
	text, err := coding.Decode(coding.DataCoding(m.DataCoding), m.Body)
	if err != nil || text == "" {
		return
	}
	n := first
	if wn := g.wa.numbers[pid]; wn != nil && wn.tenant == m.Tenant {
		n = wn
	}
	m.Channel, m.From, m.Text, m.Body, m.DataCoding = ChannelWhatsApp, n.cfg.Number, text, nil, 0
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

// noteWhatsApp remembers that the recipient last wrote to business number
// n: "whatsapp/<phone_number_id>".
func (g *Gateway) noteWhatsApp(t *Tenant, recipient string, n *waNumber) {
	g.noteChannel(t, recipient, ChannelWhatsApp+"/"+n.cfg.PhoneNumberID)
}

// lastChannel is the channel the recipient last wrote to us on ("" if
// unknown) and, for WhatsApp, the phone-number id it wrote to.
func (g *Gateway) lastChannel(t *Tenant, recipient string) (channel, phoneNumberID string) {
	var v string
	_ = g.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(lastChannelKey(t, recipient))
		if err != nil {
			return nil
		}
		return it.Value(func(b []byte) error { v = string(b); return nil })
	})
	channel, phoneNumberID, _ = strings.Cut(v, "/")
	return channel, phoneNumberID
}
