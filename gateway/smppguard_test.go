package gateway

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// envWithSMPP starts a gateway whose smpp: section is extra (YAML flow
// fields added after the listener).
func envWithSMPP(t *testing.T, extra string) *testEnv {
	t.Helper()
	smsc := smpptest.NewServer(smpptest.Config{Receipts: true})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := strings.Replace(configYAML(dir, smsc.Addr(), "", ""), `smpp: {listen: "127.0.0.1:0"}`,
		`smpp: {listen: "127.0.0.1:0", `+extra+`}`, 1)
	return startEnv(t, y, smsc, dir)
}

// dialRawFrom connects to addr from the local address ip (all of 127/8
// is loopback on Linux).
func dialRawFrom(t *testing.T, addr, ip string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

// bindStatus binds r as sys/pw and returns the answer's status, or the
// read error once the server closed.
func (r *rawConn) bindStatus(sys, pw string) (smpp.CommandStatus, error) {
	r.t.Helper()
	r.send(bindPDU(sys, pw))
	h, err := r.readAnswer()
	return h.Status, err
}

// scrape gathers the gateway's registry and returns the number of series
// of the family name and the sum of its counters with label=value (-1:
// none).
func (e *testEnv) scrape(name, label, value string) (series int, sum float64) {
	e.t.Helper()
	mfs, err := e.g.gatherer.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	sum = -1
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			series++
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum = max(sum, 0) + m.GetCounter().GetValue()
				}
			}
		}
	}
	return series, sum
}

// counterValue returns the counter name{label=value} (summed over its
// other labels), or -1 when it does not exist.
func (e *testEnv) counterValue(name, label, value string) float64 {
	e.t.Helper()
	_, v := e.scrape(name, label, value)
	return v
}

// An unknown system_id and a wrong password get the same answer
// (ESME_RBINDFAIL) by default; smpp.distinct_bind_errors restores the
// spec's distinct codes.
func TestBindErrorsAlike(t *testing.T) {
	for _, tc := range []struct {
		extra           string
		unknown, badPwd smpp.CommandStatus
	}{
		{"", smpp.StatusBindFail, smpp.StatusBindFail},
		{"distinct_bind_errors: true", smpp.StatusInvSysID, smpp.StatusInvPaswd},
	} {
		t.Run(fmt.Sprintf("%q", tc.extra), func(t *testing.T) {
			env := envWithSMPP(t, tc.extra)
			for _, c := range []struct {
				sys, pw string
				want    smpp.CommandStatus
			}{{"ghost", "acmepw", tc.unknown}, {"acme", "nope", tc.badPwd}} {
				st, err := dialRaw(t, env.g.SMPPAddr()).bindStatus(c.sys, c.pw)
				if err != nil || st != c.want {
					t.Fatalf("%s/%s: %v %v, want %v", c.sys, c.pw, st, err, c.want)
				}
			}
		})
	}
}

// Guessing on connections opened before the address was locked: after
// smpp.max_failed_binds failures the right password is refused too, and
// the lock is counted (optgate_smpp_bind_lockouts_total{scope="ip"}).
func TestBindLockPreopenedGateway(t *testing.T) {
	env := newEnv(t)
	if v := env.counterValue("optgate_smpp_bind_lockouts_total", "scope", "ip"); v != 0 {
		t.Fatalf("ip lockouts before: %v, want 0", v)
	}
	bound := len(env.g.smppSrv.Sessions())
	conns := make([]*rawConn, 31)
	for i := range conns {
		conns[i] = dialRaw(t, env.g.SMPPAddr())
	}
	testutil.CheckFor(t, 10*time.Second, func() error { // all accepted before the first guess
		if n := len(env.g.smppSrv.Sessions()) - bound; n != len(conns) {
			return fmt.Errorf("%d new sessions", n)
		}
		return nil
	})
	for i, r := range conns[:30] {
		if st, err := r.bindStatus("acme", fmt.Sprintf("bad%d", i)); err == nil && st == smpp.StatusOK {
			t.Fatalf("guess %d bound", i)
		}
	}
	if st, err := conns[30].bindStatus("acme", "acmepw"); err == nil && st == smpp.StatusOK {
		t.Fatal("the right password bound on a connection opened before the lock")
	}
	if v := env.counterValue("optgate_smpp_bind_lockouts_total", "scope", "ip"); v != 1 {
		t.Fatalf("ip lockouts: %v, want 1", v)
	}
}

