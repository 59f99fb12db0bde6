package gateway

import (
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/cluster"
	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/api"
	"github.com/optgate/optgate/gateway/outbox"
	"github.com/optgate/optgate/gateway/receipt"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
)

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

	// StartSMSCSimulator starts the built-in SMSC simulator of
	// simulator.enabled on l with c's system_id, password, receipts and
	// latency; it is required when the simulator is enabled. cmd/optgate
	// sets it to the smpp/smpptest server (cmd/optgate/simulators); the
	// gateway never imports a test double.
	StartSMSCSimulator func(l net.Listener, c SimulatorConfig, log *slog.Logger) (SMSCSimulator, error)
	// StartWhatsAppMock starts the built-in WhatsApp Graph API mock of
	// whatsapp_simulator.enabled (required when it is enabled).
	StartWhatsAppMock func(c WhatsAppMockConfig) (WhatsAppMock, error)
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
	outbox  *outbox.Store
	retries *moRetries // MOs whose answer may not have reached their SMSC (moretry.go)

	// commitFault, when set, commits the gateway store's transactions
	// instead of txn.Commit: fault injection for tests (diskfault_test.go).
	commitFault atomic.Pointer[func(*badger.Txn) error]

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
	sim           SMSCSimulator // set by Start when simulator.enabled
	startSim      func(net.Listener, SimulatorConfig, *slog.Logger) (SMSCSimulator, error)
	startWAMock   func(WhatsAppMockConfig) (WhatsAppMock, error)
	wa            *waChannel

	ids         *idGen
	ref         atomic.Uint32
	statuses    *status.Book
	receipts    *receipt.Book
	reasm       *coding.Reassembler
	metrics     *metrics
	registry    *prometheus.Registry
	reg         prometheus.Registerer
	gatherer    prometheus.Gatherer
	mt          Handler
	afterScreen Handler
	afterQueue  Handler

	replying sync.Map // consent reply ids being sent

	deadletters deadLetters // inbound messages that could not be keyed (deadletter.go)

	backupBusy atomic.Bool  // one backup at a time (backup.go)
	backupMu   sync.RWMutex // held for reading by a backup, for writing by Shutdown from before closeStores

	simLn      net.Listener // Options.SimulatorListener
	metricsSrv *http.Server // metrics.listen (metrics_listener.go)
	metricsLn  net.Listener

	disk *diskGuard // store health: gates writes while a disk fails (diskfault.go)

	// The cluster (cluster.go), all nil on a single node. follower is set
	// by Start before anything serves and read without a lock after.
	clusterSrv  *cluster.Server
	clusterConn *cluster.Conn
	clusterLog  *clusterLog
	follower    *cluster.Follower
	shared      *cluster.Shared // WhatsApp windows and last channels (cluster_shared.go)
	tagsMu      sync.Mutex
	tags        map[uint64]string // message-id tag → node, from the shared bucket
	work        *cluster.Queue    // queued MT and spooled deliver_sm (cluster_queue.go)
	workKinds   []outbox.Kind     // what work delivers, registered by New
	ready       atomic.Bool
	stop        chan struct{}
	bg          sync.WaitGroup
	shutOnce    sync.Once

	// receiptClaims holds a slot per receipt claim in flight
	// (cluster_receipt.go); nil on a single node.
	receiptClaims chan struct{}
}

