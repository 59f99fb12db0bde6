package whatsapp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/maphash"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/valyala/fasthttp"
)

// ReceiverConfig configures a Receiver. Zero fields take the documented defaults.
type ReceiverConfig struct {
	// AppSecret is the Meta app secret keying X-Hub-Signature-256. Required.
	AppSecret string
	// VerifyToken is the token Meta echoes in the GET verification handshake. Required.
	VerifyToken string
	// PhoneNumberIDs are the business numbers this gateway serves. Changes for other ids are
	// logged, counted and acknowledged without processing. Empty accepts every id.
	PhoneNumberIDs []string
	// Handler receives the events. Required.
	Handler Handler

	// Workers is the number of worker queues. Each sender's (wa_id's) bodies go to one worker,
	// which handles them in spool order; within a batch a worker calls Handler for different
	// senders concurrently (up to 128 at a time), one sender's events one after another, so
	// that many consent changes share one synced commit. Default 8.
	Workers int
	// QueueSize bounds the in-memory queues between the spool and the workers (split evenly
	// among them); bodies beyond it stay only in the spool and are picked up by a sweep, in
	// order. Default 4096.
	QueueSize int
	// MaxRequestBodySize is the largest accepted body; larger ones get 413. Default 1 MiB.
	MaxRequestBodySize int
	// MaxGroupCommit bounds the bodies made durable by one synced commit. Default 1024.
	MaxGroupCommit int
	// DedupTTL is how long event ids are remembered. Default DefaultDedupTTL, 8 days: Meta
	// redelivers for up to 7 days (whatsapp.md §7), plus a day's margin for clock skew and late
	// retries. The memory is one small Badger key per event, expiring with the TTL.
	DedupTTL time.Duration
	// MaxAttempts bounds the Handler calls for one event before its body is moved to the
	// dead-letter prefix "wa/dead/" (see Replay). Default 12.
	MaxAttempts int
	// RetryBase and RetryMax shape the Handler retry back-off. Defaults 200 ms and 1 min.
	RetryBase, RetryMax time.Duration
	// SweepInterval is how often the spool is rescanned for bodies not in the memory queue.
	// Default 30 s.
	SweepInterval time.Duration
	// StopLabels are the quick-reply labels meaning "stop promotions". Default DefaultStopLabels.
	StopLabels []string
	// Window receives the user-message times; default NewWindow(db, Logger).
	Window *Window
	// Committer writes the spool: pass the committer of db when others write db too, so that
	// they share its group commits and its fence. Default: the receiver starts one on db (which
	// must be opened WithSyncWrites(true)) and closes it when it stops.
	Committer *groupcommit.Committer

	// Path is the only path served; requests for any other get 404. Default
	// "/webhooks/whatsapp" (the gateway mounts HandleFastHTTP there too).
	Path string
	// Addr is the listen address of ListenAndServe. Default ":8443".
	Addr string
	// Concurrency, ReadTimeout, WriteTimeout and IdleTimeout configure the standalone server.
	// Defaults 4096, 10 s, 10 s, 60 s.
	Concurrency                            int
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration

	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Receiver is the webhook endpoint. HandleFastHTTP is a fasthttp.RequestHandler for mounting
// at /webhooks/whatsapp; Serve and ListenAndServe run it standalone. Create it with
// NewReceiver; its pipeline runs until Shutdown or Close.
type Receiver struct {
	cfg     ReceiverConfig
	db      *badger.DB
	window  *Window
	log     *slog.Logger
	metrics *Metrics
	opts    ParseOptions
	verify  []byte
	macs    sync.Pool // of hash.Hash keyed with the app secret
	synced  bool      // db syncs every commit itself (SyncWrites)
	// windowInTxn: the window lives in db, so the committer records it with the bodies.
	windowInTxn bool
	commit      *groupcommit.Committer // writes the spool; see ReceiverConfig.Committer
	ownCommit   bool                   // commit was started here: the syncer closes it
	ops         []groupcommit.Op       // writeGroup's buffer; committer goroutine only

	appendCh   chan *appendReq // handlers → committer; unbuffered so nothing is left behind at close
	syncCh     chan *group     // committer → syncer; closed by the committer
	finishCh   chan *finishReq // workers → committer: batch outcomes for the next group commit
	wq         []workQueue     // syncer/sweeper → workers, one per worker; see route
	seed       maphash.Seed    // of route's hash
	sweepCh    chan struct{}   // cap 1: a sweep is wanted
	rescan     atomic.Bool     // the sweeper should rescan the whole spool
	leftBehind atomic.Int64    // bodies that did not fit in their queue, ever
	stopIntake chan struct{}   // closed by Shutdown: no new bodies
	quit       chan struct{}   // closed by Shutdown: workers and sweeper stop
	hctx       context.Context // passed to Handler; cancelled when Shutdown gives up waiting
	hcancel    context.CancelFunc
	closing    atomic.Bool
	closeOnce  sync.Once
	nextSeq    uint64 // owned by the committer goroutine

	mu       sync.Mutex
	inflight map[uint64]struct{} // spool seqs queued or being processed; guarded by mu
	claims   map[string]struct{} // dedup keys being handled right now; guarded by mu
	left     map[uint64]struct{} // seqs in some workQueue.left; guarded by mu

	srvMu   sync.Mutex
	servers []*fasthttp.Server    // guarded by srvMu
	conns   map[net.Conn]struct{} // the servers' open connections; guarded by srvMu

	intakeDone    chan struct{}  // closed by the syncer once the bodies taken before stopIntake are dispatched
	workersDone   chan struct{}  // closed by Shutdown after the workers and sweeper stopped
	committerDone chan struct{}  // closed by the syncer after the committer stopped
	wg            sync.WaitGroup // workers and sweeper
}

// NewReceiver starts the pipeline (committer, sweeper, workers) on db, which the caller opened
// and closes after the Receiver. Bodies left in the spool by an earlier run are processed.
func NewReceiver(db *badger.DB, cfg ReceiverConfig) (*Receiver, error) {
	var problems []string
	if db == nil {
		problems = append(problems, "db is nil")
	}
	if cfg.AppSecret == "" {
		problems = append(problems, "AppSecret is required")
	}
	if cfg.VerifyToken == "" {
		problems = append(problems, "VerifyToken is required")
	}
	if cfg.Handler == nil {
		problems = append(problems, "Handler is required")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("whatsapp: receiver config: %s", strings.Join(problems, "; "))
	}
	setDefault(&cfg.Workers, 8)
	setDefault(&cfg.QueueSize, 4096)
	setDefault(&cfg.MaxRequestBodySize, 1<<20)
	setDefault(&cfg.MaxGroupCommit, 1024)
	setDefault(&cfg.MaxAttempts, 12)
	setDefault(&cfg.Concurrency, 4096)
	setDefault(&cfg.DedupTTL, DefaultDedupTTL)
	setDefault(&cfg.RetryBase, 200*time.Millisecond)
	setDefault(&cfg.RetryMax, time.Minute)
	setDefault(&cfg.SweepInterval, 30*time.Second)
	setDefault(&cfg.ReadTimeout, 10*time.Second)
	setDefault(&cfg.WriteTimeout, 10*time.Second)
	setDefault(&cfg.IdleTimeout, 60*time.Second)
	if cfg.Addr == "" {
		cfg.Addr = ":8443"
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Window == nil {
		cfg.Window = NewWindow(db, cfg.Logger)
	}
	r := &Receiver{
		cfg: cfg, db: db, window: cfg.Window, log: cfg.Logger, metrics: cfg.Metrics,
		opts:          ParseOptions{StopLabels: cfg.StopLabels},
		verify:        []byte(cfg.VerifyToken),
		synced:        db.Opts().SyncWrites,
		windowInTxn:   cfg.Window.db == db,
		finishCh:      make(chan *finishReq),
		intakeDone:    make(chan struct{}),
		workersDone:   make(chan struct{}),
		appendCh:      make(chan *appendReq),
		syncCh:        make(chan *group, 8),
		wq:            make([]workQueue, cfg.Workers),
		seed:          maphash.MakeSeed(),
		sweepCh:       make(chan struct{}, 1),
		stopIntake:    make(chan struct{}),
		quit:          make(chan struct{}),
		inflight:      make(map[uint64]struct{}),
		claims:        make(map[string]struct{}),
		left:          make(map[uint64]struct{}),
		committerDone: make(chan struct{}),
	}
	for i := range r.wq {
		r.wq[i].ch = make(chan *spoolItem, (cfg.QueueSize+cfg.Workers-1)/cfg.Workers)
	}
	secret := []byte(cfg.AppSecret)
	r.macs.New = func() any { return hmac.New(sha256.New, secret) }
	if len(cfg.PhoneNumberIDs) > 0 {
		r.opts.Known = make(map[string]struct{}, len(cfg.PhoneNumberIDs))
		for _, id := range cfg.PhoneNumberIDs {
			r.opts.Known[id] = struct{}{}
		}
	}
	r.hctx, r.hcancel = context.WithCancel(context.Background())
	depth, last, err := r.scanSpool()
	if err != nil {
		r.hcancel()
		return nil, fmt.Errorf("whatsapp: reading spool: %w", err)
	}
	r.nextSeq = last + 1
	r.metrics.spoolDepth.Set(float64(depth))
	if depth > 0 {
		r.log.Info("whatsapp: resuming spooled webhooks", "count", depth)
		// New bodies wait behind the old ones until the first sweep has queued those.
		for i := range r.wq {
			r.wq[i].behind = true
		}
		r.rescan.Store(true)
		r.sweepCh <- struct{}{}
	}
	r.commit = cfg.Committer
	if r.commit == nil {
		r.commit, r.ownCommit = groupcommit.New(db, groupcommit.Options{}), true
	}
	go r.committer()
	go r.syncer()
	r.wg.Add(1 + cfg.Workers)
	go r.sweeper()
	for i := range r.wq {
		go r.worker(r.wq[i].ch)
	}
	return r, nil
}

// DefaultDedupTTL is ReceiverConfig.DedupTTL's default: Meta's 7-day retry horizon plus a day.
const DefaultDedupTTL = 8 * 24 * time.Hour

// DefaultPath is the webhook path, ReceiverConfig.Path's default.
const DefaultPath = "/webhooks/whatsapp"

func setDefault[T int | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}

// Window returns the window store the pipeline updates.
func (r *Receiver) Window() *Window { return r.window }

// HandleFastHTTP serves the webhook endpoint at ReceiverConfig.Path (any other path gets 404):
// GET is the verification handshake, POST an event notification. It keeps nothing from ctx
// after returning.
func (r *Receiver) HandleFastHTTP(ctx *fasthttp.RequestCtx) {
	defer func() {
		if p := recover(); p != nil {
			r.metrics.panics.Inc()
			r.log.Error("whatsapp: panic in webhook handler", "panic", p)
			r.reply(ctx, fasthttp.StatusInternalServerError, "internal_error")
		}
	}()
	if string(ctx.Path()) != r.cfg.Path {
		r.reply(ctx, fasthttp.StatusNotFound, "not_found")
		return
	}
	switch {
	case ctx.IsGet():
		r.handleVerify(ctx)
	case ctx.IsPost():
		r.handleEvent(ctx)
	default:
		ctx.Response.Header.Set("Allow", "GET, POST")
		r.reply(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed")
	}
}

func (r *Receiver) reply(ctx *fasthttp.RequestCtx, status int, result string) {
	r.metrics.webhooks.WithLabelValues(result).Inc()
	ctx.SetStatusCode(status)
	if status != fasthttp.StatusOK {
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString(fasthttp.StatusMessage(status))
	}
}

// handleVerify answers Meta's subscription handshake: 200 with the raw challenge as plain text
// (not JSON: a quoted challenge fails, whatsapp.md §5), 403 otherwise.
func (r *Receiver) handleVerify(ctx *fasthttp.RequestCtx) {
	args := ctx.QueryArgs()
	mode := args.Peek("hub.mode")
	token := args.Peek("hub.verify_token")
	challenge := args.Peek("hub.challenge")
	if string(mode) != "subscribe" || subtle.ConstantTimeCompare(token, r.verify) != 1 || len(challenge) == 0 {
		r.log.Warn("whatsapp: webhook verification refused", "mode", string(mode))
		r.reply(ctx, fasthttp.StatusForbidden, "verify_forbidden")
		return
	}
	r.metrics.webhooks.WithLabelValues("verified").Inc()
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBody(challenge) // SetBody copies
}

// signatureHeader is Meta's signature header; its value is "sha256=" + 64 lowercase hex digits.
const signatureHeader = "X-Hub-Signature-256"

// validSignature checks header against the HMAC-SHA256 of body in constant time.
func (r *Receiver) validSignature(header, body []byte) bool {
	const prefix = "sha256="
	if len(header) != len(prefix)+2*sha256.Size || string(header[:len(prefix)]) != prefix {
		return false
	}
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], header[len(prefix):]); err != nil {
		return false
	}
	mac := r.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write(body)
	var got [sha256.Size]byte
	mac.Sum(got[:0])
	r.macs.Put(mac)
	return hmac.Equal(got[:], want[:])
}

// handleEvent verifies, parses (to reject garbage and unknown numbers early), appends the raw
// body to the durable spool and answers 200 once the group commit holding it is synced.
func (r *Receiver) handleEvent(ctx *fasthttp.RequestCtx) {
	if r.closing.Load() {
		r.reply(ctx, fasthttp.StatusServiceUnavailable, "closing")
		return
	}
	body := ctx.PostBody()
	if len(body) > r.cfg.MaxRequestBodySize {
		r.reply(ctx, fasthttp.StatusRequestEntityTooLarge, "too_large")
		return
	}
	if !r.validSignature(ctx.Request.Header.Peek(signatureHeader), body) {
		r.log.Warn("whatsapp: webhook with missing or bad signature", "remote", ctx.RemoteIP().String())
		r.reply(ctx, fasthttp.StatusUnauthorized, "bad_signature")
		return
	}
	events, st, err := ParseWebhook(body, r.opts)
	if err != nil {
		r.log.Warn("whatsapp: unparseable webhook body", "err", err, "bytes", len(body))
		r.reply(ctx, fasthttp.StatusBadRequest, "bad_request")
		return
	}
	if st.OtherObject {
		// Another Meta product's notification (or none): acknowledged so that Meta does not
		// retry it, counted, never spooled.
		r.log.Warn("whatsapp: webhook for another object ignored", "bytes", len(body))
		r.reply(ctx, fasthttp.StatusOK, "other_object")
		return
	}
	if st.Skipped > 0 {
		r.metrics.skipped.Add(float64(st.Skipped))
		r.log.Warn("whatsapp: skipped malformed webhook items", "count", st.Skipped)
	}
	if st.Unknown > 0 {
		r.metrics.unknownIDs.Add(float64(st.Unknown))
		r.log.Warn("whatsapp: webhook for unknown phone-number id ignored", "changes", st.Unknown)
	}
	if len(events) == 0 {
		result := "ignored"
		if st.Unknown > 0 {
			result = "unknown_number"
		}
		r.reply(ctx, fasthttp.StatusOK, result)
		return
	}
	req := acquireAppendReq()
	req.body = append(req.body[:0], body...) // copy: fasthttp reuses the request buffer
	req.events = events
	select {
	case r.appendCh <- req:
	case <-r.stopIntake:
		releaseAppendReq(req)
		r.reply(ctx, fasthttp.StatusServiceUnavailable, "closing")
		return
	}
	err = <-req.done
	// The committer no longer refers to req once it has answered, except for body and events,
	// which it handed to the spool item; so only the shell is recycled.
	req.body, req.events = nil, nil
	releaseAppendReq(req)
	if err != nil {
		r.log.Error("whatsapp: spooling webhook failed", "err", err)
		r.reply(ctx, fasthttp.StatusInternalServerError, "spool_error")
		return
	}
	r.metrics.resultOK.Inc()
	ctx.SetStatusCode(fasthttp.StatusOK)
}

// Serve accepts connections on ln and serves the webhook endpoint (at ReceiverConfig.Path) until
// Shutdown; it then returns ErrServerClosed.
func (r *Receiver) Serve(ln net.Listener) error {
	srv := &fasthttp.Server{
		Handler:               r.HandleFastHTTP,
		Name:                  "optgate",
		MaxRequestBodySize:    r.cfg.MaxRequestBodySize,
		Concurrency:           r.cfg.Concurrency,
		ReadTimeout:           r.cfg.ReadTimeout,
		WriteTimeout:          r.cfg.WriteTimeout,
		IdleTimeout:           r.cfg.IdleTimeout,
		NoDefaultServerHeader: true,
		ConnState:             r.trackConn,
		Logger:                slogPrintf{r.log},
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				r.reply(ctx, fasthttp.StatusRequestEntityTooLarge, "too_large")
				return
			}
			r.reply(ctx, fasthttp.StatusBadRequest, "bad_request")
		},
	}
	r.srvMu.Lock()
	if r.closing.Load() {
		r.srvMu.Unlock()
		return ErrServerClosed
	}
	r.servers = append(r.servers, srv)
	r.srvMu.Unlock()
	err := srv.Serve(ln)
	if r.closing.Load() {
		return ErrServerClosed
	}
	return err
}

