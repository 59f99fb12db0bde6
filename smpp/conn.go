package smpp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// CloseReason says why a session ended; logs and metrics share it.
type CloseReason uint8

// Close reasons.
const (
	CloseNone            CloseReason = iota
	CloseLocal                       // Close called
	CloseUnbound                     // unbind completed, from either side
	ClosePeer                        // the peer closed the TCP connection
	CloseReadError                   // a read failed
	CloseWriteError                  // a write failed or timed out
	CloseBadLength                   // command_length out of range: the stream cannot be trusted
	CloseDeadPeer                    // nothing read and enquire_link unanswered
	CloseSlowPeer                    // the peer stopped reading our writes
	CloseBindFailed                  // the bind was refused or timed out
	CloseBindTimeout                 // no bind within the bind timeout (server)
	CloseShutdown                    // server or client shutdown
	CloseResponseTimeout             // ConnConfig.CloseAfterExpiries requests in a row got no response
)

var closeReasonNames = [...]string{"none", "local", "unbound", "peer_closed", "read_error", "write_error",
	"bad_command_length", "dead_peer", "slow_peer", "bind_failed", "bind_timeout", "shutdown", "response_timeout"}

func (r CloseReason) String() string {
	if int(r) < len(closeReasonNames) {
		return closeReasonNames[r]
	}
	return "close_reason(" + itoa(int(r)) + ")"
}

// Role is the side of the session this end plays.
type Role uint8

// Roles.
const (
	RoleESME Role = iota // we bind to an SMSC
	RoleSMSC             // an ESME binds to us
)

// State is a session's bind state.
type State uint32

// Session states.
const (
	StateOpen State = iota
	StateBoundTX
	StateBoundRX
	StateBoundTRX
	StateUnbinding
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateOpen:
		return "open"
	case StateBoundTX:
		return "bound_tx"
	case StateBoundRX:
		return "bound_rx"
	case StateBoundTRX:
		return "bound_trx"
	case StateUnbinding:
		return "unbinding"
	case StateClosed:
		return "closed"
	}
	return "state(" + itoa(int(s)) + ")"
}

func boundState(m BindMode) State {
	switch m {
	case BindTransmitter:
		return StateBoundTX
	case BindReceiver:
		return StateBoundRX
	}
	return StateBoundTRX
}

// Bound reports whether s is one of the bound states.
func (s State) Bound() bool { return s == StateBoundTX || s == StateBoundRX || s == StateBoundTRX }