func (g *Gateway) registererOrNil() prometheus.Registerer { return g.reg }

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
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
	g := newGateway(cfg, log)
	g.statuses = status.NewBook(bookTenants{g}, 1<<20)
	g.receipts = newReceiptBook(g, log)
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
	g.addTenants(cfg)
	g.startSim, g.startWAMock = opt.StartSMSCSimulator, opt.StartWhatsAppMock
	// Every return below that fails closes what was opened so far. The
	// cleanup holds its own reference: the named result is nil by then.
	defer func() {
		if err != nil {
			g.closeStores()
			g.closeCluster()
		}
	}()
	if err := g.startClusterServer(); err != nil {
		return nil, err
	}
	if err := g.openStores(cfg, reg); err != nil {
		return nil, err
	}
	g.registerOutKinds(cfg)
	g.addSimulatorSMSC(cfg, opt)
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
	g.registerWork(outbox.Kind{Name: "mt", DeliverAsync: g.sendQueued, Inflight: max(inflight, 16), MaxAge: cfg.Queue.MaxAge,
		MaxBackoff: cfg.Queue.MaxBackoff, Depth: g.queueDepthFn("mt"), GiveUp: g.queueExpiredFn("mt", g.queuedExpired)})
	g.mt, g.afterScreen, g.afterQueue = g.mtChain()
	g.initSeries()
	if err := g.newSMPPServer(cfg, reg); err != nil {
		return nil, err
	}
	g.smppLn = opt.SMPPListener
	g.httpLn = opt.HTTPListener
	if err := g.newWhatsApp(); err != nil {
		return nil, err
	}
	g.httpSrv = g.newHTTPServer()
	return g, nil
}

// newGateway is the Gateway before New opens anything: its indexes empty,
// no store, no metrics, no listener. Unit tests of a stage build one with
// it and add only what the stage uses.
func newGateway(cfg *Config, log *slog.Logger) *Gateway {
	g := &Gateway{cfg: cfg, log: log, tenants: map[string]*Tenant{}, byToken: map[string]*Tenant{}, byNumber: map[string]*Tenant{}, ourNumbers: map[string]string{},
		accounts: map[string]*Account{}, links: map[string]*smscLink{}, ids: newIDGen(clusterNode(cfg)), stop: make(chan struct{})}
	g.answerSubmitFn = g.answerSubmit
	return g
}

// openStores locks store.dir and opens the consent store, the gateway
// store and what lives in it (receipts, outbox, MO retries, statuses,
// stored MO parts). New closes whatever was opened when it fails.
func (g *Gateway) openStores(cfg *Config, reg prometheus.Registerer) error {
	log := g.log
	ct, err := ConsentTenants(cfg)
	if err != nil {
		return err
	}
	if g.dirLock, err = lockDataDir(cfg.Store.Dir, cfg.Store.LockWait, log); err != nil {
		return err
	}
	ccfg := consent.Config{Dir: filepath.Join(cfg.Store.Dir, "consent"), Logger: log, // consent adds component=consent itself
		Tenants: ct, Registerer: reg, OnEvent: g.onConsentEvent, BadgerLowMemory: cfg.Store.LowMemory}
	if g.clusterLog != nil { // not a typed nil in the interface
		ccfg.Replicator, ccfg.Node = g.clusterLog, cfg.Cluster.Node
	}
	g.consent, err = consent.Open(ccfg)
	if err != nil {
		return fmt.Errorf("consent store: %w", err)
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
		return fmt.Errorf("gateway store: %w", err)
	}
	// A failed commit fences the committer; the store probe lifts the
	// fence once the disk passes it again (diskfault.go, gatewayFence).
	g.commit = groupcommit.New(g.db, groupcommit.Options{Queue: 4096, OnBatch: func(b groupcommit.Batch) {
		g.metrics.storeBatch.Observe(float64(b.Ops))
		g.metrics.storeSync.Observe(b.Took.Seconds())
	}, Commit: func(txn *badger.Txn) error {
		if f := g.commitFault.Load(); f != nil {
			return (*f)(txn)
		}
		return txn.Commit()
	}})
	g.receipts.OpenStore(g.db, g.commit, reg)
	g.outbox = outbox.New(g.db, g.commit, log.With("component", "outbox"))
	if g.retries, err = openRetries(g.db, g.commit); err != nil {
		return fmt.Errorf("gateway store: reading remembered MOs: %w", err)
	}
	g.statuses.OpenStore(g.db, g.commit, cfg.Receipts.TTL, reg, log.With("component", "statuses"))
	// Parts of concatenated MOs acknowledged before a crash wait for the
	// rest of their set again (multipart.go).
	if n, err := g.restoreParts(); err != nil {
		return fmt.Errorf("gateway store: reading stored MO parts: %w", err)
	} else if n > 0 {
		log.Info("stored parts of concatenated MOs restored", "parts", n)
	}
	return nil
}

