package smpp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// guardLog records the Server's OnGuard calls.
type guardLog struct {
	mu sync.Mutex
	n  map[Guard]int
}

func (g *guardLog) add(x Guard) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == nil {
		g.n = map[Guard]int{}
	}
	g.n[x]++
}

func (g *guardLog) count(x Guard) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n[x]
}

// dialRawFrom connects to addr from the local address ip (all of 127/8
// is loopback on Linux).
func dialRawFrom(t testing.TB, addr, ip string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	requireNoErr(t, err)
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

// bindAs sends a bind_transceiver and returns the answer's status, or the
// read error.
func (r *rawConn) bindAs(sys, pw string) (CommandStatus, error) {
	r.t.Helper()
	r.send(0, 1, &Bind{Mode: BindTransceiver, SystemID: []byte(sys), Password: []byte(pw), InterfaceVersion: 0x34})
	h, _, err := r.read()
	return h.Status, err
}

// closedByPeer reports whether the server closed r (EOF or reset), reading
// past any PDUs still queued.
func (r *rawConn) closedByPeer() bool {
	for range 4 {
		if _, _, err := r.read(); err != nil {
			return !errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
	return false
}

// Connections opened before an address is locked cannot keep guessing:
// the lock is checked on every bind, and a locked address's bind with the
// right password is refused too. Before the fix, 30 wrong passwords on
// pre-opened connections were all answered ESME_RINVPASWD and the right
// one then bound.
func TestBindLockPreopenedConnections(t *testing.T) {
	var g guardLog
	srv, addr := testServer(t, func(s *Server) { s.MaxFailedBinds = 5; s.AccountLockAfter = -1; s.OnGuard = g.add })
	conns := make([]*rawConn, 31)
	for i := range conns {
		conns[i] = dialRaw(t, addr)
	}
	testutil.CheckFor(t, 5*time.Second, func() error { // all accepted before the first guess
		if n := len(srv.Sessions()); n != len(conns) {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	counts := map[CommandStatus]int{}
	for _, r := range conns[:30] {
		st, err := r.bindAs("acct", "wrong")
		requireNoErr(t, err)
		counts[st]++
	}
	testutil.RequireEqual(t, counts, map[CommandStatus]int{StatusInvPaswd: 5, StatusBindFail: 25})
	st, err := conns[30].bindAs("acct", "secret")
	requireNoErr(t, err)
	testutil.RequireEqual(t, st, StatusBindFail)
	if !conns[30].closedByPeer() {
		t.Fatal("a locked address's connection stayed open")
	}
	testutil.RequireEqual(t, g.count(GuardIPLocked), 1)
}

// Binds racing on many pre-opened connections cannot overshoot the
// address's limit: each is counted before Authenticate runs.
func TestBindLockConcurrentGuesses(t *testing.T) {
	_, addr := testServer(t, func(s *Server) { s.MaxFailedBinds = 5; s.AccountLockAfter = -1 })
	conns := make([]*rawConn, 40)
	for i := range conns {
		conns[i] = dialRaw(t, addr)
	}
	var wg sync.WaitGroup
	sts := make([]CommandStatus, len(conns))
	for i, r := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := AppendPDU(nil, 0, 1, &Bind{Mode: BindTransceiver, SystemID: []byte("acct"), Password: []byte("wrong")})
			if err != nil {
				panic(err)
			}
			r.nc.Write(b)
			h, _, err := r.read()
			if err != nil {
				sts[i] = StatusSysErr
				return
			}
			sts[i] = h.Status
		}()
	}
	wg.Wait()
	guessed := 0
	for _, st := range sts {
		if st == StatusInvPaswd {
			guessed++
		}
	}
	if guessed > 5 {
		t.Fatalf("%d passwords tried from one address, limit 5", guessed)
	}
}

// An account is locked after AccountLockAfter failures whatever the
// addresses they come from; while locked its right password is refused
// from a fresh address too; the lock ends, and the next one lasts twice
// as long.
func TestAccountLockAcrossAddresses(t *testing.T) {
	var g guardLog
	const lock = time.Second
	srv, addr := testServer(t, func(s *Server) {
		s.MaxFailedBinds = 100
		s.AccountLockAfter = 3
		s.AccountLockMin, s.AccountLockMax = lock, time.Hour
		s.OnGuard = g.add
	})
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		st, err := dialRawFrom(t, addr, ip).bindAs("acct", "wrong")
		requireNoErr(t, err)
		testutil.RequireEqual(t, st, StatusInvPaswd)
	}
	testutil.RequireEqual(t, srv.AccountLocked("acct"), true)
	locked := time.Now()
	st, err := dialRawFrom(t, addr, "127.0.0.5").bindAs("acct", "secret")
	requireNoErr(t, err)
	testutil.RequireEqual(t, st, StatusBindFail)
	testutil.RequireEqual(t, g.count(GuardAccountLocked), 1)
	// Another account's binds are not affected, and unknown system_ids
	// are not tracked.
	st, err = dialRawFrom(t, addr, "127.0.0.5").bindAs("nobody", "x")
	requireNoErr(t, err)
	testutil.RequireEqual(t, st, StatusInvSysID)

	testutil.CheckFor(t, 5*time.Second, func() error {
		if srv.AccountLocked("acct") {
			return errors.New("still locked")
		}
		return nil
	})
	if d := time.Since(locked); d < lock/2 {
		t.Fatalf("lock ended after %v, want %v", d, lock)
	}
	dialRawFrom(t, addr, "127.0.0.6").bind()

	// A success resets the count: two more failures do not lock.
	for range 2 {
		st, err := dialRawFrom(t, addr, "127.0.0.7").bindAs("acct", "wrong")
		requireNoErr(t, err)
		testutil.RequireEqual(t, st, StatusInvPaswd)
	}
	testutil.RequireEqual(t, srv.AccountLocked("acct"), false)
	// A third does; the second lock lasts twice the first.
	st, err = dialRawFrom(t, addr, "127.0.0.7").bindAs("acct", "wrong")
	requireNoErr(t, err)
	testutil.RequireEqual(t, st, StatusInvPaswd)
	srv.mu.Lock()
	left := time.Until(srv.accts["acct"].until)
	srv.mu.Unlock()
	if left <= lock || left > 2*lock {
		t.Fatalf("second lock lasts %v, want about %v", left, 2*lock)
	}
}

// The back-off grows per lock and is forgotten after a quiet spell of
// AccountLockMax past the last lock.
func TestAccountLockBackoffDecays(t *testing.T) {
	const lo, hi = 20 * time.Millisecond, 80 * time.Millisecond
	s := &Server{AccountLockAfter: 1, AccountLockMin: lo, AccountLockMax: hi, MaxFailedBinds: 1000}
	from := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 4000}
	fail := func() time.Duration {
		t.Helper()
		testutil.CheckFor(t, 5*time.Second, func() error {
			if why := s.admit(from, "acct"); why != "" {
				return errors.New(why)
			}
			return nil
		})
		locked, d := s.settle(from, "acct", true, false)
		testutil.RequireEqual(t, locked, true)
		return d
	}
	testutil.RequireEqual(t, []time.Duration{fail(), fail(), fail(), fail()}, []time.Duration{lo, 2 * lo, hi, hi})
	time.Sleep(3 * hi) // past the last lock and AccountLockMax
	testutil.RequireEqual(t, fail(), lo)
}

func TestLockFor(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {7, time.Hour}, {1000, time.Hour}} {
		testutil.RequireEqual(t, lockFor(tc.n, time.Minute, time.Hour), tc.want)
	}
}

// Unbound connections from one address past MaxConnsPerIP are closed at
// once and counted; they do not keep another address from binding.
func TestMaxConnsPerIP(t *testing.T) {
	var g guardLog
	srv, addr := testServer(t, func(s *Server) { s.MaxConnsPerIP = 20; s.OnGuard = g.add })
	for range 20 {
		dialRawFrom(t, addr, "127.0.0.2")
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if n := len(srv.Sessions()); n != 20 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	extra := dialRawFrom(t, addr, "127.0.0.2")
	if !extra.closedByPeer() {
		t.Fatal("connection past the per-address cap was not closed")
	}
	testutil.RequireEqual(t, g.count(GuardIPConns), 1)
	dialRawFrom(t, addr, "127.0.0.3").bind()
}

// A connection that does not bind within BindTimeout is closed and counted.
func TestBindTimeoutCounted(t *testing.T) {
	var g guardLog
	srv, addr := testServer(t, func(s *Server) { s.BindTimeout = 100 * time.Millisecond; s.OnGuard = g.add })
	idle := dialRaw(t, addr)
	if !idle.closedByPeer() {
		t.Fatal("an unbound connection was not closed after the bind timeout")
	}
	testutil.RequireEqual(t, g.count(GuardBindTimeout), 1)
	testutil.CheckFor(t, 5*time.Second, func() error {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.ipConns) != 0 {
			return fmt.Errorf("per-address table %v after close", srv.ipConns)
		}
		return nil
	})
}

// Successful binds do not use up an address's failed-bind budget (each
// bind is counted before Authenticate and given back when it succeeds).
func TestSuccessfulBindsDoNotLockAddress(t *testing.T) {
	_, addr := testServer(t, func(s *Server) { s.MaxFailedBinds = 2; s.MaxBindsPerAccount = 20 })
	for range 10 {
		dialRaw(t, addr).bind()
	}
	st, err := dialRaw(t, addr).bindAs("acct", "wrong")
	requireNoErr(t, err)
	testutil.RequireEqual(t, st, StatusInvPaswd)
	dialRaw(t, addr).bind()
}