// Handler serves requests a peer sends on a session. ServeSMPP runs on the
// session's read goroutine: it must answer quickly, or keep the *Request
// and answer later from another goroutine (Request.Respond may be called
// from any goroutine, exactly once). A handler that blocks stalls the
// session's reads, which is how back-pressure reaches a peer.
type Handler interface {
	ServeSMPP(r *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(r *Request)

// ServeSMPP calls f(r).
func (f HandlerFunc) ServeSMPP(r *Request) { f(r) }

// Request is a request PDU received on a session.
type Request struct {
	Header Header
	PDU    PDU
	Conn   *Conn

	answered atomic.Bool
	account  *atomic.Int64 // the account's in-flight count, on the server side
}

// Respond answers the request. A nil resp sends the empty response of the
// right type (for example submit_sm_resp with no message_id, as used with
// error statuses). Only the first call has an effect.
func (r *Request) Respond(status CommandStatus, resp PDU) error {
	if !r.answered.CompareAndSwap(false, true) {
		return errors.New("smpp: request answered twice")
	}
	r.release()
	if resp == nil {
		resp = Response(r.Header.ID)
		if resp == nil {
			return nil
		}
	}
	return r.Conn.enqueue(outFrame{status: status, seq: r.Header.Sequence, pdu: resp})
}

// WrittenFunc learns whether an answer reached the peer, as far as a sender
// can tell. written is true once the whole response was written to the
// socket and the session then stayed up for WrittenGrace, or ended in
// order (unbind, or closed by us); false when the session closed or a write
// failed before the response was written, or the peer closed the
// connection (or it failed) within WrittenGrace of the write: a peer that
// drops the link right after sending a request has not read the answer,
// although the socket accepted it.
type WrittenFunc func(written bool)

// WrittenGrace is how long a session must stay up after a response was
// written for RespondNotify to count it as received.
const WrittenGrace = time.Second

type settlingNote struct {
	at time.Time
	fn WrittenFunc
}

// RespondNotify is Respond that also reports, through written, whether the
// response reached the peer (see WrittenFunc). written is called exactly
// once: on one of the session's goroutines, or on the caller's when the
// response could not be queued (the session was closing, or the request
// was already answered: then false). It must not block; hand slow work to
// a goroutine.
func (r *Request) RespondNotify(status CommandStatus, resp PDU, written WrittenFunc) error {
	if !r.answered.CompareAndSwap(false, true) {
		written(false)
		return errors.New("smpp: request answered twice")
	}
	r.release()
	if resp == nil {
		resp = Response(r.Header.ID)
		if resp == nil {
			written(true) // no response exists: nothing to lose
			return nil
		}
	}
	err := r.Conn.enqueue(outFrame{status: status, seq: r.Header.Sequence, pdu: resp, written: written})
	if err != nil {
		written(false)
	}
	return err
}

// Nack answers the request with generic_nack and status instead of its
// own response type. Only the first answer has an effect.
func (r *Request) Nack(status CommandStatus) error {
	if !r.answered.CompareAndSwap(false, true) {
		return errors.New("smpp: request answered twice")
	}
	r.release()
	return r.Conn.enqueue(outFrame{status: status, seq: r.Header.Sequence, pdu: &GenericNack{}})
}

// Forget marks the request handled without answering it (the peer's
// request will time out), releasing its in-flight slot. Simulators use it
// to play a hung SMSC.
func (r *Request) Forget() {
	if r.answered.CompareAndSwap(false, true) {
		r.release()
	}
}

func (r *Request) release() {
	r.Conn.inflight.Add(-1)
	if r.account != nil {
		r.account.Add(-1)
	}
}

// ConnConfig holds a session's limits. Zero values take the defaults shown.
type ConnConfig struct {
	Window          int           // requests we may have outstanding (default 64)
	MaxInflight     int           // peer requests being handled before ESME_RTHROTTLED (default 256)
	RequestExpiry   time.Duration // response timeout for our requests (default 30s)
	EnquireLink     time.Duration // keepalive after this much read silence (default 30s; <0 disables)
	DeadPeerTimeout time.Duration // close if nothing read for this long (default 3 × EnquireLink)
	WriteTimeout    time.Duration // a write blocked this long closes the session as slow (default 10s)
	MaxPDUSize      int           // cap on command_length (default DefaultMaxPDUSize)
	Logger          *slog.Logger  // default slog.Default()

	// CloseAfterExpiries, if positive, closes the session with
	// CloseResponseTimeout once that many requests in a row expired
	// without a response (a peer that keeps the TCP connection and
	// enquire_link alive but stopped answering). 0 never closes.
	CloseAfterExpiries int

	// OnClose, if set, is called once when the session ends, on a
	// goroutine of its own, after the requests in flight were failed
	// (InFlightAtClose is complete by then).
	OnClose func(c *Conn, reason CloseReason, err error)
	// OnExpire, if set, is called for each of our requests that got no
	// response within RequestExpiry (its caller gets ErrTimeout), on the
	// session's timer goroutine; it must be fast.
	OnExpire func(c *Conn, p *Pending)
	// OnLateResponse, if set, is called for a response that matches no
	// request in flight: usually the answer to an expired request (a
	// submit_sm_resp carries the message id the SMSC assigned after all),
	// or a peer's mistake. It runs on the session's read goroutine and
	// must be fast; p may be nil for an undecodable response, and is not
	// reused after the call, so it may be kept.
	OnLateResponse func(c *Conn, h Header, p PDU)
	// OnPDU, if set, is called for every PDU read (dir "in") or written
	// (dir "out"), for metrics and tracing; it must be fast.
	OnPDU func(dir string, h Header)
}

func (cfg *ConnConfig) setDefaults() {
	if cfg.Window <= 0 {
		cfg.Window = 64
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 256
	}
	if cfg.RequestExpiry == 0 {
		cfg.RequestExpiry = 30 * time.Second
	}
	if cfg.EnquireLink == 0 {
		cfg.EnquireLink = 30 * time.Second
	}
	if cfg.DeadPeerTimeout == 0 && cfg.EnquireLink > 0 {
		cfg.DeadPeerTimeout = 3 * cfg.EnquireLink
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxPDUSize <= 0 {
		cfg.MaxPDUSize = DefaultMaxPDUSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
}

type outFrame struct {
	status CommandStatus
	seq    uint32
	pdu    PDU
	raw    []byte // a pre-encoded PDU, written as is
	close  bool   // close the connection once everything before it is written
	// written, if set, is told whether the frame was written (RespondNotify).
	written WrittenFunc
}

// outQueue holds what is to be written: PDUs are encoded by the goroutine
// that sends them, straight into one buffer, and the writer takes the whole
// buffer each round, so everything queued while it was writing goes out in
// the next single write.
type outQueue struct {
	mu         sync.Mutex
	buf        []byte        // guarded by mu
	closeAfter bool          // guarded by mu; a close was queued, nothing after it is
	waiting    int           // guarded by mu; producers waiting for room
	drained    chan struct{} // guarded by mu; closed when the writer takes buf while producers wait
	wake       chan struct{} // cap 1: buf went from empty to not, or a close was queued
	max        int           // bytes queued before producers wait
	// notes are the WrittenFuncs of the frames in buf, in order; guarded
	// by mu, taken by the writer with buf.
	notes []WrittenFunc
}

// Conn is one SMPP session over a net.Conn, with one read and one write
// goroutine. The writer coalesces queued PDUs into as few writes as it can.
type Conn struct {
	nc   net.Conn
	cfg  ConnConfig
	role Role
	log  *slog.Logger
	win  *Window

	handler Handler
	// bindHook, on the SMSC side, answers bind requests.
	bindHook func(r *Request)
	// badBindHook, on the SMSC side, is told of a bind request that could
	// not be decoded; it calls respond to answer it.
	badBindHook func(respond func())

	q        outQueue
	closing  chan struct{} // closed when the session starts to end
	done     chan struct{} // closed when all goroutines are gone
	seq      atomic.Uint32
	state    atomic.Uint32
	inflight atomic.Int32
	lastRead atomic.Int64 // unix nanos
	expired  atomic.Int32 // requests expired in a row (CloseAfterExpiries)

	// settling are the WrittenFuncs of responses written less than
	// WrittenGrace ago (RespondNotify); guarded by settleMu, a leaf.
	settleMu sync.Mutex
	settling []settlingNote

	closeOnce   sync.Once
	mu          sync.Mutex
	closeReason CloseReason // guarded by mu
	closeErr    error       // guarded by mu
	lost        []*Pending  // guarded by mu; in flight when the session ended
	unbindSent  bool        // guarded by mu

	systemID string   // guarded by mu; set at bind time
	mode     BindMode // guarded by mu; set at bind time
	data     any      // guarded by mu; the owner's (the server keeps the account here)

	wg sync.WaitGroup
}

// NewConn starts a session over nc. The caller binds (ESME) or waits for a
// bind (SMSC). h serves the peer's requests other than binds, unbind and
// enquire_link, which the session answers itself.
func NewConn(nc net.Conn, role Role, cfg ConnConfig, h Handler) *Conn {
	c := newConn(nc, role, cfg, h)
	c.start()
	return c
}

func newConn(nc net.Conn, role Role, cfg ConnConfig, h Handler) *Conn {
	cfg.setDefaults()
	c := &Conn{
		nc:      nc,
		cfg:     cfg,
		role:    role,
		log:     cfg.Logger.With("remote", nc.RemoteAddr().String()),
		win:     NewWindow(cfg.Window, cfg.RequestExpiry),
		handler: h,
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.q.wake = make(chan struct{}, 1)
	c.q.max = max(256<<10, (cfg.Window+cfg.MaxInflight+16)*256)
	// The window's hooks are set here, before any goroutine of the
	// session runs, and never changed.
	c.win.OnUnexpected = func(h Header, p PDU) {
		c.log.Debug("smpp: response without request", "cmd", h.ID.String(), "seq", h.Sequence)
		if c.cfg.OnLateResponse != nil {
			c.cfg.OnLateResponse(c, h, p)
		}
	}
	if cfg.OnExpire != nil {
		c.win.OnExpire = func(p *Pending) { c.cfg.OnExpire(c, p) }
	}
	c.lastRead.Store(time.Now().UnixNano())
	return c
}

func (c *Conn) start() {
	c.wg.Add(3)
	go c.readLoop()
	go c.writeLoop()
	go c.timerLoop()
	go func() { c.wg.Wait(); close(c.done) }()
}

// SystemID returns the system_id the session is bound with.
func (c *Conn) SystemID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.systemID
}

// Mode returns the bind mode, or 0 before the bind.
func (c *Conn) Mode() BindMode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mode
}

// Data returns the value the owner attached with SetData.
func (c *Conn) Data() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data
}

// SetData attaches a value for the owner.
func (c *Conn) SetData(v any) {
	c.mu.Lock()
	c.data = v
	c.mu.Unlock()
}

// setBound records the bind and moves the session from StateOpen to its
// bound state; it reports false (and changes nothing) in any other state.
func (c *Conn) setBound(systemID string, m BindMode, data any) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.state.CompareAndSwap(uint32(StateOpen), uint32(boundState(m))) {
		return false
	}
	c.systemID, c.mode, c.data = systemID, m, data
	return true
}

// Window returns the session's request window.
func (c *Conn) Window() *Window { return c.win }

// State returns the bind state.
func (c *Conn) State() State { return State(c.state.Load()) }

func (c *Conn) setState(s State) { c.state.Store(uint32(s)) }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Done is closed when the session has ended and its goroutines are gone.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Closing is closed as soon as the session starts to end.
func (c *Conn) Closing() <-chan struct{} { return c.closing }

// CloseReason returns why the session ended, and the error if any.
func (c *Conn) CloseReason() (CloseReason, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeReason, c.closeErr
}

// InFlightAtClose returns the requests that were in flight when the session
// ended, oldest first, once Done is closed. Each was also failed with an
// error wrapping ErrClosed: ErrNotWritten for those whose frame never
// reached the wire (Pending.Written false; safe to resubmit) and
// ErrUnknownOutcome for those written whole (the peer may have them).
func (c *Conn) InFlightAtClose() []*Pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// Inflight returns how many of the peer's requests are being handled.
func (c *Conn) Inflight() int { return int(c.inflight.Load()) }

// NextSequence returns a fresh sequence number in 1..0x7FFFFFFF.
func (c *Conn) NextSequence() uint32 {
	for {
		s := c.seq.Add(1) & 0x7FFFFFFF
		if s != 0 {
			return s
		}
	}
}

// Close ends the session at once, failing what is in flight with ErrClosed.
func (c *Conn) Close() error {
	c.closeWith(CloseLocal, nil)
	<-c.done
	return nil
}

// closeWith starts the end of the session: it records the reason, marks
// the session closed and closes the connection, which stops the reader and
// the writer. The writer, once it has stopped, fails what is in flight
// (finish): only then is it known which requests reached the wire.
func (c *Conn) closeWith(reason CloseReason, err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closeReason, c.closeErr = reason, err
		c.mu.Unlock()
		c.setState(StateClosed)
		close(c.closing)
		c.nc.Close()
	})
}

