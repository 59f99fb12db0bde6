package smpp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// testServer starts a Server on 127.0.0.1:0 with one account "acct"/"secret"
// whose submits are answered with incrementing message ids.
func testServer(t testing.TB, mod func(s *Server)) (*Server, string) {
	t.Helper()
	var ids atomic.Uint64
	s := &Server{
		Authenticate: func(_ context.Context, b BindInfo) (*Account, CommandStatus) {
			if b.SystemID != "acct" {
				return nil, StatusInvSysID
			}
			if b.Password != "secret" {
				return &Account{ID: "acct"}, StatusInvPaswd // named: counts toward the account's lock
			}
			return &Account{ID: "acct"}, StatusOK
		},
		Handler: HandlerFunc(func(r *Request) {
			if r.Header.ID == SubmitSMID {
				r.Respond(StatusOK, &SubmitSMResp{MessageID: []byte(strconv.FormatUint(ids.Add(1), 10))})
				return
			}
			r.Respond(StatusOK, nil)
		}),
	}
	if mod != nil {
		mod(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err)
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return s, ln.Addr().String()
}

func testClient(t testing.TB, addr string, mod func(c *ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{Addr: addr, SystemID: "acct", Password: "secret", ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	c := NewClient(cfg)
	c.Start()
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	requireNoErr(t, c.WaitBound(ctx, max(cfg.Binds, 1)))
	return c
}

func TestClientServerSubmit(t *testing.T) {
	_, addr := testServer(t, nil)
	c := testClient(t, addr, func(c *ClientConfig) { c.Binds = 2 })
	ctx := context.Background()
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		id, err := c.Submit(ctx, &SubmitSM{SM{Dest: Address{1, 1, []byte("15145550100")}, ShortMessage: []byte("hi")}})
		requireNoErr(t, err)
		seen[id] = true
	}
	testutil.RequireEqual(t, len(seen), 10)
}

func TestBindErrors(t *testing.T) {
	_, addr := testServer(t, nil)
	cases := []struct {
		sys, pw string
		want    CommandStatus
	}{
		{"acct", "wrong", StatusInvPaswd},
		{"nobody", "secret", StatusInvSysID},
	}
	for _, tc := range cases {
		nc, err := net.Dial("tcp", addr)
		requireNoErr(t, err)
		cn := NewConn(nc, RoleESME, ConnConfig{}, nil)
		_, _, err = cn.Send(context.Background(), &Bind{Mode: BindTransceiver, SystemID: []byte(tc.sys), Password: []byte(tc.pw)})
		testutil.RequireEqual(t, StatusOf(err), tc.want)
		cn.Close()
	}
}

func TestSecondBindAndWrongState(t *testing.T) {
	_, addr := testServer(t, nil)
	nc, err := net.Dial("tcp", addr)
	requireNoErr(t, err)
	cn := NewConn(nc, RoleESME, ConnConfig{}, nil)
	defer cn.Close()
	ctx := context.Background()
	// submit before bind
	_, _, err = cn.Send(ctx, &SubmitSM{SM{Dest: Address{Addr: []byte("1")}}})
	testutil.RequireEqual(t, StatusOf(err), StatusInvBndSts)
	_, _, err = cn.Send(ctx, &Bind{Mode: BindReceiver, SystemID: []byte("acct"), Password: []byte("secret")})
	requireNoErr(t, err)
	// second bind
	_, _, err = cn.Send(ctx, &Bind{Mode: BindReceiver, SystemID: []byte("acct"), Password: []byte("secret")})
	testutil.RequireEqual(t, StatusOf(err), StatusAlyBnd)
	// receiver may not submit
	_, _, err = cn.Send(ctx, &SubmitSM{SM{Dest: Address{Addr: []byte("1")}}})
	testutil.RequireEqual(t, StatusOf(err), StatusInvBndSts)
	// enquire_link works in any state
	_, _, err = cn.Send(ctx, &EnquireLink{})
	requireNoErr(t, err)
}

// rawConn writes bytes and reads PDUs without any session logic.
type rawConn struct {
	t  testing.TB
	nc net.Conn
}

func dialRaw(t testing.TB, addr string) *rawConn {
	nc, err := net.Dial("tcp", addr)
	requireNoErr(t, err)
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	_, err := r.nc.Write(b)
	requireNoErr(r.t, err)
}

func (r *rawConn) send(status CommandStatus, seq uint32, p PDU) {
	r.t.Helper()
	b, err := AppendPDU(nil, status, seq, p)
	requireNoErr(r.t, err)
	r.write(b)
}

func (r *rawConn) read() (Header, PDU, error) {
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [16]byte
	if _, err := io.ReadFull(r.nc, hdr[:]); err != nil {
		return Header{}, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	b := make([]byte, n)
	copy(b, hdr[:])
	if _, err := io.ReadFull(r.nc, b[16:]); err != nil {
		return Header{}, nil, err
	}
	return Decode(b)
}

func (r *rawConn) bind() {
	r.send(0, 1, &Bind{Mode: BindTransceiver, SystemID: []byte("acct"), Password: []byte("secret"), InterfaceVersion: 0x34})
	h, _, err := r.read()
	requireNoErr(r.t, err)
	testutil.RequireEqual(r.t, h.Status, StatusOK)
}

func TestMalformedInputKeepsSession(t *testing.T) {
	_, addr := testServer(t, nil)
	r := dialRaw(t, addr)
	r.bind()
	// Unknown command id → generic_nack ESME_RINVCMDID.
	var unk [16]byte
	binary.BigEndian.PutUint32(unk[0:], 16)
	binary.BigEndian.PutUint32(unk[4:], 0x00000099)
	binary.BigEndian.PutUint32(unk[12:], 7)
	r.write(unk[:])
	h, _, err := r.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, h.ID, GenericNackID)
	testutil.RequireEqual(t, h.Status, StatusInvCmdID)
	testutil.RequireEqual(t, h.Sequence, uint32(7))
	// A submit_sm with a truncated body → generic_nack ESME_RINVCMDLEN.
	b := []byte{0, 0, 0, 20, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 8, 0, 1, 1, '1'}
	r.write(b)
	h, _, err = r.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, [2]any{h.ID, h.Status}, [2]any{GenericNackID, StatusInvCmdLen})
	// A source_addr over 21 octets → submit_sm_resp ESME_RINVSRCADR.
	long := make([]byte, 0, 64)
	long = append(long, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 1)
	for i := 0; i < 30; i++ {
		long = append(long, '9')
	}
	long = append(long, 0, 1, 1, '1', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(long, uint32(len(long)))
	r.write(long)
	h, _, err = r.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, [2]any{h.ID, h.Status}, [2]any{SubmitSMRespID, StatusInvSrcAdr})
	// Still bound: a good submit works.
	r.send(0, 10, &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}, ShortMessage: []byte("ok")}})
	h, p, err := r.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, [2]any{h.Status, h.Sequence}, [2]any{StatusOK, uint32(10)})
	testutil.RequireEqual(t, string(p.(*SubmitSMResp).MessageID), "1")
}

