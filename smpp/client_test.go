package smpp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// readPDU reads one PDU from nc, waiting at most 5 s.
func readPDU(nc net.Conn) (Header, PDU, error) {
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return Header{}, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < HeaderLen || n > 1<<16 {
		return Header{}, nil, fmt.Errorf("command_length %d", n)
	}
	b := make([]byte, n)
	copy(b, hdr[:])
	if _, err := io.ReadFull(nc, b[HeaderLen:]); err != nil {
		return Header{}, nil, err
	}
	return Decode(b)
}

// fakeSMSC accepts connections on 127.0.0.1 and runs script on each, one
// at a time, until the test ends. It is a raw peer: no session logic.
func fakeSMSC(t *testing.T, script func(nc net.Conn)) string {
	t.Helper()
	ln := listenLocal(t)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			script(nc)
			nc.Close()
		}
	}()
	return ln.Addr().String()
}

// answerBind reads a bind from nc and accepts it.
func answerBind(nc net.Conn) error {
	h, p, err := readPDU(nc)
	if err != nil {
		return err
	}
	b, ok := p.(*Bind)
	if !ok {
		return fmt.Errorf("want a bind, got %s", h.ID)
	}
	out, _ := AppendPDU(nil, StatusOK, h.Sequence, &BindResp{Mode: b.Mode, SystemID: []byte("fake")})
	_, err = nc.Write(out)
	return err
}

// An SMSC may send a deliver_sm in the same TCP write as its bind_resp: the
// session is bound by the time that frame is dispatched, so the handler
// gets it and the SMSC gets deliver_sm_resp ESME_ROK (not RINVBNDSTS).
func TestBindRespAndDeliverInOneWrite(t *testing.T) {
	results := make(chan CommandStatus, 1)
	addr := fakeSMSC(t, func(nc net.Conn) {
		h, p, err := readPDU(nc)
		if err != nil {
			return
		}
		out, _ := AppendPDU(nil, StatusOK, h.Sequence, &BindResp{Mode: p.(*Bind).Mode, SystemID: []byte("fake")})
		out, _ = AppendPDU(out, StatusOK, 77, &DeliverSM{SM{Source: Address{1, 1, []byte("15145550100")}, ShortMessage: []byte("MO")}})
		nc.Write(out) // one write: both frames arrive in one read
		for i := 0; i < 10; i++ {
			h, _, err := readPDU(nc)
			if err != nil {
				results <- 0xFFFFFFFF
				return
			}
			if h.ID == DeliverSMRespID && h.Sequence == 77 {
				results <- h.Status
				return
			}
		}
	})
	for i := 0; i < 50; i++ {
		got := make(chan string, 1)
		c := NewClient(ClientConfig{Addr: addr, SystemID: "acct", Password: "x", ReconnectMin: time.Hour,
			Handler: HandlerFunc(func(r *Request) {
				got <- string(r.PDU.(*DeliverSM).ShortMessage)
				r.Respond(StatusOK, nil)
			})})
		c.Start()
		select {
		case st := <-results:
			if st != StatusOK {
				c.Close()
				t.Fatalf("round %d: deliver_sm_resp %s", i, st)
			}
		case <-time.After(5 * time.Second):
			c.Close()
			t.Fatalf("round %d: no deliver_sm_resp", i)
		}
		testutil.RequireEqual(t, <-got, "MO")
		c.Close()
	}
}

// submitCounter is a fake SMSC that binds, then reads PDUs and hangs up on
// the first submit_sm, counting the submits it read on every connection.
func submitDropper(t *testing.T) (addr string, submits *atomic.Int32) {
	submits = new(atomic.Int32)
	addr = fakeSMSC(t, func(nc net.Conn) {
		if answerBind(nc) != nil {
			return
		}
		for {
			h, _, err := readPDU(nc)
			if err != nil {
				return
			}
			if h.ID == SubmitSMID {
				submits.Add(1)
				return // closes without answering
			}
		}
	})
	return addr, submits
}

