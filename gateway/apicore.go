package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/optgate/optgate/internal/e164"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/optgate/optgate/backup"
	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/api"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/internal/groupcommit"
)

// apiCore is the core as the HTTP API (package api) sees it: it
// implements api.Core, api.Store, api.Admin and api.Simulator over the
// gateway.
type apiCore struct{ g *Gateway }

// newHTTPServer makes the HTTP API server (g.api) and returns its
// fasthttp server, which Start serves and Shutdown stops.
func (g *Gateway) newHTTPServer() *fasthttp.Server {
	c := apiCore{g}
	h := g.cfg.HTTP
	cfg := api.Config{AdminToken: h.AdminToken, Tokens: make(map[string]*api.Tenant, len(g.byToken)),
		MaxBodyBytes: h.MaxBodyBytes, MaxImportBytes: h.MaxImportBytes, MaxImports: h.MaxImports,
		MaxImportsPerTenant: h.MaxImportsPerTenant, MaxConnections: h.MaxConnections, MaxConnsPerIP: h.MaxConnsPerIP,
		ReadTimeout: h.ReadTimeout, AuthFailures: h.AuthFailures, AuthLockout: h.AuthLockout, TrustedProxies: h.TrustedProxies,
		Pprof: h.Pprof, Core: c, Consents: g.consent, Store: c, Admin: c, Simulator: c,
		Handlers: api.Handlers{WhatsApp: g.waWebhook}, Logger: g.log, Registerer: g.reg, Panics: g.metrics.panics}
	byID := make(map[string]*api.Tenant, len(g.tenantList))
	for _, t := range g.tenantList {
		at := &api.Tenant{ID: t.ID, Region: t.cfg.DefaultRegion, Webhook: t.cfg.Webhook.URL != ""}
		byID[t.ID] = at
		cfg.Tenants = append(cfg.Tenants, at)
	}
	for tok, t := range g.byToken {
		cfg.Tokens[tok] = byID[t.ID]
	}
	if g.cfg.Metrics.Listen == "" { // else on the metrics listener only
		cfg.Handlers.Metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(g.gatherer, promhttp.HandlerOpts{}))
	}
	g.api = api.New(cfg)
	return g.api.FastHTTP()
}

// The WhatsApp content of a message sent over the HTTP API, as the API
// reads it (POST /v1/messages' "template" and "interactive" objects).
type (
	WAContent     = api.WAContent
	WAMedia       = api.WAMedia
	WAButton      = api.WAButton
	WAInteractive = api.WAInteractive
	WAReplyButton = api.WAReplyButton
)

// writeErr answers status with the API's JSON error body.
func writeErr(ctx *fasthttp.RequestCtx, status int, code, field, msg string) {
	api.WriteError(ctx, status, code, field, msg)
}

// sendWait is how long POST /v1/messages waits for the carrier's answer
// before it answers 202 with status "pending".
var sendWait = 60 * time.Second

func (c apiCore) Send(at *api.Tenant, d api.Draft, res api.Reserver) (api.Sent, *api.Refusal) {
	g := c.g
	m, r := c.message(g.tenants[at.ID], &d)
	if r != nil {
		return api.Sent{}, r
	}
	if res != nil {
		if r := res.Reserve(m.ID); r != nil {
			return api.Sent{}, r
		}
	}
	if d.Receipt {
		m.RegisteredDelivery = 1
	}
	done := make(chan Outcome, 1)
	m.done = func(m *Message, o Outcome) { g.record(m, o); done <- o }
	g.mt.Handle(context.Background(), m)
	s := api.Sent{ID: m.ID, Channel: m.Channel, To: m.To}
	select {
	case o := <-done:
		s.Outcome = o
	case <-time.After(sendWait):
		// The send goes on (a submit written to the SMSC cannot be called
		// back), so the honest answer is "accepted, outcome pending" with
		// the id to ask GET /v1/messages/{id} about, not an error the
		// platform would retry into a duplicate. Stamped like record's, so
		// the real outcome replaces it.
		g.statuses.Put(MessageStatus{ID: m.ID, Tenant: m.Tenant.ID, Channel: m.Channel, To: m.To, State: status.StatePending,
			Updated: m.Received})
		s.Pending = true
	}
	return s, nil
}