// smpp.account_lock_after failures from different addresses lock the
// account for everyone; other accounts and bound sessions are unaffected.
func TestAccountLockGateway(t *testing.T) {
	env := envWithSMPP(t, "account_lock_after: 3, account_lock_min: 1m")
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		st, err := dialRawFrom(t, env.g.SMPPAddr(), ip).bindStatus("acme", "guess")
		if err != nil || st != smpp.StatusBindFail {
			t.Fatalf("guess from %s: %v %v", ip, st, err)
		}
	}
	if st, err := dialRawFrom(t, env.g.SMPPAddr(), "127.0.0.5").bindStatus("acme", "acmepw"); err != nil || st != smpp.StatusBindFail {
		t.Fatalf("a locked account's right password from a fresh address: %v %v", st, err)
	}
	if v := env.counterValue("optgate_smpp_bind_lockouts_total", "scope", "account"); v != 1 {
		t.Fatalf("account lockouts: %v, want 1", v)
	}
	if _, err := env.submit(handset, "still bound"); err != nil {
		t.Fatalf("session bound before the lock: %v", err)
	}
}

// Many unbound connections from one address are capped
// (smpp.max_connections_per_ip) and closed after smpp.bind_timeout; they
// do not keep another address from binding.
func TestUnboundConnectionsPerIP(t *testing.T) {
	env := envWithSMPP(t, "max_connections_per_ip: 10, bind_timeout: 2s")
	for range 60 {
		dialRawFrom(t, env.g.SMPPAddr(), "127.0.0.2")
	}
	r := dialRawFrom(t, env.g.SMPPAddr(), "127.0.0.3")
	if st, err := r.bindStatus("acme", "acmepw"); err != nil || st != smpp.StatusOK {
		t.Fatalf("bind from another address: %v %v", st, err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		// Every one of the 60 is closed: past the cap at once, the
		// others (at least the first 10) at the bind timeout.
		capped := env.counterValue("optgate_smpp_unbound_closed_total", "reason", "ip_connections")
		timedOut := env.counterValue("optgate_smpp_unbound_closed_total", "reason", "bind_timeout")
		if capped < 1 || timedOut < 10 || capped+timedOut != 60 {
			return fmt.Errorf("%v closed over the per-address cap, %v by the bind timeout", capped, timedOut)
		}
		if n := len(env.g.smppSrv.Sessions()); n != 2 {
			return fmt.Errorf("%d sessions, want the two bound", n)
		}
		return nil
	})
}

// A peer answering with 1,000 distinct command_status values leaves the
// PDU counters' series bounded: unnamed statuses are "other".
func TestPDUStatusSeriesBounded(t *testing.T) {
	env := newEnv(t)
	r := dialRaw(t, env.g.SMPPAddr())
	if st, err := r.bindStatus("acme", "acmepw"); err != nil || st != smpp.StatusOK {
		t.Fatalf("bind: %v %v", st, err)
	}
	const n = 1000
	var buf []byte
	unnamed := 0
	for i := range n {
		st := smpp.CommandStatus(0x100 + i)
		if !st.Known() {
			unnamed++ // optgate's own 0x401-0x404 keep their names
		}
		var err error
		buf, err = smpp.AppendPDU(buf, st, uint32(1000+i), &smpp.EnquireLinkResp{})
		if err != nil {
			t.Fatal(err)
		}
	}
	before, _ := env.scrape("optgate_smpp_pdus_total", "", "")
	r.write(buf)
	testutil.CheckFor(t, 10*time.Second, func() error {
		if v := env.counterValue("optgate_smpp_pdus_total", "status", "other"); v < float64(unnamed) {
			return fmt.Errorf("%v PDUs counted as other, want %d", v, unnamed)
		}
		return nil
	})
	if after, _ := env.scrape("optgate_smpp_pdus_total", "", ""); after > before+n-unnamed+1 {
		t.Fatalf("%d pdus_total series after %d distinct statuses (%d before)", after, n, before)
	}
}

// The bind-protection settings have their documented defaults, and bad
// values are reported with file:line.
func TestSMPPGuardConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte("tenants: [{id: acme, brand: Acme, help_contact: help@acme.example}]\nsimulator: {enabled: true}\n"), "g.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.SMPP
	if s.MaxConnectionsPerIP != 64 || s.BindTimeout != 10*time.Second || s.AccountLockAfter != 10 ||
		s.AccountLockMin != time.Minute || s.AccountLockMax != time.Hour || s.DistinctBindErrors {
		t.Fatalf("defaults: %+v", s)
	}
	_, err = ParseConfig([]byte("smpp:\n  bind_timeout: -1s\n  account_lock_min: 2h\n  account_lock_max: 1h\n"), "g.yaml", nil)
	for _, want := range []string{"g.yaml:2: smpp.bind_timeout: must not be negative", "g.yaml:4: smpp.account_lock_max: shorter than"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}