func TestBadCommandLengthCloses(t *testing.T) {
	for _, n := range []uint32{0, 15, 1 << 30} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			closed := make(chan CloseReason, 1)
			_, addr := testServer(t, func(s *Server) {
				s.Conn.OnClose = func(_ *Conn, r CloseReason, _ error) { closed <- r }
			})
			r := dialRaw(t, addr)
			r.bind()
			var b [16]byte
			binary.BigEndian.PutUint32(b[:], n)
			binary.BigEndian.PutUint32(b[4:], uint32(SubmitSMID))
			r.write(b[:])
			if _, _, err := r.read(); !errors.Is(err, io.EOF) {
				t.Fatalf("want EOF, got %v", err)
			}
			select {
			case reason := <-closed:
				testutil.RequireEqual(t, reason, CloseBadLength)
			case <-time.After(5 * time.Second):
				t.Fatal("no close")
			}
		})
	}
}

func TestUnbindFromPeer(t *testing.T) {
	_, addr := testServer(t, nil)
	r := dialRaw(t, addr)
	r.bind()
	r.send(0, 2, &Unbind{})
	h, _, err := r.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, h.ID, UnbindRespID)
	if _, _, err := r.read(); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF after unbind, got %v", err)
	}
}

func TestClientUnbindAndRebind(t *testing.T) {
	srv, addr := testServer(t, nil)
	c := testClient(t, addr, nil)
	old := c.Conns()[0]
	// Server drops every session; client rebinds.
	for _, cn := range srv.Sessions() {
		cn.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	testutil.CheckFor(t, 5*time.Second, func() error {
		if cs := c.Conns(); len(srv.Sessions()) == 1 && len(cs) == 1 && cs[0] != old {
			return nil
		}
		return errors.New("not rebound")
	})
	_, err := c.Submit(ctx, &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	requireNoErr(t, err)
	requireNoErr(t, c.Shutdown(ctx))
	testutil.CheckFor(t, 2*time.Second, func() error {
		if len(srv.Sessions()) == 0 {
			return nil
		}
		return errors.New("server still has sessions")
	})
}

func TestDeliverToReceiverAndHandlerStatus(t *testing.T) {
	srv, addr := testServer(t, nil)
	var got sync.Map
	c := testClient(t, addr, func(c *ClientConfig) {
		c.Mode = BindReceiver
		c.Handler = HandlerFunc(func(r *Request) {
			d := r.PDU.(*DeliverSM)
			got.Store(string(d.ShortMessage), true)
			if string(d.ShortMessage) == "fail" {
				r.Respond(StatusXTAppn, nil)
				return
			}
			go r.Respond(StatusOK, nil) // answering from another goroutine is allowed
		})
	})
	_ = c
	ctx := context.Background()
	_, _, err := srv.Deliver(ctx, "acct", &DeliverSM{SM{Source: Address{1, 1, []byte("1")}, ShortMessage: []byte("STOP")}})
	requireNoErr(t, err)
	_, _, err = srv.Deliver(ctx, "acct", &DeliverSM{SM{Source: Address{1, 1, []byte("1")}, ShortMessage: []byte("fail")}})
	testutil.RequireEqual(t, StatusOf(err), StatusXTAppn)
	_, ok := got.Load("STOP")
	testutil.RequireEqual(t, ok, true)
	_, _, err = srv.Deliver(ctx, "nobody", &DeliverSM{})
	testutil.RequireEqual(t, errors.Is(err, ErrNotBound), true)
}

func TestAccountThrottle(t *testing.T) {
	release := make(chan struct{})
	_, addr := testServer(t, func(s *Server) {
		s.Authenticate = func(context.Context, BindInfo) (*Account, CommandStatus) {
			return &Account{ID: "acct", Window: 2}, StatusOK
		}
		s.Handler = HandlerFunc(func(r *Request) {
			go func() { <-release; r.Respond(StatusOK, &SubmitSMResp{}) }()
		})
	})
	r := dialRaw(t, addr)
	r.bind()
	for i := uint32(1); i <= 3; i++ {
		r.send(0, 100+i, &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	}
	h, _, err := r.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, [2]any{h.Sequence, h.Status}, [2]any{uint32(103), StatusThrottled})
	close(release)
	for i := 0; i < 2; i++ {
		h, _, err = r.read()
		requireNoErr(t, err)
		testutil.RequireEqual(t, h.Status, StatusOK)
	}
}

func TestClientRetriesThrottled(t *testing.T) {
	var n atomic.Int32
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) {
			if n.Add(1) <= 2 {
				r.Respond(StatusThrottled, nil)
				return
			}
			r.Respond(StatusOK, &SubmitSMResp{MessageID: []byte("ok")})
		})
	})
	c := testClient(t, addr, func(c *ClientConfig) { c.ThrottlePause = 5 * time.Millisecond })
	id, err := c.Submit(context.Background(), &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	requireNoErr(t, err)
	testutil.RequireEqual(t, id, "ok")
	testutil.RequireEqual(t, n.Load(), int32(3))
}

