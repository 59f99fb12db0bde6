package smpp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// Malformed bind PDUs count toward the failed-bind limit of their address.
func TestMalformedBindsCountAsFailures(t *testing.T) {
	_, addr := testServer(t, func(s *Server) { s.MaxFailedBinds = 2 })
	// A bind_transceiver whose system_id has no NUL before the body ends.
	bad := []byte{0, 0, 0, 20, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 'c', 'c', 't'}
	for i := 0; i < 2; i++ {
		r := dialRaw(t, addr)
		r.write(bad)
		h, _, err := r.read()
		requireNoErr(t, err)
		testutil.RequireEqual(t, [2]any{h.ID, h.Status}, [2]any{GenericNackID, StatusInvCmdLen})
	}
	r := dialRaw(t, addr)
	r.write(mustPDU(t, &Bind{Mode: BindTransceiver, SystemID: []byte("acct"), Password: []byte("secret")}))
	if _, _, err := r.read(); err == nil {
		t.Fatal("an address past its failed-bind limit was served")
	}
}

// While Shutdown drains a session, a new submit_sm is refused with the
// temporary ESME_RX_T_APPN (retry later), not ESME_RINVBNDSTS, and the
// drain still completes with an unbind.
func TestShutdownDrainRefusesTemporarily(t *testing.T) {
	held := make(chan *Request, 1)
	srv, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) { held <- r })
	})
	r := dialRaw(t, addr)
	r.bind()
	r.send(0, 10, &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	req := <-held
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	testutil.CheckFor(t, 5*time.Second, func() error {
		for _, c := range srv.Sessions() {
			if c.State() == StateUnbinding {
				return nil
			}
		}
		return errors.New("not draining yet")
	})
	r.send(0, 11, &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	h, _, err := r.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, [3]any{h.ID, h.Sequence, h.Status}, [3]any{SubmitSMRespID, uint32(11), StatusXTAppn})
	req.Respond(StatusOK, &SubmitSMResp{MessageID: []byte("1")})
	h, _, err = r.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, [2]any{h.Sequence, h.Status}, [2]any{uint32(10), StatusOK})
	h, _, err = r.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, h.ID, UnbindID)
	r.send(0, h.Sequence, &UnbindResp{})
	requireNoErr(t, <-done)
}

// An account's Window holds across its binds under concurrent load: the
// slot is taken atomically.
func TestAccountWindowAcrossBinds(t *testing.T) {
	const window, binds, each = 5, 4, 25
	acct := &Account{ID: "acct", Window: window, MaxBinds: binds}
	var mu sync.Mutex
	var held []*Request
	_, addr := testServer(t, func(s *Server) {
		s.Authenticate = func(context.Context, BindInfo) (*Account, CommandStatus) { return acct, StatusOK }
		s.Handler = HandlerFunc(func(r *Request) {
			mu.Lock()
			held = append(held, r) // answered at the end
			mu.Unlock()
		})
	})
	conns := make([]*rawConn, binds)
	for i := range conns {
		conns[i] = dialRaw(t, addr)
		conns[i].bind()
	}
	var wg sync.WaitGroup
	for _, r := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch []byte
			for j := 0; j < each; j++ {
				batch = append(batch, mustSeqPDU(t, uint32(100+j), &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})...)
			}
			r.nc.Write(batch)
		}()
	}
	wg.Wait()
	want := int32(binds*each - window)
	var got atomic.Int32
	for _, r := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				h, _, err := r.read()
				if err != nil {
					return // closed below
				}
				if h.Status == StatusThrottled {
					got.Add(1)
				}
			}
		}()
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := got.Load(); n < want {
			return fmt.Errorf("%d throttled, want %d", n, want)
		}
		return nil
	})
	mu.Lock()
	n := len(held)
	mu.Unlock()
	testutil.RequireEqual(t, [2]any{n, got.Load()}, [2]any{window, want})
	testutil.RequireEqual(t, acct.Inflight(), window)
	mu.Lock()
	for _, r := range held {
		r.Respond(StatusOK, &SubmitSMResp{})
	}
	mu.Unlock()
	for _, r := range conns {
		r.nc.Close()
	}
	wg.Wait()
}

func mustSeqPDU(t testing.TB, seq uint32, p PDU) []byte {
	b, err := AppendPDU(nil, 0, seq, p)
	requireNoErr(t, err)
	return b
}

// RespondNotify tells whether the response reached the peer: true when it
// was written and the session stayed up for WrittenGrace, false when the
// peer closed the connection before we answered, or right after our answer
// was written (the socket accepted it, but a peer that drops the link at
// once may not have read it); exactly once either way.
func TestRespondNotify(t *testing.T) {
	held := make(chan *Request, 2)
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) { held <- r })
	})
	answer := func(req *Request) <-chan bool {
		got := make(chan bool, 2)
		req.RespondNotify(StatusOK, &SubmitSMResp{MessageID: []byte("1")}, func(w bool) { got <- w })
		return got
	}
	once := func(got <-chan bool) bool {
		t.Helper()
		select {
		case w := <-got:
			select {
			case <-got:
				t.Fatal("WrittenFunc called twice")
			case <-time.After(50 * time.Millisecond):
			}
			return w
		case <-time.After(5 * time.Second):
			t.Fatal("WrittenFunc not called")
		}
		return false
	}

	r := dialRaw(t, addr)
	r.bind()
	r.send(0, 10, &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	got := answer(<-held)
	h, _, err := r.read()
	requireNoErr(t, err)
	testutil.RequireEqual(t, [2]any{h.Sequence, h.Status}, [2]any{uint32(10), StatusOK})
	testutil.RequireEqual(t, once(got), true)

	// The peer writes a request and drops the connection at once.
	r2 := dialRaw(t, addr)
	r2.bind()
	r2.send(0, 11, &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	req := <-held
	r2.nc.Close()
	testutil.CheckFor(t, 5*time.Second, func() error {
		if req.Conn.State() != StateClosed {
			return errors.New("session still open")
		}
		return nil
	})
	testutil.RequireEqual(t, once(answer(req)), false)

	// The answer is written, then the peer drops the connection at once.
	r3 := dialRaw(t, addr)
	r3.bind()
	r3.send(0, 12, &SubmitSM{SM{Dest: Address{1, 1, []byte("1")}}})
	got = answer(<-held)
	_, _, err = r3.read()
	requireNoErr(t, err)
	r3.nc.Close()
	testutil.RequireEqual(t, once(got), false)
}