// message makes the message of a send: the channel, the sender (the
// tenant's default, or one it owns).
func (c apiCore) message(t *Tenant, d *api.Draft) (*Message, *api.Refusal) {
	g := c.g
	channel, err := g.chooseChannel(t, d.Channel, d.To)
	if err != nil {
		return nil, &api.Refusal{Code: "invalid_request", Field: "channel", Message: err.Error()}
	}
	if d.Interactive != nil && channel != ChannelWhatsApp {
		return nil, &api.Refusal{Code: "invalid_request", Field: "interactive", Message: "interactive messages exist on channel whatsapp only"}
	}
	from := d.From
	if from == "" {
		from = g.defaultSender(t, channel)
	}
	if from == "" {
		return nil, &api.Refusal{Code: "invalid_request", Field: "from", Message: "from is required (the tenant has no default number)"}
	}
	if channel == ChannelSMS {
		f, err := g.senderFor(t, from, httpSenderTON(from), 0)
		switch {
		case errors.Is(err, ErrSenderNotOwned):
			return nil, &api.Refusal{Code: "sender_not_allowed", Field: "from", Message: err.Error()}
		case err != nil:
			return nil, &api.Refusal{Code: "invalid_sender", Field: "from", Message: err.Error()}
		}
		from = f
	}
	cat := consent.CategoryTransactional
	if d.Marketing {
		cat = consent.CategoryMarketing
	}
	m := &Message{ID: g.ids.next(), Tenant: t, Origin: OriginHTTP, Channel: channel, From: from, To: d.To, Text: d.Text,
		Category: cat, Bulk: d.Bulk, Received: time.Now(), WA: d.Template, Template: d.Template != nil}
	if d.Interactive != nil {
		m.WA = &WAContent{Interactive: d.Interactive}
	}
	return m, nil
}

func (c apiCore) MessageStatus(id string) (any, string, bool) {
	st, found := c.g.statuses.Get(id)
	return st, st.Tenant, found
}

func (c apiCore) ChangeConsent(ctx context.Context, at *api.Tenant, oc consent.OperatorChange, optIn bool) (consent.Result, error) {
	g := c.g
	var res consent.Result
	var err error
	if optIn {
		res, err = g.consent.OptIn(ctx, oc)
	} else {
		res, err = g.consent.OptOut(ctx, oc)
	}
	if err != nil {
		return res, err
	}
	t := g.tenants[at.ID]
	for _, rep := range res.Replies {
		g.sendReply(t, rep)
	}
	for _, ev := range res.Events {
		_ = g.emit(t, ev.Type, map[string]any{"channel": ev.Channel, "recipient": ev.Recipient, "sender": ev.Sender, "event_id": ev.ID})
	}
	return res, nil
}

// OwnSender normalises a consent request's sender in the tenant's region
// and checks that it is one of the tenant's own numbers (SMS numbers, or
// the display numbers of its WhatsApp phone numbers): a confirmation goes
// out from that sender, so naming another tenant's number would send as
// that tenant.
func (c apiCore) OwnSender(at *api.Tenant, channel, sender string) (string, *api.Refusal) {
	g := c.g
	t := g.tenants[at.ID]
	// Read as a platform writes a number (any form, national in the
	// tenant's region), then held to the one sender-ownership rule.
	n, kind, err := consent.NormalizeAddress(sender, consent.TONUnknown, 0, t.cfg.DefaultRegion)
	if err != nil || kind != consent.AddressNumber {
		return "", &api.Refusal{Code: "invalid_sender", Message: fmt.Sprintf("sender %q is not a phone number", truncateForError(sender))}
	}
	if channel == ChannelWhatsApp && g.wa != nil && g.wa.bySender[waSender{t.ID, n}] != nil {
		return n, nil
	}
	if own, err := g.senderFor(t, n, consent.TONInternational, 1); err == nil && own == n {
		return n, nil
	}
	return "", &api.Refusal{Code: "sender_not_allowed", Message: "the sender is not one of this tenant's numbers"}
}

