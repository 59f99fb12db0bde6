package gateway

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/consent/keyword"
	"github.com/optgate/optgate/gateway/api"
	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
	"github.com/optgate/optgate/smpp/smpptest"
)

// Tenant is a customer of the gateway at run time.
type Tenant struct {
	ID       string
	cfg      TenantConfig
	accounts []*Account
	idx      uint16 // 1-based position in Gateway.tenantList
}

// Options are the run-time dependencies cmd/optgate (or a test) injects.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: a private registry
	Gatherer   prometheus.Gatherer   // served at /metrics; nil: the private registry
	// SMPPListener and HTTPListener, if set, replace listening on the
	// configured addresses (tests pass 127.0.0.1:0 listeners).
	SMPPListener net.Listener
	HTTPListener net.Listener
	// SimulatorListener, if set with simulator.enabled, is where the
	// built-in SMSC simulator serves instead of simulator.listen (tests
	// hold a port this way rather than closing and re-listening on it).
	SimulatorListener net.Listener
}

// Gateway is the running gateway: the SMPP server platforms bind to, the
// HTTP API, the binds to SMSCs, the consent store and the durable queues.
type Gateway struct {
	cfg *Config
	log *slog.Logger

	// answerSubmitFn is g.answerSubmit bound once (a method value made per
	// message would be an allocation each).
	answerSubmitFn func(*Message, Outcome)

	consent *consent.Store
	db      *badger.DB
	dirLock *dirLock // store.dir, held from New to closeStores
	commit  *groupcommit.Committer
	outbox  *outbox
	retries *moRetries // MOs whose answer may not have reached their SMSC (moretry.go)

	tenants    map[string]*Tenant
	tenantList []*Tenant  // by idx-1
	acctList   []*Account // by idx-1
	byToken    map[string]*Tenant
	byNumber   map[string]*Tenant
	// ourNumbers maps a sender's digits (no +) to its E.164 string.
	ourNumbers map[string]string
	accounts   map[string]*Account
	links      map[string]*smscLink
	routes     []route

	smppSrv       *smpp.Server
	smppLn        net.Listener
	httpSrv       *fasthttp.Server
	httpTLS       *tls.Config // http.tls; nil for plain HTTP
	api           *api.Server // the HTTP API (apicore.go)
	httpLn        net.Listener
	webhookClient *fasthttp.Client
	sim           *smpptest.Server
	wa            *waChannel

	ids         *idGen
	ref         atomic.Uint32
	statuses    *statusBook
	receipts    *receiptBook
	reasm       *coding.Reassembler
	metrics     *metrics
	registry    *prometheus.Registry
	reg         prometheus.Registerer
	gatherer    prometheus.Gatherer
	mt          Handler
	afterScreen Handler

	replying sync.Map // consent reply ids being sent

	deadletters deadLetters // inbound messages that could not be keyed (deadletter.go)

	backupBusy atomic.Bool  // one backup at a time (backup.go)
	backupMu   sync.RWMutex // held for reading by a backup, for writing by Shutdown from before closeStores

	simLn      net.Listener // Options.SimulatorListener
	metricsSrv *http.Server // metrics.listen (metrics_listener.go)
	metricsLn  net.Listener

	disk     *diskGuard // store health: gates writes while a disk fails (diskfault.go)
	ready    atomic.Bool
	stop     chan struct{}
	bg       sync.WaitGroup
	shutOnce sync.Once
}

func (g *Gateway) tenantAt(i uint16) *Tenant {
	if i == 0 || int(i) > len(g.tenantList) {
		return nil
	}
	return g.tenantList[i-1]
}

func (g *Gateway) accountAt(i uint16) *Account {
	if i == 0 || int(i) > len(g.acctList) {
		return nil
	}
	return g.acctList[i-1]
}