// A submit written on a connection that drops before its response is never
// resent: exactly one copy reaches the SMSC and the caller is told the
// outcome is unknown, through Submit and SubmitAsync alike.
func TestSubmitWrittenThenDroppedNotResent(t *testing.T) {
	sm := &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("15145550100")}, ShortMessage: []byte("once")}}
	t.Run("Submit", func(t *testing.T) {
		addr, submits := submitDropper(t)
		c := testClient(t, addr, func(c *ClientConfig) { c.Password = "x" })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Submit(ctx, sm)
		if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, ErrClosed) || errors.Is(err, ErrNotWritten) {
			t.Fatalf("Submit: %v", err)
		}
		testutil.RequireEqual(t, submits.Load(), int32(1))
	})
	t.Run("SubmitAsync", func(t *testing.T) {
		addr, submits := submitDropper(t)
		c := testClient(t, addr, func(c *ClientConfig) { c.Password = "x" })
		errc := make(chan error, 2)
		c.SubmitAsync(context.Background(), sm, func(_ string, err error) { errc <- err })
		var err error
		select {
		case err = <-errc:
		case <-time.After(5 * time.Second):
			t.Fatal("no result")
		}
		if !errors.Is(err, ErrUnknownOutcome) {
			t.Fatalf("SubmitAsync: %v", err)
		}
		testutil.RequireEqual(t, submits.Load(), int32(1))
		select {
		case err := <-errc:
			t.Fatalf("done called twice: %v", err)
		default:
		}
	})
}

// writeFailConn fails every Write after the first allow ones (or writes
// only part of one), like a connection that broke under a write.
type writeFailConn struct {
	net.Conn
	allow   atomic.Int32 // writes that go through
	partial int          // octets written by the first failing write
}

func (c *writeFailConn) Write(p []byte) (int, error) {
	if c.allow.Add(-1) >= 0 {
		return c.Conn.Write(p)
	}
	n := min(c.partial, len(p))
	if n > 0 {
		c.Conn.Write(p[:n])
	}
	c.Conn.Close()
	return n, errors.New("write failed")
}

// A request whose frame did not reach the wire whole fails with
// ErrNotWritten and is listed as not written; one written whole before the
// connection closed fails with ErrUnknownOutcome.
func TestConnClosedWrittenOrNot(t *testing.T) {
	ln := listenLocal(t)
	defer ln.Close()
	peers := make(chan net.Conn, 4)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			peers <- nc
		}
	}()
	sm := &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("1")}, ShortMessage: []byte("x")}}
	for _, partial := range []int{0, 10} {
		nc, err := net.Dial("tcp", ln.Addr().String())
		requireNoErr(t, err)
		peer := <-peers
		fc := &writeFailConn{Conn: nc, partial: partial}
		cn := NewConn(fc, RoleESME, ConnConfig{EnquireLink: -1}, nil)
		_, _, err = cn.Send(context.Background(), sm)
		if !errors.Is(err, ErrNotWritten) || errors.Is(err, ErrUnknownOutcome) {
			t.Fatalf("partial %d: %v", partial, err)
		}
		<-cn.Done()
		lost := cn.InFlightAtClose()
		testutil.RequireEqual(t, [2]any{len(lost), lost[0].Written}, [2]any{1, false})
		peer.Close()
	}
	// Written whole, then the peer hangs up.
	nc, err := net.Dial("tcp", ln.Addr().String())
	requireNoErr(t, err)
	peer := <-peers
	cn := NewConn(nc, RoleESME, ConnConfig{EnquireLink: -1}, nil)
	errc := make(chan error, 1)
	go func() { _, _, err := cn.Send(context.Background(), sm); errc <- err }()
	_, _, err = readPDU(peer)
	requireNoErr(t, err)
	peer.Close()
	if err := <-errc; !errors.Is(err, ErrUnknownOutcome) || errors.Is(err, ErrNotWritten) {
		t.Fatalf("written: %v", err)
	}
	<-cn.Done()
	testutil.RequireEqual(t, cn.InFlightAtClose()[0].Written, true)
}

// A submit that never reached the wire is sent again on the next bind:
// the SMSC gets exactly one copy and the caller its message id.
func TestSubmitNotWrittenIsRetried(t *testing.T) {
	var submits atomic.Int32
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) {
			submits.Add(1)
			r.Respond(StatusOK, &SubmitSMResp{MessageID: []byte("retried")})
		})
	})
	var dials atomic.Int32
	c := testClient(t, addr, func(c *ClientConfig) {
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			nc, err := d.DialContext(ctx, "tcp", addr)
			if err != nil || dials.Add(1) > 1 {
				return nc, err
			}
			fc := &writeFailConn{Conn: nc}
			fc.allow.Store(1) // the bind goes through; the submit's write fails
			return fc, nil
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := c.Submit(ctx, &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("1")}}})
	requireNoErr(t, err)
	testutil.RequireEqual(t, id, "retried")
	testutil.RequireEqual(t, submits.Load(), int32(1))
	testutil.RequireEqual(t, dials.Load() >= 2, true)
}

