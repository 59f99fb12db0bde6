package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/whatsapp"
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
	mock     WhatsAppMock // whatsapp_simulator.enabled

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
		if g.startWAMock == nil {
			return fmt.Errorf("whatsapp_simulator.enabled: %w", errNoSimulator)
		}
		mock, err := g.startWAMock(WhatsAppMockConfig{Token: cfg.Token, AppSecret: cfg.AppSecret, Addr: g.cfg.WhatsAppSimulator.Listen,
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
		Window: wa.window, DedupTTL: cfg.DedupTTL, Committer: g.commit})
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