func (g *Gateway) registererOrNil() prometheus.Registerer { return g.reg }

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// ConsentTenants converts the tenants of a config for the consent store.
func ConsentTenants(cfg *Config) ([]consent.TenantConfig, error) {
	out := make([]consent.TenantConfig, 0, len(cfg.Tenants))
	for _, t := range cfg.Tenants {
		mode, err := keyword.ParseMode(t.KeywordMode)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.ID, err)
		}
		kc := keyword.Config{Mode: mode, Remove: t.KeywordsDel, Enable: t.KeywordsOn}
		for _, k := range t.KeywordsAdd {
			cl, err := keyword.ParseClass(k.Class)
			if err != nil {
				return nil, fmt.Errorf("tenant %s: keyword %q: %w", t.ID, k.Word, err)
			}
			kc.Add = append(kc.Add, keyword.Entry{Word: k.Word, Class: cl, Lang: k.Lang})
		}
		tc := consent.TenantConfig{
			ID: t.ID, Brand: t.Brand, HelpContact: t.HelpContact, DefaultLang: t.DefaultLang, DefaultRegion: t.DefaultRegion,
			Scope: consent.Scope(t.Scope), CrossChannel: t.CrossChannel, Attestation: consent.AttestationMode(t.Attestation),
			MaxPrompts: t.MaxPrompts, HeldTTL: t.HeldTTL, MaxLength: t.MaxLength, ArchiveAfter: t.ArchiveAfter, Keywords: kc,
		}
		switch t.RepeatConfirm {
		case "":
		case "off":
			tc.RepeatConfirmWindow = consent.RepeatConfirmAlways
		default:
			d, err := time.ParseDuration(t.RepeatConfirm)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("tenant %s: repeat_confirm_window %q: a duration such as 24h, or off", t.ID, t.RepeatConfirm)
			}
			tc.RepeatConfirmWindow = d
		}
		if len(t.Templates) > 0 {
			tc.Templates = map[string]keyword.Templates{}
			for lang, tp := range t.Templates {
				tc.Templates[lang] = keyword.Templates{OptOut: tp.OptOut, MarketingOptOut: tp.MarketingOptOut, OptIn: tp.OptIn, Help: tp.Help,
					AttestationPrompt: tp.AttestationPrompt, Reprompt: tp.Reprompt, AttestationConfirm: tp.AttestationConfirm,
					Disclaimer: tp.Disclaimer}
			}
		}
		out = append(out, tc)
	}
	return out, nil
}

