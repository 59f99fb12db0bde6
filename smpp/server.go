package smpp

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// BindInfo is what an ESME presented in its bind.
type BindInfo struct {
	SystemID   string
	Password   string
	SystemType string
	Mode       BindMode
	Remote     net.Addr
}

// Account is an upstream ESME account, as returned by Server.Authenticate.
// Its limits (Window, Rate, MaxBinds) apply across all of its binds only if
// Authenticate returns the same *Account for each of them: the in-flight
// count and the rate bucket live in the Account value, so an Authenticate
// that builds a fresh Account per bind gets per-bind limits instead.
// (MaxBinds is counted by ID and holds either way.)
type Account struct {
	ID       string  // stable name, used in logs and metrics
	Window   int     // requests in flight across its binds before ESME_RTHROTTLED (0: per-session limit only)
	Rate     float64 // requests a second across its binds before ESME_RTHROTTLED (0: unlimited)
	MaxBinds int     // concurrent binds (0: Server.MaxBindsPerAccount)
	Data     any     // for the owner

	inflight atomic.Int64
	limit    *limiter
	once     sync.Once
}

func (a *Account) init() {
	a.once.Do(func() { a.limit = newLimiter(a.Rate) })
}

// Inflight returns the account's requests being handled.
func (a *Account) Inflight() int { return int(a.inflight.Load()) }

// AccountOf returns the account a server-side session is bound to.
func AccountOf(c *Conn) *Account {
	a, _ := c.Data().(*Account)
	return a
}

// Server is the SMSC side: ESMEs bind to it and submit messages; it pushes
// deliver_sm to their receivers. The zero value is usable once
// Authenticate and Handler are set. Its lifecycle follows net/http.Server.
type Server struct {
	Addr string // listen address for ListenAndServe (default "127.0.0.1:2775")
	// Authenticate maps a bind to an account, or refuses it with a status
	// (ESME_RINVPASWD, ESME_RINVSYSID, ESME_RBINDFAIL...). Required. It
	// must return the same *Account for every bind of one account for the
	// account-wide Window and Rate limits to hold (see Account). For a
	// wrong password of an existing system_id it should return that
	// account together with the refusal: the failure then counts toward
	// the account's lock (AccountLockAfter). A refusal without an account
	// counts toward the remote address only.
	Authenticate func(ctx context.Context, b BindInfo) (*Account, CommandStatus)
	// Handler serves submit_sm, data_sm, query_sm, cancel_sm, replace_sm
	// and submit_multi from bound ESMEs.
	Handler Handler
	// Conn holds per-session limits.
	Conn ConnConfig
	// MaxBindsPerAccount caps concurrent binds per account (default 8).
	MaxBindsPerAccount int
	// MaxFailedBinds is how many refused or malformed binds one remote IP
	// may make in FailedBindWindow (default 5 per minute). Past it the
	// address is locked until the window ends: its new connections are
	// closed at once and binds on connections it already holds are refused
	// with ESME_RBINDFAIL before Authenticate runs, the right password
	// too. Sessions already bound stay up.
	MaxFailedBinds   int
	FailedBindWindow time.Duration
	// AccountLockAfter is how many failed binds in a row, from any
	// address, lock an account (default 10; negative: never). Only binds
	// Authenticate refuses while naming the account count (see
	// Authenticate). A locked account's binds are refused with
	// ESME_RBINDFAIL before Authenticate runs, the right password too;
	// its sessions already bound stay up. The first lock lasts
	// AccountLockMin (default 1m), each further one twice the last, up to
	// AccountLockMax (default 1h); the back-off is forgotten once the
	// account has had no failure for AccountLockMax past its last lock. A
	// successful bind resets the failures counted toward the next lock.
	AccountLockAfter int
	AccountLockMin   time.Duration
	AccountLockMax   time.Duration
	// BindTimeout closes a connection that has not bound in time (default 10s).
	BindTimeout time.Duration
	// MaxConns caps the connections open at once, bound or not (default
	// 4096; negative: no cap). Past it a new connection is closed at once,
	// so a flood of idle connections cannot exhaust memory or goroutines.
	MaxConns int
	// MaxConnsPerIP caps the connections one remote IP holds open, bound
	// or not (default 64, loopback included; negative: no cap). Past it a
	// new connection from that IP is closed at once, so one address cannot
	// take the MaxConns of everyone.
	MaxConnsPerIP int
	// OnGuard, if set, is told of each protective action (locks and
	// connections closed before a bind), for metrics. It must not block.
	OnGuard func(Guard)
	// TLSConfig, if set, makes ListenAndServe serve TLS.
	TLSConfig *tls.Config
	Logger    *slog.Logger
	// OnBind and OnUnbind, if set, are told when a session binds and ends.
	OnBind   func(c *Conn)
	OnUnbind func(c *Conn, reason CloseReason)

	mu          sync.Mutex
	listeners   map[net.Listener]struct{} // guarded by mu
	conns       map[*Conn]struct{}        // guarded by mu
	bound       map[string][]*Conn        // account id → bound sessions; guarded by mu
	failed      map[string]*failRecord    // remote IP → refused binds; guarded by mu
	accts       map[string]*acctRecord    // system_id → failed binds; guarded by mu
	ipConns     map[string]int            // remote IP → open connections; guarded by mu
	failSweepAt int                       // guarded by mu; table size that triggers a sweep
	failSwept   time.Time                 // guarded by mu; last sweep
	fullLogged  time.Time                 // guarded by mu
	closed      bool                      // guarded by mu
	rr          atomic.Uint64             // round robin for Deliver
	_           [0]func()                 // not comparable
}