func truncateForError(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// Ready is GET /readyz: started, the SMSC links up, the stores healthy
// and answering.
func (c apiCore) Ready() (bool, string) {
	g := c.g
	if !g.ready.Load() {
		return false, "starting or stopping"
	}
	if ok, why := g.linksReady(); !ok {
		return false, why
	}
	if why := g.storeProblem(); why != "" {
		return false, why
	}
	if err := g.storesAnswer(); err != nil {
		return false, err.Error()
	}
	if why := g.clusterProblem(); why != "" {
		return false, why
	}
	return true, ""
}

func (c apiCore) StoresOK() bool       { return c.g.storesOK() }
func (c apiCore) StoreProblem() string { return c.g.storeProblem() }

// Read and Write are api.Store over the gateway store.
func (c apiCore) Read(key []byte, fn func(v []byte)) (bool, error) { return readKey(c.g.db, key, fn) }
func (c apiCore) Write(key, val []byte, ttl time.Duration) error {
	return c.g.commit.Write(groupcommit.Op{Key: key, Value: val, TTL: ttl})
}

func (c apiCore) Backup(w io.Writer, req api.BackupRequest, version string) error {
	_, err := c.g.Backup(w, req, version)
	return err
}

func (c apiCore) BackupRunning() bool { return c.g.backupBusy.Load() }

func (c apiCore) CheckBackupParent(parent string) error {
	return backup.CheckParent(c.g.cfg.Store.Dir, parent)
}

func (c apiCore) DeadLetters(limit int) (any, int, error) {
	g := c.g
	list := []DeadLetter{}
	total := 0
	err := g.DeadLetters(func(d DeadLetter) bool {
		if total < limit {
			list = append(list, d)
		}
		total++
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	g.deadletters.n(g).Store(int64(total))
	return list, total, nil
}

func (c apiCore) SimulatorReady() bool { return c.g.sim != nil && c.g.listenerLoopback() }

func (c apiCore) SimulateMO(ctx context.Context, at *api.Tenant, from, to, text string) *api.Refusal {
	g := c.g
	if !e164.Valid(from) {
		return &api.Refusal{Code: "invalid_number", Field: "from", Message: "from must be an E.164 number"}
	}
	owner := g.byNumber[to]
	if owner == nil {
		return &api.Refusal{Code: "invalid_request", Field: "to", Message: "to must be one of the tenants' numbers"}
	}
	if at != nil && owner.ID != at.ID {
		return &api.Refusal{Code: "forbidden", Field: "to", Message: "the number does not belong to this tenant"}
	}
	if err := g.sim.SendMO(ctx, g.cfg.Simulator.SystemID, from, to, text); err != nil {
		return &api.Refusal{Code: "simulator_error", Message: err.Error()}
	}
	return nil
}

// listenerLoopback reports whether the HTTP listener accepts loopback
// connections only.
func (g *Gateway) listenerLoopback() bool {
	if g.httpLn == nil {
		return loopback(g.cfg.HTTP.Listen)
	}
	a, ok := g.httpLn.Addr().(*net.TCPAddr)
	return ok && a.IP.IsLoopback()
}

// storesAnswer checks that the consent store and the gateway store are
// open and answer a read (for /readyz).
func (g *Gateway) storesAnswer() error {
	if g.db == nil || g.db.IsClosed() {
		return errors.New("gateway store closed")
	}
	if _, err := readKey(g.db, []byte("readyz/probe"), nil); err != nil {
		return fmt.Errorf("gateway store: %w", err)
	}
	if len(g.tenantList) == 0 {
		return nil
	}
	t := g.tenantList[0]
	const probe = "+15005550006"
	if _, err := g.consent.Check(t.ID, ChannelSMS, "optgate", probe, consent.CategoryTransactional); err != nil {
		return fmt.Errorf("consent store: %w", err)
	}
	if _, err := g.consent.History(t.ID, ChannelSMS, probe, 1); err != nil {
		return fmt.Errorf("consent store: %w", err)
	}
	return nil
}

// loadServerTLS loads a server certificate for TLS 1.2 or later; nil when
// none is configured.
func loadServerTLS(c TLSConfig) (*tls.Config, error) {
	if c.Cert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// fromSimulator reports whether an MO came over a link to the built-in
// SMSC simulator: a handset never sent it, whoever asked the simulator to.
func (g *Gateway) fromSimulator(l *smscLink) bool {
	if l == nil || g.sim == nil {
		return false
	}
	return l.cfg.Address == g.cfg.Simulator.Listen || l.cfg.Address == g.sim.Addr()
}

// parseCIDR reads an IP address (a one-address prefix) or a CIDR.
func parseCIDR(s string) (netip.Prefix, error) { return api.ParseCIDR(s) }