func TestDeadPeerDetection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err)
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		io.Copy(io.Discard, nc) // reads, never answers
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	requireNoErr(t, err)
	cn := NewConn(nc, RoleESME, ConnConfig{EnquireLink: 40 * time.Millisecond, DeadPeerTimeout: 150 * time.Millisecond}, nil)
	select {
	case <-cn.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("dead peer not detected")
	}
	reason, _ := cn.CloseReason()
	testutil.RequireEqual(t, reason, CloseDeadPeer)
}

func TestFailedBindLimit(t *testing.T) {
	_, addr := testServer(t, func(s *Server) { s.MaxFailedBinds = 2 })
	for i := 0; i < 2; i++ {
		r := dialRaw(t, addr)
		r.send(0, 1, &Bind{Mode: BindTransceiver, SystemID: []byte("acct"), Password: []byte("bad")})
		h, _, err := r.read()
		requireNoErr(t, err)
		testutil.RequireEqual(t, h.Status, StatusInvPaswd)
	}
	// Now even a good bind from this address is cut off.
	r := dialRaw(t, addr)
	r.nc.Write(mustPDU(t, &Bind{Mode: BindTransceiver, SystemID: []byte("acct"), Password: []byte("secret")}))
	if _, _, err := r.read(); err == nil {
		t.Fatal("connection from a flooding address was served")
	}
}