// New opens the stores and builds the gateway; Start runs it.
func New(cfg *Config, opt Options) (_ *Gateway, err error) {
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	// g is a local, not the named result: goroutines started below (the
	// committer's callback) capture it, and a failed New returns nil
	// without touching it.
	g := &Gateway{cfg: cfg, log: log, tenants: map[string]*Tenant{}, byToken: map[string]*Tenant{}, byNumber: map[string]*Tenant{}, ourNumbers: map[string]string{},
		accounts: map[string]*Account{}, links: map[string]*smscLink{}, ids: newIDGen(), stop: make(chan struct{})}
	g.answerSubmitFn = g.answerSubmit
	g.statuses = newStatusBook(g, 1<<20)
	g.receipts = newReceiptBook(g, 4<<20, cfg.Receipts.TTL, cfg.Receipts.Grace)
	reg := opt.Registerer
	if reg == nil {
		g.registry = prometheus.NewRegistry()
		reg = g.registry
		g.gatherer = g.registry
	}
	if opt.Gatherer != nil {
		g.gatherer = opt.Gatherer
	}
	g.reg = reg
	g.metrics = newMetrics(reg, g)
	g.reasm = &coding.Reassembler{Timeout: 10 * time.Minute, OnDrop: func(d coding.Dropped) {
		g.metrics.mo.WithLabelValues("", "incomplete_multipart").Inc()
	}}
	for _, tc := range cfg.Tenants {
		t := &Tenant{ID: tc.ID, cfg: tc}
		g.tenants[t.ID] = t
		g.tenantList = append(g.tenantList, t)
		t.idx = uint16(len(g.tenantList))
		if tc.APIToken != "" {
			g.byToken[tc.APIToken] = t
		}
		for _, n := range tc.Numbers {
			g.byNumber[n] = t
			g.ourNumbers[strings.TrimPrefix(n, "+")] = n
		}
	}
	for _, ac := range cfg.Accounts {
		t := g.tenants[ac.Tenant]
		a := &Account{cfg: ac, tenant: t}
		g.acctList = append(g.acctList, a)
		a.idx = uint16(len(g.acctList))
		a.smpp = &smpp.Account{ID: ac.SystemID, Window: ac.Window, Rate: ac.Rate, MaxBinds: ac.MaxBinds, Data: a}
		g.accounts[ac.SystemID] = a
		t.accounts = append(t.accounts, a)
	}
	// Every return below that fails closes what was opened so far. The
	// cleanup holds its own reference: the named result is nil by then.
	defer func() {
		if err != nil {
			g.closeStores()
		}
	}()
	ct, err := ConsentTenants(cfg)
	if err != nil {
		return nil, err
	}
	if g.dirLock, err = lockDataDir(cfg.Store.Dir, cfg.Store.LockWait, log); err != nil {
		return nil, err
	}
	g.consent, err = consent.Open(consent.Config{Dir: filepath.Join(cfg.Store.Dir, "consent"), Logger: log, // consent adds component=consent itself
		Tenants: ct, Registerer: reg, OnEvent: g.onConsentEvent, BadgerLowMemory: cfg.Store.LowMemory})
	if err != nil {
		return nil, fmt.Errorf("consent store: %w", err)
	}
	// SyncWrites: every commit is fsynced before it returns. An unsynced
	// commit followed by db.Sync is not durable in badger v4.9.6: Sync
	// covers only the active memtable's WAL (db.go DB.Sync), so a memtable
	// rotation in between (ensureRoomForWrite) loses what was told stored.
	// The committer keeps fsyncs few by putting each group-commit batch in
	// one transaction; see internal/groupcommit.
	bopt := badger.DefaultOptions(filepath.Join(cfg.Store.Dir, "gateway")).WithLogger(nil).WithSyncWrites(true).
		WithNumVersionsToKeep(1).WithMemTableSize(16 << 20).WithValueLogFileSize(64 << 20)
	g.db, err = badger.Open(bopt)
	if err != nil {
		return nil, fmt.Errorf("gateway store: %w", err)
	}
	g.receipts.openStore(g.db, reg, log.With("component", "receipts"))
	g.commit = groupcommit.New(g.db, groupcommit.Options{Queue: 4096, OnBatch: func(b groupcommit.Batch) {
		g.metrics.storeBatch.Observe(float64(b.Ops))
		g.metrics.storeSync.Observe(b.Took.Seconds())
	}})
	g.outbox = newOutbox(g.db, g.commit, log.With("component", "outbox"))
	if g.retries, err = openRetries(g.db, g.commit); err != nil {
		return nil, fmt.Errorf("gateway store: reading remembered MOs: %w", err)
	}
	g.statuses.openStore(g.db, g.commit, cfg.Receipts.TTL, reg, log.With("component", "statuses"))
	// Parts of concatenated MOs acknowledged before a crash wait for the
	// rest of their set again (multipart.go).
	if n, err := g.restoreParts(); err != nil {
		return nil, fmt.Errorf("gateway store: reading stored MO parts: %w", err)
	} else if n > 0 {
		log.Info("stored parts of concatenated MOs restored", "parts", n)
	}
	expired := func(q string) func() {
		c := g.metrics.queueExpired.WithLabelValues(q)
		return c.Inc
	}
	depth := func(q string) func(int) {
		gauge := g.metrics.queueDepth.WithLabelValues(q)
		return func(d int) { gauge.Add(float64(d)) }
	}
	// One tenant's webhooks hold at most half the workers, so a dead or
	// hanging endpoint (each attempt waits webhooks.timeout) cannot delay
	// the other tenants' deliveries.
	g.outbox.register(&outKind{name: "webhook", work: g.deliverWebhook, workers: cfg.Webhooks.Workers,
		perTenant: max(1, cfg.Webhooks.Workers/2), maxAge: cfg.Webhooks.MaxAge, maxBackoff: cfg.Webhooks.MaxBackoff,
		depth: depth("webhook"), expired: expired("webhook")})
	g.outbox.register(&outKind{name: "deliver", work: g.deliverSpooled, workers: 2, maxAge: cfg.Receipts.TTL,
		maxBackoff: time.Minute, depth: depth("deliver"), expired: expired("deliver")})
	g.webhookClient = &fasthttp.Client{Name: "optgate-webhook", MaxConnsPerHost: 64, ReadTimeout: cfg.Webhooks.Timeout,
		WriteTimeout: cfg.Webhooks.Timeout, MaxResponseBodySize: 64 << 10}

	if cfg.Simulator.Enabled {
		if opt.SimulatorListener != nil {
			cfg.Simulator.Listen = opt.SimulatorListener.Addr().String()
			g.simLn = opt.SimulatorListener
		}
		g.sim = smpptest.NewUnstartedServer(smpptest.Config{Addr: cfg.Simulator.Listen, SystemID: cfg.Simulator.SystemID,
			Password: cfg.Simulator.Password, Receipts: cfg.Simulator.Receipts, Logger: log.With("component", "simulator")})
		if lat := cfg.Simulator.Latency; lat > 0 {
			g.sim.SetLatency(func() time.Duration { return lat })
		}
		if len(cfg.SMSCs) == 0 {
			cfg.SMSCs = []SMSCConfig{{Name: "simulator", Address: cfg.Simulator.Listen, SystemID: cfg.Simulator.SystemID,
				Password: cfg.Simulator.Password, Mode: "transceiver", Binds: 2, Window: 256, Timeout: 30 * time.Second, IDBase: "same"}}
			cfg.Routes = []RouteConfig{{Prefix: "+", SMSCs: []string{"simulator"}}}
		}
	}
	for _, sc := range cfg.SMSCs {
		l, err := g.newSMSCLink(sc)
		if err != nil {
			return nil, err
		}
		l.idx = len(g.links)
		g.links[sc.Name] = l
	}
	g.routes = buildRoutes(cfg.Routes, g.links)
	// Queued MT is sent asynchronously, as many at once as the SMSC
	// windows hold.
	inflight := 0
	for _, l := range g.links {
		inflight += l.cfg.Window * l.cfg.Binds
	}
	g.outbox.register(&outKind{name: "mt", async: g.sendQueued, inflight: max(inflight, 16), maxAge: cfg.Queue.MaxAge,
		maxBackoff: cfg.Queue.MaxBackoff, depth: depth("mt"), onExpire: g.queuedExpired, expired: expired("mt")})
	g.mt, g.afterScreen = g.mtChain()
	g.initSeries()

	srvTLS, err := loadServerTLS(cfg.SMPP.TLS)
	if err != nil {
		return nil, fmt.Errorf("smpp tls: %w", err)
	}
	if g.httpTLS, err = loadServerTLS(cfg.HTTP.TLS); err != nil {
		return nil, fmt.Errorf("http tls: %w", err)
	}
	g.smppSrv = &smpp.Server{
		Authenticate:       g.authenticate,
		Handler:            smpp.HandlerFunc(g.serveUpstream),
		MaxBindsPerAccount: cfg.SMPP.MaxBindsPerAccount,
		MaxFailedBinds:     cfg.SMPP.MaxFailedBinds,
		MaxConns:           cfg.SMPP.MaxConnections,
		MaxConnsPerIP:      cfg.SMPP.MaxConnectionsPerIP,
		BindTimeout:        cfg.SMPP.BindTimeout,
		AccountLockAfter:   cfg.SMPP.AccountLockAfter,
		AccountLockMin:     cfg.SMPP.AccountLockMin,
		AccountLockMax:     cfg.SMPP.AccountLockMax,
		OnGuard:            newGuardMetrics(reg),
		TLSConfig:          srvTLS,
		Logger:             log.With("component", "smpp-server"),
		Conn: smpp.ConnConfig{Window: 256, MaxInflight: 4096, EnquireLink: cfg.SMPP.EnquireLink, MaxPDUSize: cfg.SMPP.MaxPDUSize,
			OnPDU: g.metrics.pduObserver("upstream")},
	}
	g.smppLn = opt.SMPPListener
	g.httpLn = opt.HTTPListener
	if err := g.newWhatsApp(); err != nil {
		return nil, err
	}
	g.httpSrv = g.newHTTPServer()
	return g, nil
}

