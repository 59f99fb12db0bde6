package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Config is the API's configuration and its dependencies. A zero limit
// takes the default ParseConfig documents for http.*.
type Config struct {
	AdminToken string
	// Tenants are every tenant; Tokens the tenants by bearer token.
	Tenants []*Tenant
	Tokens  map[string]*Tenant

	MaxBodyBytes        int   // larger bodies get 413 body_too_large
	MaxImportBytes      int64 // bound of a streamed POST /v1/consent/import
	MaxImports          int   // imports at once, all tenants (default 4)
	MaxImportsPerTenant int   // imports at once per tenant (default 1)
	MaxConnections      int
	MaxConnsPerIP       int
	ReadTimeout         time.Duration
	AuthFailures        int           // 401s before an address is locked out (default 10)
	AuthLockout         time.Duration // first lock, doubling (default 1s)
	TrustedProxies      []string      // addresses or CIDRs whose X-Forwarded-For is believed
	Pprof               bool          // serve /debug/pprof on the admin token

	Core      Core
	Consents  Consents
	Store     Store
	Admin     Admin
	Simulator Simulator // nil: POST /v1/simulator/mo is 404
	Handlers  Handlers

	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics not registered
	Panics     prometheus.Counter    // counts recovered panics (nil: none counted)
}

// Server is the HTTP API server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	sec     *httpSec
	tenants map[string]*Tenant // by ID
	one     *Tenant            // the only tenant, if there is one
	idem    idemInflight
	srv     *fasthttp.Server

	// exportHook, if set, runs as an export starts writing (tests).
	exportHook atomic.Pointer[func()]
}

// New makes the server for cfg; Serve runs it.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, tenants: make(map[string]*Tenant, len(cfg.Tenants))}
	for _, t := range cfg.Tenants {
		s.tenants[t.ID] = t
	}
	if len(cfg.Tenants) == 1 {
		s.one = cfg.Tenants[0]
	}
	s.sec = newHTTPSec(cfg, cfg.Registerer)
	s.srv = s.newFastHTTP()
	return s
}

// FastHTTP is the underlying server, for Serve and Shutdown.
func (s *Server) FastHTTP() *fasthttp.Server { return s.srv }

// Serve serves the API on l until Shutdown; it returns nil once l is
// closed.
func (s *Server) Serve(l net.Listener) error {
	if err := s.srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and waits for the requests running, until ctx
// ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.ShutdownWithContext(ctx) }

// ImportsRunning is how many consent imports run for tenant.
func (s *Server) ImportsRunning(tenant string) int {
	s.sec.mu.Lock()
	defer s.sec.mu.Unlock()
	return s.sec.imports[tenant]
}

// SetExportHook makes fn run as each export starts writing, nil to stop
// (tests: a panic there must end the export, not the process).
func (s *Server) SetExportHook(fn func()) {
	if fn == nil {
		s.exportHook.Store(nil)
		return
	}
	s.exportHook.Store(&fn)
}

func (s *Server) newFastHTTP() *fasthttp.Server {
	return &fasthttp.Server{
		Handler:            s.serve,
		Name:               "optgate",
		MaxRequestBodySize: s.cfg.MaxBodyBytes,
		// ReadTimeout runs from the connection's accept to its first
		// request's headers and body (so a half-open connection is closed
		// after it), and from the first byte of each later request.
		ReadTimeout:   s.cfg.ReadTimeout,
		WriteTimeout:  5 * time.Minute, // exports stream
		IdleTimeout:   2 * time.Minute,
		Concurrency:   s.cfg.MaxConnections,
		MaxConnsPerIP: s.cfg.MaxConnsPerIP,
		Logger:        fasthttpLogger{s.log},
		// fasthttp's errors would otherwise quote the request's headers,
		// bearer token included, into the log.
		SecureErrorLogMessage: true,
		// Bodies above MaxRequestBodySize reach the handler as a stream:
		// readBody bounds them (413 body_too_large) and the import route
		// streams its CSV into the store.
		StreamRequestBody:            true,
		ExpectHandler:                s.expect,
		DisablePreParseMultipartForm: true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				WriteError(ctx, 413, "body_too_large", "", fmt.Sprintf("request body over %d bytes", s.cfg.MaxBodyBytes))
				return
			}
			WriteError(ctx, 400, "bad_request", "", "cannot parse the HTTP request")
		},
	}
}

type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}