// The failed-bind table forgets addresses whose window passed and never
// holds more than maxFailedHosts, however many addresses spray bad binds.
func TestFailedBindTableBounded(t *testing.T) {
	s := &Server{FailedBindWindow: 50 * time.Millisecond}
	ip := func(i int) net.Addr {
		return &net.TCPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: 40000}
	}
	for i := range 3000 {
		s.recordFailure(ip(i))
	}
	time.Sleep(60 * time.Millisecond)
	for i := 3000; i < 6000; i++ {
		s.recordFailure(ip(i))
	}
	if n := len(s.failed); n > 3000 {
		t.Fatalf("%d addresses tracked after the first 3000 expired", n)
	}
	if !s.refusedAfter(ip(5999), 1) {
		t.Fatal("a recent failure is not tracked")
	}

	s = &Server{FailedBindWindow: time.Hour}
	for i := range maxFailedHosts + 5000 {
		s.recordFailure(ip(i))
	}
	if n := len(s.failed); n > maxFailedHosts {
		t.Fatalf("%d addresses tracked, cap %d", n, maxFailedHosts)
	}
}

// refusedAfter reports whether a has at least n failures in its window.
func (s *Server) refusedAfter(a net.Addr, n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.failed[hostOf(a)]
	return f != nil && f.n >= n
}