// finish runs on the writer goroutine once it has stopped for good (the
// session is closing): it refuses further frames, fails the requests in
// flight (ErrNotWritten for those in unsentTail or still queued,
// ErrUnknownOutcome for the others), logs and calls OnClose.
func (c *Conn) finish(unsentTail []byte) {
	q := &c.q
	q.mu.Lock()
	rest, notes := q.buf, q.notes
	q.buf, q.notes = nil, nil
	q.closeAfter = true // nothing is queued from now on
	q.mu.Unlock()
	tellWritten(notes, false)
	unsent := requestSeqs(nil, unsentTail)
	unsent = requestSeqs(unsent, rest)
	reason, err := c.CloseReason()
	c.settled(time.Time{}, reason)
	lost := c.win.drainClosed(reason, unsent)
	c.mu.Lock()
	c.lost = lost
	sys := c.systemID
	c.mu.Unlock()
	lvl := slog.LevelInfo
	if err != nil && reason != ClosePeer && reason != CloseUnbound {
		lvl = slog.LevelWarn
	}
	c.log.Log(context.Background(), lvl, "smpp: session closed", "reason", reason.String(), "system_id", sys, "err", err)
	if c.cfg.OnClose != nil {
		go c.cfg.OnClose(c, reason, err)
	}
}