// Start listens and runs everything. It returns once the listeners are
// open; errors after that are logged.
func (g *Gateway) Start() error {
	var err error
	// Before anything that serves: a store already unhealthy refuses
	// writes from the first message.
	g.disk = g.newDiskGuard()
	g.disk.check()
	if g.sim != nil && g.simLn != nil {
		if err := g.sim.StartListener(g.simLn); err != nil {
			return fmt.Errorf("simulator: %w", err)
		}
	} else if g.sim != nil {
		if err := g.sim.Start(); err != nil {
			return fmt.Errorf("simulator: listen %s: %w", g.cfg.Simulator.Listen, err)
		}
	}
	if g.smppLn == nil {
		if g.smppLn, err = net.Listen("tcp", g.cfg.SMPP.Listen); err != nil {
			return fmt.Errorf("smpp: listen %s: %w", g.cfg.SMPP.Listen, err)
		}
	}
	if g.smppSrv.TLSConfig != nil {
		g.smppLn = tls.NewListener(g.smppLn, g.smppSrv.TLSConfig)
	}
	if g.httpLn == nil {
		if g.httpLn, err = net.Listen("tcp", g.cfg.HTTP.Listen); err != nil {
			g.smppLn.Close()
			return fmt.Errorf("http: listen %s: %w", g.cfg.HTTP.Listen, err)
		}
	}
	if g.httpTLS != nil {
		g.httpLn = tls.NewListener(g.httpLn, g.httpTLS)
	}
	if err := g.startMetricsListener(); err != nil {
		g.smppLn.Close()
		g.httpLn.Close()
		return err
	}
	g.outbox.start()
	g.startLinks()
	if err := g.startWhatsApp(); err != nil {
		return err
	}
	g.bg.Add(4)
	go func() { defer g.bg.Done(); g.disk.run() }()
	go func() {
		defer g.bg.Done()
		if err := g.smppSrv.Serve(g.smppLn); err != nil && !errors.Is(err, smpp.ErrServerClosed) {
			g.log.Error("smpp server stopped", "err", err)
		}
	}()
	go func() {
		defer g.bg.Done()
		if err := g.httpSrv.Serve(g.httpLn); err != nil && !errors.Is(err, net.ErrClosed) {
			g.log.Error("http server stopped", "err", err)
		}
	}()
	go func() { defer g.bg.Done(); g.housekeeping() }()
	g.ready.Store(true)
	g.log.Info("optgate started", "smpp", g.SMPPAddr(), "http", g.HTTPAddr())
	return nil
}