type failRecord struct {
	n     int
	first time.Time
	told  bool // the lock was logged and counted
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// ListenAndServe listens on s.Addr and serves.
func (s *Server) ListenAndServe() error {
	addr := s.Addr
	if addr == "" {
		addr = "127.0.0.1:2775"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if s.TLSConfig != nil {
		ln = tls.NewListener(ln, s.TLSConfig)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Close or Shutdown, backing off on
// temporary accept errors. It always returns a non-nil error; after Close
// or Shutdown it is ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errors.ErrUnsupported) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if s.refused(nc.RemoteAddr()) {
			s.guard(GuardAddressLocked)
			nc.Close()
			continue
		}
		if g := s.full(nc.RemoteAddr()); g != 0 {
			s.guard(g)
			nc.Close()
			continue
		}
		s.startConn(nc)
	}
}

// full reports whether MaxConns connections are open (GuardMaxConns) or
// the remote IP holds MaxConnsPerIP (GuardIPConns), or 0; it logs the
// first refusal of each second.
func (s *Server) full(a net.Addr) Guard {
	limit := s.MaxConns
	if limit == 0 {
		limit = 4096
	}
	h := hostOf(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	var g Guard
	switch {
	case limit > 0 && len(s.conns) >= limit:
		g = GuardMaxConns
	case s.ipConnsFull(h):
		g = GuardIPConns
	default:
		return 0
	}
	if now := time.Now(); now.Sub(s.fullLogged) >= time.Second {
		s.fullLogged = now
		if g == GuardMaxConns {
			s.logger().Warn("smpp: connection limit reached, closing new connections", "max_conns", limit)
		} else {
			s.logger().Warn("smpp: per-address connection limit reached, closing its new connections", "remote", h, "max_conns_per_ip", s.perIPLimit())
		}
	}
	return g
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func (s *Server) failWindow() (int, time.Duration) {
	n, w := s.MaxFailedBinds, s.FailedBindWindow
	if n <= 0 {
		n = 5
	}
	if w <= 0 {
		w = time.Minute
	}
	return n, w
}

// refused reports whether a remote IP is over its failed-bind limit.
func (s *Server) refused(a net.Addr) bool {
	n, w := s.failWindow()
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.failed[hostOf(a)]
	if f == nil {
		return false
	}
	if time.Since(f.first) > w {
		delete(s.failed, hostOf(a))
		return false
	}
	return f.n >= n
}

func (s *Server) recordFailure(a net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordFailureLocked(hostOf(a), time.Now())
}

// recordFailureLocked counts a failed bind of host; s.mu is held.
func (s *Server) recordFailureLocked(h string, now time.Time) {
	_, w := s.failWindow()
	if s.failed == nil {
		s.failed = make(map[string]*failRecord)
	}
	f := s.failed[h]
	if f == nil && len(s.failed) >= s.failSweepAt {
		// Many addresses failed once and never came back: forget the
		// expired ones, so the table is bounded by the addresses failing
		// within one window and never exceeds maxFailedHosts. Sweeps are
		// amortised by doubling, and at the cap happen at most once per
		// eighth of a window.
		if len(s.failed) < maxFailedHosts || time.Since(s.failSwept) >= w/8 {
			for k, v := range s.failed {
				if time.Since(v.first) > w {
					delete(s.failed, k)
				}
			}
			s.failSwept = time.Now()
			s.failSweepAt = min(max(1024, 2*len(s.failed)), maxFailedHosts)
		}
		if len(s.failed) >= maxFailedHosts {
			return
		}
	}
	if f == nil || now.Sub(f.first) > w {
		f = &failRecord{first: now}
		s.failed[h] = f
	}
	f.n++
}

// newlyLocked reports, once per lock, whether the address is over its
// failed-bind limit.
func (s *Server) newlyLocked(a net.Addr) bool {
	n, w := s.failWindow()
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.failed[hostOf(a)]
	if f == nil || f.told || f.n < n || time.Since(f.first) > w {
		return false
	}
	f.told = true
	return true
}

// maxFailedHosts caps the failed-bind table: past it (a spray from that many
// addresses within one window) new addresses are not tracked.
const maxFailedHosts = 1 << 16

func (s *Server) startConn(nc net.Conn) {
	cfg := s.Conn
	if cfg.Logger == nil {
		cfg.Logger = s.logger()
	}
	userClose := cfg.OnClose
	cfg.OnClose = func(c *Conn, reason CloseReason, err error) {
		s.forget(c)
		if s.OnUnbind != nil && c.Mode() != 0 {
			s.OnUnbind(c, reason)
		}
		if userClose != nil {
			userClose(c, reason, err)
		}
	}
	c := newConn(nc, RoleSMSC, cfg, HandlerFunc(s.serveBound))
	c.bindHook = s.bind
	c.badBindHook = func(respond func()) {
		s.recordFailure(c.RemoteAddr())
		s.bindFailed(c, "malformed bind", "", respond)
	}
	// Registered before the session starts, so forget (on close) always
	// finds what it undoes.
	s.mu.Lock()
	if s.conns == nil {
		s.conns = make(map[*Conn]struct{})
		s.ipConns = make(map[string]int)
	}
	s.conns[c] = struct{}{}
	s.ipConns[hostOf(nc.RemoteAddr())]++
	closed := s.closed
	s.mu.Unlock()
	c.start()
	if closed {
		c.closeWith(CloseShutdown, nil)
		return
	}
	bt := s.BindTimeout
	if bt <= 0 {
		bt = 10 * time.Second
	}
	time.AfterFunc(bt, func() {
		if c.State() == StateOpen {
			s.guard(GuardBindTimeout) // the close is logged with its reason
			c.closeWith(CloseBindTimeout, errors.New("smpp: no bind in time"))
		}
	})
}

func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; ok {
		h := hostOf(c.RemoteAddr())
		if s.ipConns[h] <= 1 {
			delete(s.ipConns, h)
		} else {
			s.ipConns[h]--
		}
	}
	delete(s.conns, c)
	if a := AccountOf(c); a != nil {
		list := s.bound[a.ID]
		for i, x := range list {
			if x == c {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(s.bound, a.ID)
		} else {
			s.bound[a.ID] = list
		}
	}
}

// bind answers a bind request on the connection's read goroutine.
func (s *Server) bind(r *Request) {
	c := r.Conn
	b := r.PDU.(*Bind)
	resp := &BindResp{Mode: b.Mode, SystemID: []byte("optgate")}
	_ = resp.TLVs.SetUint8(TagSCInterfaceVersion, InterfaceVersion)
	info := BindInfo{SystemID: string(b.SystemID), Password: string(b.Password), SystemType: string(b.SystemType), Mode: b.Mode, Remote: c.RemoteAddr()}
	fail := func(st CommandStatus, why string) {
		s.logger().Warn("smpp: bind refused", "system_id", info.SystemID, "remote", c.RemoteAddr().String(), "status", st.String(), "why", why)
		s.bindFailed(c, why, info.SystemID, func() { r.Respond(st, &BindResp{Mode: b.Mode}) })
	}
	if s.Authenticate == nil {
		s.recordFailure(c.RemoteAddr())
		fail(StatusBindFail, "no authenticator configured")
		return
	}
	// The locks are checked here, on every bind, not only when a
	// connection is accepted: connections opened before a lock must not
	// keep guessing.
	if why := s.admit(c.RemoteAddr(), info.SystemID); why != "" {
		s.logger().Debug("smpp: bind refused", "system_id", info.SystemID, "remote", c.RemoteAddr().String(), "why", why)
		r.Respond(StatusBindFail, &BindResp{Mode: b.Mode})
		if why == whyIPLocked {
			c.enqueue(outFrame{close: true})
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	acct, st := s.Authenticate(ctx, info)
	cancel()
	ok := st == StatusOK && acct != nil
	if locked, d := s.settle(c.RemoteAddr(), info.SystemID, acct != nil, ok); locked {
		s.logger().Warn("smpp: account locked after failed binds", "account", acct.ID, "system_id", info.SystemID,
			"remote", c.RemoteAddr().String(), "for", d)
		s.guard(GuardAccountLocked)
	}
	if !ok {
		if st == StatusOK {
			st = StatusBindFail
		}
		fail(st, "authentication")
		return
	}
	acct.init()
	maxBinds := acct.MaxBinds
	if maxBinds <= 0 {
		maxBinds = s.MaxBindsPerAccount
	}
	if maxBinds <= 0 {
		maxBinds = 8
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		r.Respond(StatusBindFail, &BindResp{Mode: b.Mode})
		return
	}
	if len(s.bound[acct.ID]) >= maxBinds {
		s.mu.Unlock()
		s.logger().Warn("smpp: bind refused", "account", acct.ID, "why", "too many binds", "max", maxBinds)
		r.Respond(StatusBindFail, &BindResp{Mode: b.Mode})
		return
	}
	if s.bound == nil {
		s.bound = make(map[string][]*Conn)
	}
	if !c.setBound(info.SystemID, b.Mode, acct) {
		s.mu.Unlock() // the session is closing
		return
	}
	s.bound[acct.ID] = append(s.bound[acct.ID], c)
	s.mu.Unlock()
	r.Respond(StatusOK, resp)
	s.logger().Info("smpp: bound", "account", acct.ID, "system_id", info.SystemID, "mode", b.Mode.String(), "remote", c.RemoteAddr().String())
	if s.OnBind != nil {
		s.OnBind(c)
	}
}

// bindFailed answers a refused or malformed bind (respond), already
// counted against the remote address, and closes the connection after the
// answer once the address is over its limit. The failure is recorded
// before the answer goes out, so a peer that reads the refusal and
// reconnects is already counted. The first refusal past the limit logs
// the lock at warn and counts it.
func (s *Server) bindFailed(c *Conn, why, systemID string, respond func()) {
	respond()
	if s.refused(c.RemoteAddr()) {
		if s.newlyLocked(c.RemoteAddr()) {
			_, w := s.failWindow()
			s.logger().Warn("smpp: address locked after failed binds", "remote", hostOf(c.RemoteAddr()), "system_id", systemID, "why", why, "for", w)
			s.guard(GuardIPLocked)
		}
		c.enqueue(outFrame{close: true})
	}
}

// serveBound applies the account's limits, then calls s.Handler. The
// window slot is taken by one atomic increment (and given back on refusal),
// so concurrent binds of one account cannot overshoot its Window.
func (s *Server) serveBound(r *Request) {
	a := AccountOf(r.Conn)
	if a != nil {
		if n := a.inflight.Add(1); a.Window > 0 && n > int64(a.Window) {
			a.inflight.Add(-1)
			r.Respond(StatusThrottled, nil)
			return
		}
		if a.limit != nil && !a.limit.allow(time.Now()) {
			a.inflight.Add(-1)
			r.Respond(StatusThrottled, nil)
			return
		}
		r.account = &a.inflight
	}
	if s.Handler == nil {
		r.Respond(StatusSysErr, nil)
		return
	}
	s.Handler.ServeSMPP(r)
}

// Receivers returns the account's bound sessions that can take deliver_sm.
func (s *Server) Receivers(account string) []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Conn
	for _, c := range s.bound[account] {
		if c.Mode().CanReceive() && c.State().Bound() {
			out = append(out, c)
		}
	}
	return out
}

// DeliverAsync pushes p (deliver_sm or data_sm) to one of the account's
// receivers, spreading load round robin, and calls done with the result.
// It returns ErrNotBound when no receiver is bound.
func (s *Server) DeliverAsync(ctx context.Context, account string, p PDU, done func(Result)) error {
	rs := s.Receivers(account)
	if len(rs) == 0 {
		return ErrNotBound
	}
	n := int(s.rr.Add(1))
	// First a receiver with a free window slot, without waiting; then wait
	// on one, round robin, until ctx ends.
	var err error
	for i := range rs {
		if err = rs[(n+i)%len(rs)].SendAsync(cancelledCtx, p, done); err == nil {
			return nil
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return rs[n%len(rs)].SendAsync(ctx, p, done)
}

// cancelledCtx makes a window Acquire take a free slot or fail at once.
var cancelledCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// Deliver is DeliverAsync waiting for the response.
func (s *Server) Deliver(ctx context.Context, account string, p PDU) (Header, PDU, error) {
	ch := make(chan Result, 1)
	if err := s.DeliverAsync(ctx, account, p, func(r Result) { ch <- r }); err != nil {
		return Header{}, nil, err
	}
	select {
	case r := <-ch:
		return r.Header, r.Resp, r.Err
	case <-ctx.Done():
		return Header{}, nil, ctx.Err()
	}
}

// Sessions returns every open session.
func (s *Server) Sessions() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.listeners = nil
	s.mu.Unlock()
}

// Close closes the listeners and every session at once.
func (s *Server) Close() error {
	s.closeListeners()
	for _, c := range s.Sessions() {
		c.closeWith(CloseShutdown, nil)
		<-c.done
	}
	return nil
}

// Shutdown stops accepting, then drains every bound session (waits for
// requests in flight both ways), unbinds it and closes it. Sessions still
// open when ctx ends are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	var wg sync.WaitGroup
	for _, c := range s.Sessions() {
		wg.Add(1)
		go func(c *Conn) {
			defer wg.Done()
			if c.State().Bound() {
				c.Drain(ctx)
			}
			c.closeWith(CloseShutdown, nil)
			<-c.done
		}(c)
	}
	wg.Wait()
	return ctx.Err()
}