// settle holds the WrittenFuncs of responses just written until they have
// WrittenGrace behind them (settled); when the write was the last before
// an orderly close, they are told at once.
func (c *Conn) settle(notes []WrittenFunc, closing bool) {
	if closing {
		tellWritten(notes, true)
		return
	}
	now := time.Now()
	c.settleMu.Lock()
	for _, fn := range notes {
		c.settling = append(c.settling, settlingNote{at: now, fn: fn})
	}
	c.settleMu.Unlock()
}

// settled tells the settling WrittenFuncs written at or before now minus
// WrittenGrace that their response was received; with a zero now (the
// session ended for reason), it tells all of them: received when we ended
// the session in order, not when the peer dropped it or it failed.
func (c *Conn) settled(now time.Time, reason CloseReason) {
	c.settleMu.Lock()
	var done []settlingNote
	if now.IsZero() {
		done, c.settling = c.settling, nil
	} else {
		n := 0
		for n < len(c.settling) && now.Sub(c.settling[n].at) >= WrittenGrace {
			n++
		}
		if n == 0 {
			c.settleMu.Unlock()
			return
		}
		done = append([]settlingNote(nil), c.settling[:n]...)
		c.settling = append(c.settling[:0], c.settling[n:]...)
	}
	c.settleMu.Unlock()
	ok := !now.IsZero()
	switch reason {
	case CloseLocal, CloseUnbound, CloseShutdown:
		ok = true // we closed it after the write: the peer gets the data before our FIN
	}
	for _, s := range done {
		s.fn(ok)
	}
}

