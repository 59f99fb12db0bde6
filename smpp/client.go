package smpp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ClientConfig configures a Client: one or more binds to one SMSC.
type ClientConfig struct {
	Addr string // SMSC host:port
	// TLS, if set, wraps each session in TLS. When it names no ServerName
	// (and does not skip verification), the host of Addr is used, so a
	// config that sets only RootCAs verifies the SMSC's certificate.
	TLS          *tls.Config
	SystemID     string
	Password     string
	SystemType   string
	Mode         BindMode // default transceiver
	AddrTON      uint8
	AddrNPI      uint8
	AddressRange string

	Binds int        // sessions to keep bound (default 1); submits are spread over them
	Conn  ConnConfig // per-session window, expiry, keepalive
	Rate  float64    // per-bind submit cap in messages a second (0: unlimited)
	// Handler serves deliver_sm, data_sm and alert_notification from the
	// SMSC. Its Respond status decides the deliver_sm_resp: answer
	// ESME_RX_T_APPN when the message could not be stored so the SMSC
	// retries.
	Handler Handler

	BindTimeout   time.Duration // default 10s
	ReconnectMin  time.Duration // first back-off after a drop (default 500ms)
	ReconnectMax  time.Duration // back-off cap (default 30s); also how long a bind must stay up to reset the back-off
	ThrottlePause time.Duration // pause of a bind after ESME_RTHROTTLED (default 1s, doubling to 30s)
	MaxRetries    int           // retries of a submit refused with RTHROTTLED or RMSGQFUL (default 5)
	Logger        *slog.Logger

	// OnState, if set, is told when a bind goes up or down.
	OnState func(bind int, up bool)
	// Dial, if set, replaces net.Dialer (tests).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Client is the ESME side: it keeps Binds sessions bound to one SMSC,
// rebinding with capped exponential back-off and jitter, and spreads
// submits over the bound sessions within their windows and rate caps.
//
// A submit whose connection closes before its response is never sent
// again by the Client unless it provably never reached the wire
// (ErrNotWritten); otherwise the caller gets an error wrapping
// ErrUnknownOutcome (and ErrClosed) and decides.
type Client struct {
	cfg   ClientConfig
	tls   *tls.Config // cfg.TLS with ServerName filled in
	log   *slog.Logger
	slots []*bindSlot
	rr    atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	upMu sync.Mutex
	upCh chan struct{} // closed and replaced whenever a bind comes up; guarded by upMu
}

type bindSlot struct {
	i           int
	conn        atomic.Pointer[Conn]
	limit       *limiter
	pausedUntil atomic.Int64 // unix nanos
	throttleN   atomic.Int32 // consecutive throttles, for back-off
	failures    atomic.Int32 // consecutive failed or short-lived binds (the back-off step)
}

// NewClient returns a client; Start binds it.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Binds <= 0 {
		cfg.Binds = 1
	}
	if cfg.Mode == 0 {
		cfg.Mode = BindTransceiver
	}
	if cfg.BindTimeout <= 0 {
		cfg.BindTimeout = 10 * time.Second
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = 500 * time.Millisecond
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = 30 * time.Second
	}
	if cfg.ThrottlePause <= 0 {
		cfg.ThrottlePause = time.Second
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Client{cfg: cfg, tls: clientTLS(cfg.TLS, cfg.Addr), log: cfg.Logger.With("smsc_addr", cfg.Addr, "system_id", cfg.SystemID), upCh: make(chan struct{})}
	for i := 0; i < cfg.Binds; i++ {
		c.slots = append(c.slots, &bindSlot{i: i, limit: newLimiter(cfg.Rate)})
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Start launches the bind loops. It returns at once; use WaitBound to wait.
func (c *Client) Start() {
	for _, s := range c.slots {
		c.wg.Add(1)
		go c.run(s)
	}
}

// Bound returns how many sessions are bound.
func (c *Client) Bound() int {
	n := 0
	for _, s := range c.slots {
		if cn := s.conn.Load(); cn != nil && cn.State().Bound() {
			n++
		}
	}
	return n
}

// Conns returns the bound sessions.
func (c *Client) Conns() []*Conn {
	var out []*Conn
	for _, s := range c.slots {
		if cn := s.conn.Load(); cn != nil && cn.State().Bound() {
			out = append(out, cn)
		}
	}
	return out
}

// WaitBound waits until at least n sessions are bound or ctx ends.
func (c *Client) WaitBound(ctx context.Context, n int) error {
	for {
		c.upMu.Lock()
		ch := c.upCh
		c.upMu.Unlock()
		if c.Bound() >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Client) notifyUp() {
	c.upMu.Lock()
	close(c.upCh)
	c.upCh = make(chan struct{})
	c.upMu.Unlock()
}

// clientTLS returns cfg with ServerName set to the host of addr when cfg
// names none and verifies certificates (a clone: the caller's config is
// not changed); nil for no TLS.
func clientTLS(cfg *tls.Config, addr string) *tls.Config {
	if cfg == nil || cfg.ServerName != "" || cfg.InsecureSkipVerify {
		return cfg
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	cfg = cfg.Clone()
	cfg.ServerName = host
	return cfg
}

// reconnectDelay returns how long to wait before bind attempt number
// failures+1 after failures consecutive failed or short-lived binds: an
// exponential back-off from lo doubling to the cap hi, with equal jitter
// (half the step fixed, half uniformly random: the wait is in [b/2, b]),
// so binds that dropped together do not come back together, and no bind
// retries faster than lo/2. rnd(n) returns a uniform value in [0, n).
func reconnectDelay(lo, hi time.Duration, failures int, rnd func(n int64) int64) time.Duration {
	b := lo
	for i := 0; i < failures && b < hi; i++ {
		b *= 2
	}
	b = min(b, hi)
	return b/2 + time.Duration(rnd(int64(b/2)+1))
}

func (c *Client) run(s *bindSlot) {
	defer c.wg.Done()
	for c.ctx.Err() == nil {
		cn, err := c.dialBind(s)
		if err != nil {
			s.failures.Add(1)
			c.log.Warn("smpp: bind failed", "bind", s.i, "err", err)
		} else {
			up := time.Now()
			s.conn.Store(cn)
			s.throttleN.Store(0)
			c.log.Info("smpp: bound", "bind", s.i, "mode", c.cfg.Mode.String())
			if c.cfg.OnState != nil {
				c.cfg.OnState(s.i, true)
			}
			c.notifyUp()
			select {
			case <-cn.Done():
			case <-c.ctx.Done():
				<-cn.Done() // Close/Shutdown ends it
			}
			s.conn.Store(nil)
			if c.cfg.OnState != nil {
				c.cfg.OnState(s.i, false)
			}
			reason, cerr := cn.CloseReason()
			if c.ctx.Err() != nil {
				return
			}
			// Only a bind that stayed up resets the back-off: a link that
			// binds and drops at once keeps backing off.
			if time.Since(up) >= c.cfg.ReconnectMax {
				s.failures.Store(0)
			} else {
				s.failures.Add(1)
			}
			c.log.Warn("smpp: bind lost", "bind", s.i, "reason", reason.String(), "err", cerr)
		}
		d := reconnectDelay(c.cfg.ReconnectMin, c.cfg.ReconnectMax, int(s.failures.Load())-1, rand.Int64N)
		c.log.Debug("smpp: rebinding", "bind", s.i, "in", d)
		select {
		case <-time.After(d):
		case <-c.ctx.Done():
			return
		}
	}
}

func (c *Client) dialBind(s *bindSlot) (*Conn, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.BindTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if c.cfg.Dial != nil {
		nc, err = c.cfg.Dial(ctx, c.cfg.Addr)
	} else {
		d := net.Dialer{KeepAlive: 30 * time.Second}
		nc, err = d.DialContext(ctx, "tcp", c.cfg.Addr)
	}
	if err != nil {
		return nil, err
	}
	if c.tls != nil {
		tc := tls.Client(nc, c.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	cn := NewConn(nc, RoleESME, c.cfg.Conn, c.cfg.Handler)
	b := &Bind{Mode: c.cfg.Mode, SystemID: []byte(c.cfg.SystemID), Password: []byte(c.cfg.Password),
		SystemType: []byte(c.cfg.SystemType), InterfaceVersion: InterfaceVersion,
		AddrTON: c.cfg.AddrTON, AddrNPI: c.cfg.AddrNPI, AddressRange: []byte(c.cfg.AddressRange)}
	// The session becomes bound on its read goroutine as the bind_resp is
	// read (Conn.boundBy), before any frame the SMSC sent after it.
	_, _, err = cn.Send(ctx, b)
	if err == nil && !cn.State().Bound() {
		err = fmt.Errorf("%w: session ended as it bound", ErrClosed)
	}
	if err != nil {
		cn.closeWith(CloseBindFailed, err)
		<-cn.Done()
		return nil, err
	}
	return cn, nil
}

// pick returns a bound, unpaused session, round robin, preferring one with
// a free window slot; when every window is full it returns the first
// usable one (its caller waits there for a slot). The clock is read only
// when a session is paused.
func (c *Client) pick() *bindSlot {
	n := len(c.slots)
	start := int(c.rr.Add(1) % uint64(n))
	var full *bindSlot
	for i := 0; i < n; i++ {
		s := c.slots[(start+i)%n]
		cn := s.conn.Load()
		if cn == nil || !cn.State().Bound() || !cn.Mode().CanSubmit() {
			continue
		}
		if p := s.pausedUntil.Load(); p != 0 && time.Now().UnixNano() < p {
			continue
		}
		if cn.win.Len() < cn.win.Cap() {
			return s
		}
		if full == nil {
			full = s
		}
	}
	return full
}

// waitSlot waits until a bound, unpaused session is available.
func (c *Client) waitSlot(ctx context.Context) (*bindSlot, error) {
	for {
		if s := c.pick(); s != nil {
			return s, nil
		}
		if c.ctx.Err() != nil {
			return nil, ErrClientClosed
		}
		c.upMu.Lock()
		ch := c.upCh
		c.upMu.Unlock()
		select {
		case <-ch:
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotBound, ctx.Err())
		case <-c.ctx.Done():
			return nil, ErrClientClosed
		}
	}
}

func (c *Client) throttled(s *bindSlot) {
	n := s.throttleN.Add(1)
	d := c.cfg.ThrottlePause << min(n-1, 5)
	if d > 30*time.Second {
		d = 30 * time.Second
	}
	s.pausedUntil.Store(time.Now().Add(d).UnixNano())
	c.log.Debug("smpp: throttled, pausing bind", "bind", s.i, "pause", d)
}

// Send sends any request on a bound session and waits for the response,
// retrying on ESME_RTHROTTLED (pausing that bind) and ESME_RMSGQFUL (with
// back-off), and on another bind when the request never reached the wire
// (ErrNotWritten). Other non-zero statuses come back as *StatusError; a
// request written on a connection that closed before its response comes
// back as an error wrapping ErrUnknownOutcome and ErrClosed, never resent.
func (c *Client) Send(ctx context.Context, p PDU) (Header, PDU, error) {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		s, err := c.waitSlot(ctx)
		if err != nil {
			return Header{}, nil, err
		}
		if err := s.limit.wait(ctx); err != nil {
			return Header{}, nil, err
		}
		cn := s.conn.Load()
		if cn == nil {
			continue
		}
		h, resp, err := cn.Send(ctx, p)
		if err == nil {
			s.throttleN.Store(0)
			return h, resp, nil
		}
		if retryable(err) && ctx.Err() == nil && attempt < c.cfg.MaxRetries {
			// It never reached the wire (the bind was going away).
			continue
		}
		st := StatusOf(err)
		if attempt >= c.cfg.MaxRetries || (st != StatusThrottled && st != StatusMsgQFul) {
			return h, resp, err
		}
		if st == StatusThrottled {
			c.throttled(s)
			continue
		}
		select {
		case <-time.After(backoff + rand.N(backoff)):
		case <-ctx.Done():
			return h, resp, err
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// retryable reports whether a request may be sent again on another bind:
// only when it provably never reached the wire.
func retryable(err error) bool {
	return errors.Is(err, ErrNotWritten) && !errors.Is(err, ErrUnknownOutcome)
}

// Submit sends a submit_sm and returns the SMSC's message id, or a
// *StatusError with the refusal.
func (c *Client) Submit(ctx context.Context, sm *SubmitSM) (string, error) {
	_, resp, err := c.Send(ctx, sm)
	if err != nil {
		return "", err
	}
	r, ok := resp.(*SubmitSMResp)
	if !ok {
		return "", &StatusError{Status: StatusSysErr, Op: "submit_sm", Reason: "unexpected response " + fmt.Sprint(resp)}
	}
	return string(r.MessageID), nil
}

// SubmitAsync sends a submit_sm without waiting; done gets the message id
// or the error, with Submit's retry rules (throttling, queue full, never
// written; never a written submit whose connection dropped). Retries
// happen on a goroutine of their own. The fast path (a bound session with
// a free window slot) costs no goroutine.
//
// The window's request expiry bounds a submit on the fast path; the slow
// path (no bound session yet, rate cap, retries) runs under ctx, bounded by
// twice the expiry when ctx has no deadline.
func (c *Client) SubmitAsync(ctx context.Context, sm *SubmitSM, done func(id string, err error)) {
	s := c.pick()
	if s == nil || s.limit != nil {
		go c.submitSlow(ctx, sm, done)
		return
	}
	cn := s.conn.Load()
	if cn == nil {
		go c.submitSlow(ctx, sm, done)
		return
	}
	err := cn.SendAsync(ctx, sm, func(r Result) {
		if r.Err != nil {
			if retryable(r.Err) && ctx.Err() == nil {
				go c.submitSlow(ctx, sm, done)
				return
			}
			if st := StatusOf(r.Err); st == StatusThrottled || st == StatusMsgQFul {
				if st == StatusThrottled {
					c.throttled(s)
				}
				go c.submitSlow(ctx, sm, done)
				return
			}
			done("", r.Err)
			return
		}
		resp, _ := r.Resp.(*SubmitSMResp)
		if resp == nil {
			done("", &StatusError{Status: StatusSysErr, Op: "submit_sm", Reason: "unexpected response"})
			return
		}
		done(string(resp.MessageID), nil)
	})
	if err != nil {
		// Not queued (never written): Submit's path retries or reports it.
		go c.submitSlow(ctx, sm, done)
	}
}

// submitSlow is SubmitAsync's path through Submit (waiting for a bind, the
// rate cap, retries), bounded by twice the request expiry when ctx has no
// deadline.
func (c *Client) submitSlow(ctx context.Context, sm *SubmitSM, done func(id string, err error)) {
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		exp := c.cfg.Conn.RequestExpiry
		if exp <= 0 {
			exp = 30 * time.Second
		}
		sctx, cancel = context.WithTimeout(ctx, 2*exp)
	}
	id, err := c.Submit(sctx, sm)
	cancel()
	done(id, err)
}

// Close closes every session at once and stops rebinding.
func (c *Client) Close() error {
	c.cancel()
	for _, s := range c.slots {
		if cn := s.conn.Load(); cn != nil {
			cn.closeWith(CloseShutdown, nil)
		}
	}
	c.wg.Wait()
	return nil
}

// Shutdown drains and unbinds every session, then stops.
func (c *Client) Shutdown(ctx context.Context) error {
	c.cancel() // stop rebinding first, so the unbinds are not taken for drops
	var wg sync.WaitGroup
	for _, s := range c.slots {
		if cn := s.conn.Load(); cn != nil {
			wg.Add(1)
			go func() { defer wg.Done(); cn.Drain(ctx) }()
		}
	}
	wg.Wait()
	return c.Close()
}