// housekeeping runs the periodic chores: consent sweeps (archive events,
// held expiry), receipt parking and multipart timeouts.
func (g *Gateway) housekeeping() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	tick := 0
	for {
		select {
		case <-g.stop:
			return
		case now := <-t.C:
			for _, l := range g.links {
				used := 0
				for _, c := range l.client.Conns() {
					used += c.Window().Len()
				}
				g.metrics.windowUsed.WithLabelValues(l.name).Set(float64(used))
			}
			if n := g.receipts.expireParked(now); n > 0 {
				g.metrics.receipts.WithLabelValues("", "uncorrelated").Add(float64(n))
			}
			g.reasm.Expire(now)
			if tick++; tick%10 == 1 {
				g.resendPendingReplies(now)
			}
			if _, err := g.consent.Sweep(now); err != nil {
				g.log.Warn("consent sweep", "err", err)
			}
		}
	}
}

// onConsentEvent receives events from consent sweeps (archive, held
// expiry) and queues them for the tenant.
func (g *Gateway) onConsentEvent(ev consent.Event) error {
	t := g.tenants[ev.Tenant]
	if ev.Type == consent.EventHeldExpired && ev.Held != nil && t != nil {
		g.failHeld(t, *ev.Held, "held_expired")
	}
	return g.emit(t, ev.Type, map[string]any{"channel": ev.Channel, "recipient": ev.Recipient, "sender": ev.Sender, "event_id": ev.ID})
}

// SMPPAddr returns the SMPP server's address.
func (g *Gateway) SMPPAddr() string {
	if g.smppLn == nil {
		return g.cfg.SMPP.Listen
	}
	return g.smppLn.Addr().String()
}

// HTTPAddr returns the HTTP server's address.
func (g *Gateway) HTTPAddr() string {
	if g.httpLn == nil {
		return g.cfg.HTTP.Listen
	}
	return g.httpLn.Addr().String()
}

// Simulator returns the built-in SMSC simulator, if enabled.
func (g *Gateway) Simulator() *smpptest.Server { return g.sim }