// tellWritten calls each of fns with written.
func tellWritten(fns []WrittenFunc, written bool) {
	for _, fn := range fns {
		fn(written)
	}
}

// requestSeqs adds to m the sequence numbers of the request frames in b, a
// run of whole frames as queued for writing.
func requestSeqs(m map[uint32]struct{}, b []byte) map[uint32]struct{} {
	for off := 0; len(b)-off >= HeaderLen; {
		h, _ := ParseHeader(b[off:])
		if h.Length < HeaderLen || int(h.Length) > len(b)-off {
			break
		}
		if !h.ID.IsResponse() {
			if m == nil {
				m = make(map[uint32]struct{})
			}
			m[h.Sequence] = struct{}{}
		}
		off += int(h.Length)
	}
	return m
}

// unwritten returns the frames of buf that a write which wrote n octets did
// not write whole (a frame cut short never reached the peer as a PDU).
func unwritten(buf []byte, n int) []byte {
	for off := 0; len(buf)-off >= HeaderLen; {
		l := int(binary.BigEndian.Uint32(buf[off:]))
		if l < HeaderLen || off+l > n {
			return buf[off:]
		}
		off += l
	}
	return nil
}

// enqueue encodes a frame into the write queue and wakes the writer. It
// blocks while the queue holds more than its bound, up to the write
// timeout, then closes the session as slow.
func (c *Conn) enqueue(f outFrame) error {
	q := &c.q
	var t *time.Timer
	for {
		if c.State() == StateClosed {
			return ErrClosed
		}
		q.mu.Lock()
		if q.closeAfter {
			q.mu.Unlock()
			return ErrClosed
		}
		if len(q.buf) < q.max {
			break
		}
		if q.drained == nil {
			q.drained = make(chan struct{})
		}
		ch := q.drained
		q.waiting++
		q.mu.Unlock()
		if t == nil {
			t = time.NewTimer(c.cfg.WriteTimeout)
			defer t.Stop()
		}
		select {
		case <-ch:
		case <-c.closing:
		case <-t.C:
			c.closeWith(CloseSlowPeer, errors.New("smpp: write queue full"))
			return ErrClosed
		}
		q.mu.Lock()
		q.waiting--
		q.mu.Unlock()
	}
	// q.mu is held.
	wasEmpty := len(q.buf) == 0
	if f.close {
		q.closeAfter = true
	} else {
		q.buf = c.appendFrame(q.buf, f)
		if f.written != nil {
			q.notes = append(q.notes, f.written)
		}
	}
	q.mu.Unlock()
	if wasEmpty || f.close {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// SendAsync sends a request and calls done with its result exactly once
// (also on errors after the request was accepted). It waits for a window
// slot until ctx ends. An error return means done will not be called and
// the request was not written (the error wraps ErrNotWritten, or is the
// context's). When the connection closes with the request in flight, done
// gets ErrNotWritten if it never reached the wire and ErrUnknownOutcome if
// it did; both wrap ErrClosed.
func (c *Conn) SendAsync(ctx context.Context, p PDU, done func(Result)) error {
	if s := c.State(); s == StateClosed || (s == StateUnbinding && p.CommandID() != UnbindID) {
		return errNotSent
	}
	if err := c.win.Acquire(ctx); err != nil {
		return err
	}
	seq := c.NextSequence()
	if err := c.win.Add(seq, p, time.Now(), done); err != nil {
		return err
	}
	if err := c.enqueue(outFrame{seq: seq, pdu: p}); err != nil {
		if c.win.Remove(seq) {
			return errNotSent
		}
		// The session closed in between and already failed the request
		// through done (conservatively as ErrUnknownOutcome).
	}
	return nil
}

// Send sends a request and waits for its response. A non-zero
// command_status is returned as *StatusError along with the response.
func (c *Conn) Send(ctx context.Context, p PDU) (Header, PDU, error) {
	ch := make(chan Result, 1)
	if err := c.SendAsync(ctx, p, func(r Result) { ch <- r }); err != nil {
		return Header{}, nil, err
	}
	select {
	case r := <-ch:
		return r.Header, r.Resp, r.Err
	case <-ctx.Done():
		// The window still owns the request; its result is dropped.
		return Header{}, nil, ctx.Err()
	}
}

// WriteRaw queues a pre-encoded PDU (header included) as is. It is meant
// for relays and tests; the caller owns sequence numbers and windows.
func (c *Conn) WriteRaw(b []byte) error { return c.enqueue(outFrame{raw: b}) }

// Unbind sends unbind, waits for unbind_resp (or ctx) and closes the session.
func (c *Conn) Unbind(ctx context.Context) error {
	c.mu.Lock()
	c.unbindSent = true
	c.mu.Unlock()
	c.setState(StateUnbinding)
	_, _, err := c.Send(ctx, &Unbind{})
	c.closeWith(CloseUnbound, nil)
	<-c.done
	return err
}

// Drain stops this end from starting new requests, waits until the
// requests in flight in both directions are answered (or ctx ends), then
// unbinds.
func (c *Conn) Drain(ctx context.Context) error {
	c.setState(StateUnbinding)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for c.win.Len() > 0 || c.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			c.closeWith(CloseShutdown, ctx.Err())
			<-c.done
			return ctx.Err()
		case <-c.closing:
			<-c.done
			return nil
		case <-t.C:
		}
	}
	uctx, cancel := context.WithTimeout(ctx, c.cfg.RequestExpiry)
	defer cancel()
	return c.Unbind(uctx)
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var hdr [HeaderLen]byte
	var frames uint64
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			c.readFailed(err)
			return
		}
		n := binary.BigEndian.Uint32(hdr[0:])
		if n < HeaderLen || n > uint32(c.cfg.MaxPDUSize) {
			h, _ := ParseHeader(hdr[:])
			c.closeWith(CloseBadLength, fmt.Errorf("%w: %d (max %d) in %s seq=%d", ErrCommandLength, n, c.cfg.MaxPDUSize, h.ID, h.Sequence))
			return
		}
		frame := make([]byte, n)
		copy(frame, hdr[:])
		if _, err := io.ReadFull(br, frame[HeaderLen:]); err != nil {
			c.readFailed(err)
			return
		}
		frames++
		if br.Buffered() < HeaderLen || frames%64 == 0 {
			// The last whole frame of what one read brought in (the next
			// read waits for the peer), or every 64th of a long burst:
			// frames that arrived together share one clock read.
			c.lastRead.Store(time.Now().UnixNano())
		}
		c.dispatch(frame)
	}
}