// Past MaxConns open connections a new one is closed at once; once one
// closes, connections are served again.
func TestMaxConns(t *testing.T) {
	srv, addr := testServer(t, func(s *Server) { s.MaxConns = 3 })
	idle := []*rawConn{dialRaw(t, addr), dialRaw(t, addr), dialRaw(t, addr)}
	testutil.CheckFor(t, 2*time.Second, func() error {
		if n := len(srv.Sessions()); n != 3 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	extra := dialRaw(t, addr)
	extra.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.nc.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection past the cap was not closed: %v", err)
	}
	idle[0].nc.Close()
	testutil.CheckFor(t, 2*time.Second, func() error {
		if n := len(srv.Sessions()); n != 2 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	r := dialRaw(t, addr)
	r.bind() // served
}

func mustPDU(t testing.TB, p PDU) []byte {
	b, err := AppendPDU(nil, 0, 1, p)
	requireNoErr(t, err)
	return b
}

func TestMaxBindsPerAccount(t *testing.T) {
	_, addr := testServer(t, func(s *Server) { s.MaxBindsPerAccount = 1 })
	r1 := dialRaw(t, addr)
	r1.bind()
	r2 := dialRaw(t, addr)
	r2.send(0, 1, &Bind{Mode: BindTransceiver, SystemID: []byte("acct"), Password: []byte("secret")})
	h, _, err := r2.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, h.Status, StatusBindFail)
}

func TestShutdownDrains(t *testing.T) {
	srv, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) {
			go func() { time.Sleep(50 * time.Millisecond); r.Respond(StatusOK, &SubmitSMResp{}) }()
		})
	})
	c := testClient(t, addr, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Submit(context.Background(), &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
		errc <- err
	}()
	testutil.CheckFor(t, 2*time.Second, func() error {
		for _, s := range srv.Sessions() {
			if s.Inflight() > 0 {
				return nil
			}
		}
		return errors.New("not in flight yet")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	requireNoErr(t, <-errc) // the in-flight submit was answered before unbind
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err)
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

func TestWindowExpiryAndLateResponse(t *testing.T) {
	w := NewWindow(2, 10*time.Millisecond)
	var late atomic.Int32
	w.OnUnexpected = func(Header, PDU) { late.Add(1) }
	var expired atomic.Int32
	w.OnExpire = func(*Pending) { expired.Add(1) }
	ctx := context.Background()
	requireNoErr(t, w.Acquire(ctx))
	res := make(chan Result, 1)
	now := time.Now()
	requireNoErr(t, w.Add(1, &EnquireLink{}, now, func(r Result) { res <- r }))
	requireNoErr(t, w.Acquire(ctx))
	requireNoErr(t, w.Add(2, &EnquireLink{}, now.Add(time.Hour), func(Result) {}))
	// Full: Acquire waits on ctx.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	testutil.RequireEqual(t, errors.Is(w.Acquire(cctx), context.DeadlineExceeded), true)
	testutil.RequireEqual(t, w.Expire(now.Add(time.Second)), 1)
	testutil.RequireEqual(t, errors.Is((<-res).Err, ErrTimeout), true)
	testutil.RequireEqual(t, w.Complete(Header{Sequence: 1}, nil), false) // late
	testutil.RequireEqual(t, late.Load(), int32(1))
	testutil.RequireEqual(t, expired.Load(), int32(1))
	left := w.Drain(ErrClosed)
	testutil.RequireEqual(t, len(left), 1)
	testutil.RequireEqual(t, left[0].Seq, uint32(2))
	testutil.RequireEqual(t, w.Len(), 0)
	testutil.RequireEqual(t, errors.Is(w.Acquire(ctx), ErrClosed), true)
}

func TestInFlightAtClose(t *testing.T) {
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) { r.Forget() }) // never answers
	})
	c := testClient(t, addr, nil)
	cn := c.Conns()[0]
	errc := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, _, err := cn.Send(context.Background(), &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("1")}}})
			errc <- err
		}()
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if cn.Window().Len() == 2 {
			return nil
		}
		return errors.New("not in flight yet")
	})
	cn.Close()
	for i := 0; i < 2; i++ {
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("in-flight request: %v", err)
		}
	}
	lost := cn.InFlightAtClose()
	testutil.RequireEqual(t, len(lost), 2)
	testutil.RequireEqual(t, lost[0].Req.CommandID(), SubmitSMID)
}

// A peer that stops reading: the queue fills, then the session closes as a
// slow peer within the write timeout instead of growing or hanging.
func TestSlowPeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err)
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			held <- nc // accepted, never read
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	requireNoErr(t, err)
	c := NewConn(nc, RoleESME, ConnConfig{WriteTimeout: 300 * time.Millisecond, EnquireLink: time.Hour}, nil)
	defer c.Close()
	defer func() {
		select {
		case p := <-held:
			p.Close()
		default:
		}
	}()
	frame := mustPDU(t, &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}, ShortMessage: make([]byte, 250)}})
	start := time.Now()
	var werr error
	for i := 0; i < 1_000_000 && werr == nil && time.Since(start) < 20*time.Second; i++ {
		werr = c.WriteRaw(frame)
	}
	if !errors.Is(werr, ErrClosed) {
		t.Fatalf("writes to a peer that does not read: %v", werr)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
	if reason, _ := c.CloseReason(); reason != CloseSlowPeer {
		t.Fatalf("close reason %v", reason)
	}
	if n := len(c.q.buf); n > c.q.max+len(frame) {
		t.Fatalf("queue grew to %d bytes (bound %d)", n, c.q.max)
	}
}