// Consent returns the consent store.
func (g *Gateway) Consent() *consent.Store { return g.consent }

// ErrShutdownTimeout is returned by Shutdown when ctx ended before the
// gateway had stopped: it gave up waiting (for the stores to close, most
// often) and left the rest running.
var ErrShutdownTimeout = errors.New("gateway: shutdown did not complete in time")

// ErrStoresNotClosed is returned by Shutdown when a store was unhealthy
// (diskfault.go) and so was left open rather than closed: nothing
// acknowledged is lost, the next start replays the write-ahead logs.
var ErrStoresNotClosed = errors.New("gateway: stores left open on a failing disk")

// Shutdown stops ingress, drains the windows, unbinds, and syncs and
// closes the stores, and returns by ctx's deadline whatever they do. When
// ctx ends first it returns an error matching ErrShutdownTimeout that says
// which step it abandoned; that step goes on in the background and the
// caller is expected to exit.
//
// Abandoning a hung store close loses nothing acknowledged: every consent
// change and every gateway-store write was fsynced (group commit, Badger
// SyncWrites) before anyone was told it was stored; what a close adds is
// a memtable flush and compaction, which Badger redoes from its
// write-ahead log at the next open. A store whose directory vanished, for
// one, retries its memtable flush every second forever.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var err error
	g.shutOnce.Do(func() {
		var step atomic.Pointer[string]
		setStep := func(s string) { step.Store(&s) }
		setStep("stopping ingress")
		done := make(chan error, 1)
		go func() { done <- g.shutdown(ctx, setStep) }()
		select {
		case err = <-done:
		case <-ctx.Done():
			err = fmt.Errorf("%w: gave up while %s: %v", ErrShutdownTimeout, *step.Load(), context.Cause(ctx))
			g.log.Error("shutdown abandoned: exiting without waiting further; every acknowledged write was already synced",
				"step", *step.Load(), "err", context.Cause(ctx))
		}
	})
	return err
}

func (g *Gateway) shutdown(ctx context.Context, step func(string)) error {
	var err error
	g.ready.Store(false)
	g.log.Info("optgate shutting down")
	close(g.stop)
	if e := g.smppSrv.Shutdown(ctx); e != nil {
		err = errors.Join(err, e)
	}
	if e := g.httpSrv.ShutdownWithContext(ctx); e != nil {
		err = errors.Join(err, e)
	}
	// fasthttp's Shutdown closes only the listeners Serve registered:
	// right after Start, Serve may not have yet, and would then serve
	// on forever.
	if g.httpLn != nil {
		g.httpLn.Close()
	}
	g.stopMetricsListener(ctx)
	step("draining the SMSC binds")
	g.stopLinks(ctx)
	g.stopWhatsApp()
	if g.sim != nil {
		g.sim.Close()
	}
	step("waiting for background work")
	g.bg.Wait()
	if why := g.storeProblem(); why != "" {
		// diskfault.go: a close flushes the memtables to new table files,
		// which on a failed disk Badger retries for ever (a vanished
		// directory) and on a full one may die of SIGBUS (tables are
		// written through memory maps of sparse files).
		// Everything acknowledged is in the synced write-ahead logs, which
		// the next start replays.
		g.log.Error("stores left open: the disk is failing; their synced write-ahead logs are replayed at the next start", "reason", why)
		return errors.Join(err, fmt.Errorf("%w: %s", ErrStoresNotClosed, why))
	}
	step("waiting for a running backup")
	g.backupMu.Lock() // a running backup fails its next write (stop is closed) and ends
	step("closing the stores")
	g.closeStores()
	return err
}

func (g *Gateway) closeStores() {
	g.receipts.closeStore() // before the store: it writes what is queued
	if g.outbox != nil {
		g.outbox.close()
	}
	g.statuses.closeStore() // before the committer: it writes what is queued
	if g.commit != nil {
		g.commit.Close()
	}
	if g.db != nil {
		if err := g.db.Close(); err != nil {
			g.log.Error("gateway store close", "err", err)
		}
	}
	if g.consent != nil {
		if err := g.consent.Close(); err != nil {
			g.log.Error("consent store close", "err", err)
		}
	}
	g.dirLock.release()
}