func (c *Conn) readFailed(err error) {
	select {
	case <-c.closing:
		c.closeWith(CloseLocal, nil)
		return
	default:
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		c.mu.Lock()
		unbound := c.unbindSent
		c.mu.Unlock()
		// After an unbind from either side the peer may hang up before our
		// writer gets to close: that is the orderly end, not a drop.
		if unbound || c.State() == StateUnbinding {
			c.closeWith(CloseUnbound, nil)
		} else {
			c.closeWith(ClosePeer, err)
		}
		return
	}
	c.closeWith(CloseReadError, err)
}

func (c *Conn) dispatch(frame []byte) {
	h, p, err := Decode(frame)
	if c.cfg.OnPDU != nil {
		c.cfg.OnPDU("in", h)
	}
	if h.ID.IsResponse() {
		if err != nil {
			// A response we cannot decode still completes its request.
			c.log.Debug("smpp: undecodable response", "cmd", h.ID.String(), "seq", h.Sequence, "err", err)
			if h.Status == StatusOK {
				h.Status = StatusOf(err)
			}
		}
		if h.ID == GenericNackID && h.Status == StatusOK {
			h.Status = StatusSysErr
		}
		if c.cfg.CloseAfterExpiries > 0 && c.expired.Load() != 0 {
			c.expired.Store(0)
		}
		if h.Status == StatusOK && c.role == RoleESME && isBindResp(h.ID) {
			c.boundBy(h)
		}
		c.win.Complete(h, p)
		return
	}
	if p == nil { // unknown command_id
		c.nack(h.Sequence, StatusInvCmdID)
		return
	}
	if st := c.allowed(h.ID); st != StatusOK {
		c.answer(h, st)
		return
	}
	if err != nil {
		st := StatusOf(err)
		c.log.Debug("smpp: malformed request", "cmd", h.ID.String(), "seq", h.Sequence, "err", err)
		respond := func() {
			if st == StatusInvCmdLen || st == StatusInvTLVStream {
				c.nack(h.Sequence, st)
			} else {
				c.answer(h, st)
			}
		}
		if c.badBindHook != nil && isBind(h.ID) {
			c.badBindHook(respond)
			return
		}
		respond()
		return
	}
	switch h.ID {
	case EnquireLinkID:
		c.enqueue(outFrame{seq: h.Sequence, pdu: &EnquireLinkResp{}})
		return
	case UnbindID:
		c.setState(StateUnbinding)
		c.enqueue(outFrame{seq: h.Sequence, pdu: &UnbindResp{}})
		c.enqueue(outFrame{close: true})
		return
	case AlertNotificationID, OutbindID:
		if c.handler != nil {
			r := &Request{Header: h, PDU: p, Conn: c}
			r.answered.Store(true) // no response exists
			c.serve(r)
		}
		return
	}
	if int(c.inflight.Load()) >= c.cfg.MaxInflight {
		c.answer(h, StatusThrottled)
		return
	}
	c.inflight.Add(1)
	r := &Request{Header: h, PDU: p, Conn: c}
	if isBind(h.ID) {
		if c.bindHook != nil {
			c.bindHook(r)
			return
		}
		r.Respond(StatusInvBndSts, nil)
		return
	}
	if c.handler == nil {
		r.Respond(StatusSysErr, nil)
		return
	}
	c.serve(r)
}