// A submit_sm_resp that arrives after its request expired reaches
// OnLateResponse with its message id; the expiry reached OnExpire first.
func TestLateResponseHook(t *testing.T) {
	expired := make(chan uint32, 1)
	late := make(chan string, 1)
	addr := fakeSMSC(t, func(nc net.Conn) {
		if answerBind(nc) != nil {
			return
		}
		for {
			h, _, err := readPDU(nc)
			if err != nil {
				return
			}
			if h.ID != SubmitSMID {
				continue
			}
			select {
			case seq := <-expired:
				testutil.RequireEqual(t, seq, h.Sequence)
			case <-time.After(5 * time.Second):
				return
			}
			out, _ := AppendPDU(nil, StatusOK, h.Sequence, &SubmitSMResp{MessageID: []byte("late-7")})
			nc.Write(out)
			readPDU(nc) // until the client hangs up
			return
		}
	})
	c := testClient(t, addr, func(c *ClientConfig) {
		c.Conn.RequestExpiry = 50 * time.Millisecond
		c.Conn.EnquireLink = time.Hour
		c.Conn.OnExpire = func(_ *Conn, p *Pending) { expired <- p.Seq }
		c.Conn.OnLateResponse = func(_ *Conn, h Header, p PDU) {
			if r, ok := p.(*SubmitSMResp); ok && h.ID == SubmitSMRespID {
				late <- string(r.MessageID)
			}
		}
	})
	_, err := c.Submit(context.Background(), &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("1")}}})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Submit: %v", err)
	}
	select {
	case id := <-late:
		testutil.RequireEqual(t, id, "late-7")
	case <-time.After(5 * time.Second):
		t.Fatal("late response not reported")
	}
}

// CloseAfterExpiries closes a session whose peer stopped answering.
func TestCloseAfterExpiries(t *testing.T) {
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) { r.Forget() })
	})
	c := testClient(t, addr, func(c *ClientConfig) {
		c.Conn.RequestExpiry = 30 * time.Millisecond
		c.Conn.CloseAfterExpiries = 2
		c.ReconnectMin = time.Hour
	})
	cn := c.Conns()[0]
	for i := 0; i < 2; i++ {
		go cn.Send(context.Background(), &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("1")}}})
	}
	select {
	case <-cn.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session not closed")
	}
	reason, _ := cn.CloseReason()
	testutil.RequireEqual(t, reason, CloseResponseTimeout)
}

// The back-off doubles from ReconnectMin to ReconnectMax with equal jitter:
// each wait is within [b/2, b] of its step b.
func TestReconnectDelay(t *testing.T) {
	lo, hi := 100*time.Millisecond, time.Second
	steps := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	zero := func(int64) int64 { return 0 }
	top := func(n int64) int64 { return n - 1 }
	for i, ms := range steps {
		b := ms * time.Millisecond
		testutil.RequireEqual(t, reconnectDelay(lo, hi, i, zero), b/2)
		testutil.RequireEqual(t, reconnectDelay(lo, hi, i, top), b/2+b/2)
	}
	testutil.RequireEqual(t, reconnectDelay(lo, hi, -1, zero), lo/2) // after a bind that stayed up
	testutil.RequireEqual(t, reconnectDelay(lo, hi, 1000, zero), hi/2)
}

// An SMSC that accepts the bind and drops the connection at once: the
// client rebinds each time, and the back-off keeps growing instead of
// resetting on every short-lived bind.
func TestRebindAfterDropKeepsBackingOff(t *testing.T) {
	var binds atomic.Int32
	addr := fakeSMSC(t, func(nc net.Conn) {
		if answerBind(nc) == nil {
			binds.Add(1)
		}
	})
	c := NewClient(ClientConfig{Addr: addr, SystemID: "acct", Password: "x", ReconnectMin: 2 * time.Millisecond, ReconnectMax: time.Hour})
	c.Start()
	defer c.Close()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := binds.Load(); n < 4 {
			return fmt.Errorf("%d binds", n)
		}
		return nil
	})
	if f := c.slots[0].failures.Load(); f < 3 {
		t.Fatalf("back-off step %d after 4 short-lived binds", f)
	}
}