// ListenAndServe listens on cfg.Addr and calls Serve.
func (r *Receiver) ListenAndServe() error {
	ln, err := net.Listen("tcp", r.cfg.Addr)
	if err != nil {
		return err
	}
	return r.Serve(ln)
}

// Shutdown stops the standalone servers (waiting for their requests), stops accepting bodies,
// lets the workers finish the events in hand and returns. Bodies not yet processed stay in the
// spool for the next NewReceiver on the same db. If ctx ends first, the Handler's context is
// cancelled (events in progress stay spooled) and ctx.Err() is returned.
func (r *Receiver) Shutdown(ctx context.Context) error {
	var err error
	r.closeOnce.Do(func() {
		r.srvMu.Lock()
		r.closing.Store(true)
		servers := r.servers
		r.srvMu.Unlock()
		for _, s := range servers {
			if e := s.ShutdownWithContext(ctx); e != nil && err == nil {
				err = e
			}
		}
		r.closeConns()
		close(r.stopIntake)
		<-r.intakeDone
		close(r.quit)
		done := make(chan struct{})
		go func() { r.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			r.hcancel()
			<-done
			if err == nil {
				err = ctx.Err()
			}
		}
		// The workers' last outcomes are committed before Shutdown returns.
		close(r.workersDone)
		<-r.committerDone
		r.hcancel()
	})
	return err
}

// Close stops at once: like Shutdown with an expired context, Handler calls in progress see a
// cancelled context and their events stay in the spool.
func (r *Receiver) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.Shutdown(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// slogPrintf adapts slog to fasthttp's Logger.
type slogPrintf struct{ l *slog.Logger }

func (s slogPrintf) Printf(format string, args ...any) {
	s.l.Debug("whatsapp: fasthttp: " + fmt.Sprintf(format, args...))
}