func isBind(id CommandID) bool {
	return id == BindTransmitterID || id == BindReceiverID || id == BindTransceiverID
}

func isBindResp(id CommandID) bool {
	return id == BindTransmitterRespID || id == BindReceiverRespID || id == BindTransceiverRespID
}

// boundBy makes an ESME session bound on the successful bind_resp h, on the
// read goroutine before the response completes the bind request and
// before any later frame is dispatched: an SMSC may send deliver_sm in the
// same write as its bind_resp.
func (c *Conn) boundBy(h Header) {
	req, ok := c.win.request(h.Sequence)
	b, isBindReq := req.(*Bind)
	if !ok || !isBindReq {
		return
	}
	c.setBound(string(b.SystemID), b.Mode, c.Data())
}

// serve calls the handler, turning a panic into ESME_RSYSERR.
func (c *Conn) serve(r *Request) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("smpp: handler panic", "cmd", r.Header.ID.String(), "panic", fmt.Sprint(v))
			r.Respond(StatusSysErr, nil)
		}
	}()
	c.handler.ServeSMPP(r)
}

// answer sends the empty response of h's type with status.
func (c *Conn) answer(h Header, st CommandStatus) {
	resp := Response(h.ID)
	if resp == nil {
		if h.ID == AlertNotificationID || h.ID == OutbindID {
			return // no response exists; drop
		}
		c.nack(h.Sequence, st)
		return
	}
	c.enqueue(outFrame{status: st, seq: h.Sequence, pdu: resp})
}

func (c *Conn) nack(seq uint32, st CommandStatus) {
	c.enqueue(outFrame{status: st, seq: seq, pdu: &GenericNack{}})
}

// allowed checks a request against the bind state (SMPP 3.4 §2.3). While
// this end drains before its unbind (StateUnbinding), the operations its
// bind allowed are refused with ESME_RX_T_APPN, temporary, so the peer
// retries them elsewhere or later, and the peer's own unbind is accepted.
func (c *Conn) allowed(id CommandID) CommandStatus {
	s := c.State()
	if id == EnquireLinkID {
		return StatusOK
	}
	if s == StateUnbinding {
		return c.allowedUnbinding(id)
	}
	if c.role == RoleSMSC {
		switch id {
		case BindTransmitterID, BindReceiverID, BindTransceiverID:
			if s == StateOpen {
				return StatusOK
			}
			return StatusAlyBnd
		case UnbindID:
			if s.Bound() {
				return StatusOK
			}
		case SubmitSMID, SubmitMultiID, DataSMID, QuerySMID, CancelSMID, ReplaceSMID:
			if s == StateBoundTX || s == StateBoundTRX {
				return StatusOK
			}
		}
		return StatusInvBndSts
	}
	switch id {
	case OutbindID:
		if s == StateOpen {
			return StatusOK
		}
	case UnbindID:
		if s.Bound() {
			return StatusOK
		}
	case DeliverSMID, DataSMID, AlertNotificationID:
		if s == StateBoundRX || s == StateBoundTRX {
			return StatusOK
		}
	}
	return StatusInvBndSts
}