// ESME_RMSGQFUL is retried with back-off until the SMSC accepts.
func TestClientRetriesMsgQFul(t *testing.T) {
	var n atomic.Int32
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) {
			if n.Add(1) <= 2 {
				r.Respond(StatusMsgQFul, nil)
				return
			}
			r.Respond(StatusOK, &SubmitSMResp{MessageID: []byte("queued")})
		})
	})
	c := testClient(t, addr, nil)
	id, err := c.Submit(context.Background(), &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	requireNoErr(t, err)
	testutil.RequireEqual(t, [2]any{id, n.Load()}, [2]any{"queued", int32(3)})
	// Past MaxRetries the status comes back.
	n.Store(-100)
	_, err = c.Submit(context.Background(), &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	testutil.RequireEqual(t, StatusOf(err), StatusMsgQFul)
}

// ESME_RTHROTTLED pauses the bind: the retry is not sent before the pause
// has passed (a lower bound the client guarantees, not a speed).
func TestClientThrottlePause(t *testing.T) {
	const pause = 150 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) {
			mu.Lock()
			at = append(at, time.Now())
			first := len(at) == 1
			mu.Unlock()
			if first {
				r.Respond(StatusThrottled, nil)
				return
			}
			r.Respond(StatusOK, &SubmitSMResp{MessageID: []byte("ok")})
		})
	})
	c := testClient(t, addr, func(c *ClientConfig) { c.ThrottlePause = pause })
	_, err := c.Submit(context.Background(), &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	requireNoErr(t, err)
	mu.Lock()
	defer mu.Unlock()
	testutil.RequireEqual(t, len(at), 2)
	if d := at[1].Sub(at[0]); d < pause {
		t.Fatalf("retried %s after the throttle, pause is %s", d, pause)
	}
}

// Submits are spread over the binds round robin.
func TestClientSpreadsOverBinds(t *testing.T) {
	var mu sync.Mutex
	per := map[*Conn]int{}
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) {
			mu.Lock()
			per[r.Conn]++
			mu.Unlock()
			r.Respond(StatusOK, &SubmitSMResp{MessageID: []byte("1")})
		})
	})
	c := testClient(t, addr, func(c *ClientConfig) { c.Binds = 3 })
	for i := 0; i < 30; i++ {
		_, err := c.Submit(context.Background(), &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
		requireNoErr(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	testutil.RequireEqual(t, len(per), 3)
	for _, n := range per {
		testutil.RequireEqual(t, n, 10)
	}
}

// A bind whose window is full is passed over while another has room.
func TestClientPrefersFreeWindow(t *testing.T) {
	held := make(chan *Request, 1)
	var first atomic.Bool
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) {
			if first.CompareAndSwap(false, true) {
				held <- r // fills its bind's window of 1
				return
			}
			r.Respond(StatusOK, &SubmitSMResp{MessageID: []byte("1")})
		})
	})
	c := testClient(t, addr, func(c *ClientConfig) { c.Binds = 2; c.Conn.Window = 1 })
	go c.Submit(context.Background(), &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	r := <-held
	defer r.Respond(StatusOK, &SubmitSMResp{MessageID: []byte("held")})
	for i := 0; i < 6; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := c.Submit(ctx, &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
		cancel()
		if err != nil {
			t.Fatalf("submit %d waited on the full bind: %v", i, err)
		}
	}
}

// The per-bind Rate cap holds: over a bounded run the submits sent never
// exceed rate × elapsed + burst (a correctness bound, not a speed).
func TestClientRateCap(t *testing.T) {
	const rate, total = 100.0, 40
	var sent atomic.Int32
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) {
			sent.Add(1)
			r.Respond(StatusOK, &SubmitSMResp{MessageID: []byte("1")})
		})
	})
	c := testClient(t, addr, func(c *ClientConfig) { c.Rate = rate })
	burst := c.slots[0].limit.burst
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int32
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				if _, err := c.Submit(context.Background(), &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if n := float64(sent.Load()); n != total || n > rate*el.Seconds()+burst {
		t.Fatalf("%v submits in %s at %v/s with burst %v", n, el, rate, burst)
	}
}