// queueExpiredFn is the GiveUp of outbox kind q: it calls then, if not
// nil, with the item given up and counts it as expired.
func (g *Gateway) queueExpiredFn(q string, then func(*outbox.Item)) func(*outbox.Item, error) {
	c := g.metrics.queueExpired.WithLabelValues(q)
	return func(it *outbox.Item, _ error) {
		if then != nil {
			then(it)
		}
		c.Inc()
	}
}

// queueDepthFn adds to the depth gauge of outbox kind q.
func (g *Gateway) queueDepthFn(q string) func(int) {
	gauge := g.metrics.queueDepth.WithLabelValues(q)
	return func(d int) { gauge.Add(float64(d)) }
}

// registerOutKinds registers the webhook and spooled deliver_sm kinds of
// the outbox (the MT kind needs the SMSC links: New registers it).
func (g *Gateway) registerOutKinds(cfg *Config) {
	expired, depth := g.queueExpiredFn, g.queueDepthFn
	// One tenant's webhooks hold at most half the workers, so a dead or
	// hanging endpoint (each attempt waits webhooks.timeout) cannot delay
	// the other tenants' deliveries.
	g.outbox.Register(outbox.Kind{Name: "webhook", Deliver: g.deliverWebhook, Workers: cfg.Webhooks.Workers,
		PerTenant: max(1, cfg.Webhooks.Workers/2), MaxAge: cfg.Webhooks.MaxAge, MaxBackoff: cfg.Webhooks.MaxBackoff,
		Depth: depth("webhook"), GiveUp: expired("webhook", nil)})
	g.registerWork(outbox.Kind{Name: "deliver", Deliver: g.deliverSpooled, Workers: 2, MaxAge: cfg.Receipts.TTL,
		MaxBackoff: time.Minute, Depth: depth("deliver"), GiveUp: expired("deliver", nil)})
	g.webhookClient = &fasthttp.Client{Name: "optgate-webhook", MaxConnsPerHost: 64, ReadTimeout: cfg.Webhooks.Timeout,
		WriteTimeout: cfg.Webhooks.Timeout, MaxResponseBodySize: 64 << 10}
}

// addSimulatorSMSC takes the built-in SMSC simulator's listener (Start
// starts it) and, when no SMSC is configured, adds a link and a catch-all
// route to it.
func (g *Gateway) addSimulatorSMSC(cfg *Config, opt Options) {
	if cfg.Simulator.Enabled {
		if opt.SimulatorListener != nil {
			cfg.Simulator.Listen = opt.SimulatorListener.Addr().String()
			g.simLn = opt.SimulatorListener
		}
		if len(cfg.SMSCs) == 0 {
			cfg.SMSCs = []SMSCConfig{{Name: "simulator", Address: cfg.Simulator.Listen, SystemID: cfg.Simulator.SystemID,
				Password: cfg.Simulator.Password, Mode: "transceiver", Binds: 2, Window: defaultWindow, Timeout: 30 * time.Second, IDBase: "same"}}
			cfg.Routes = []RouteConfig{{Prefix: "+", SMSCs: []string{"simulator"}}}
		}
	}
}

// newSMPPServer builds the SMPP server upstream platforms bind to, and
// loads the TLS configurations of the SMPP and HTTP servers.
func (g *Gateway) newSMPPServer(cfg *Config, reg prometheus.Registerer) error {
	log := g.log
	srvTLS, err := loadServerTLS(cfg.SMPP.TLS)
	if err != nil {
		return fmt.Errorf("smpp tls: %w", err)
	}
	if g.httpTLS, err = loadServerTLS(cfg.HTTP.TLS); err != nil {
		return fmt.Errorf("http tls: %w", err)
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
		Conn: smpp.ConnConfig{Window: defaultWindow, MaxInflight: 4096, EnquireLink: cfg.SMPP.EnquireLink, MaxPDUSize: cfg.SMPP.MaxPDUSize,
			OnPDU: g.metrics.pduObserver("upstream")},
	}
	return nil
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

// Consent returns the consent store.
func (g *Gateway) Consent() *consent.Store { return g.consent }