func (c *Conn) allowedUnbinding(id CommandID) CommandStatus {
	m := c.Mode()
	switch {
	case id == UnbindID:
		return StatusOK
	case c.role == RoleSMSC && m.CanSubmit():
		switch id {
		case SubmitSMID, SubmitMultiID, DataSMID, QuerySMID, CancelSMID, ReplaceSMID:
			return StatusXTAppn
		}
	case c.role == RoleESME && m.CanReceive():
		switch id {
		case DeliverSMID, DataSMID:
			return StatusXTAppn
		}
	}
	return StatusInvBndSts
}

func (c *Conn) writeLoop() {
	defer c.wg.Done()
	var tail []byte // what a failed write did not write whole
	defer func() { c.finish(tail) }()
	q := &c.q
	spare := make([]byte, 0, 64<<10)
	for {
		select {
		case <-q.wake:
		case <-c.closing:
			return
		}
		q.mu.Lock()
		buf, closeAfter, notes := q.buf, q.closeAfter, q.notes
		q.buf, q.notes = spare[:0], nil
		if q.drained != nil && q.waiting > 0 {
			close(q.drained)
			q.drained = nil
		}
		q.mu.Unlock()
		if len(buf) > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
			if n, err := c.nc.Write(buf); err != nil {
				tail = unwritten(buf, n)
				tellWritten(notes, false)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					c.closeWith(CloseSlowPeer, err)
				} else {
					c.closeWith(CloseWriteError, err)
				}
				return
			}
		}
		if len(notes) > 0 {
			c.settle(notes, closeAfter)
		}
		if closeAfter {
			c.closeWith(CloseUnbound, nil)
			return
		}
		spare = buf[:0]
		if cap(spare) > 1<<20 {
			spare = make([]byte, 0, 64<<10)
		}
	}
}

// appendFrame encodes f (not a close) onto buf.
func (c *Conn) appendFrame(buf []byte, f outFrame) []byte {
	if f.raw != nil {
		if c.cfg.OnPDU != nil {
			h, _ := ParseHeader(f.raw)
			c.cfg.OnPDU("out", h)
		}
		return append(buf, f.raw...)
	}
	start := len(buf)
	nb, err := AppendPDU(buf, f.status, f.seq, f.pdu)
	if err != nil {
		c.log.Error("smpp: cannot encode PDU", "cmd", f.pdu.CommandID().String(), "err", err)
		if !f.pdu.CommandID().IsResponse() {
			// Fail the request like a refusal, off the sender's goroutine
			// (its done callback may take the sender's locks).
			go c.win.Complete(Header{ID: f.pdu.CommandID() | RespBit, Status: StatusOf(err), Sequence: f.seq}, nil)
		} else {
			// Answer anyway so the peer's window slot is freed.
			nb, _ = AppendPDU(buf, StatusSysErr, f.seq, &GenericNack{})
		}
	}
	if c.cfg.OnPDU != nil && len(nb) > start {
		h, _ := ParseHeader(nb[start:])
		c.cfg.OnPDU("out", h)
	}
	return nb
}
func (c *Conn) timerLoop() {
	defer c.wg.Done()
	tick := 250 * time.Millisecond
	if c.cfg.EnquireLink > 0 && c.cfg.EnquireLink < 4*tick {
		tick = c.cfg.EnquireLink / 4
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	var lastProbe time.Time
	for {
		select {
		case <-c.closing:
			return
		case now := <-t.C:
			c.settled(now, CloseNone)
			if n := c.win.Expire(now); n > 0 && c.cfg.CloseAfterExpiries > 0 {
				if run := c.expired.Add(int32(n)); int(run) >= c.cfg.CloseAfterExpiries {
					c.closeWith(CloseResponseTimeout, fmt.Errorf("smpp: %d requests in a row got no response", run))
					return
				}
			}
			if c.cfg.EnquireLink <= 0 {
				continue
			}
			silent := now.Sub(time.Unix(0, c.lastRead.Load()))
			if c.cfg.DeadPeerTimeout > 0 && silent > c.cfg.DeadPeerTimeout {
				c.closeWith(CloseDeadPeer, fmt.Errorf("smpp: nothing read for %s", silent.Round(time.Millisecond)))
				return
			}
			if silent >= c.cfg.EnquireLink && now.Sub(lastProbe) >= c.cfg.EnquireLink && c.State() != StateUnbinding {
				lastProbe = now
				if c.win.TryAcquire() {
					seq := c.NextSequence()
					if c.win.Add(seq, &EnquireLink{}, now, func(Result) {}) == nil {
						if c.enqueue(outFrame{seq: seq, pdu: &EnquireLink{}}) != nil {
							c.win.Remove(seq)
						}
					}
				}
			}
		}
	}
}
