package cluster

// These tests run three real NATS servers clustered inside the test process,
// on 127.0.0.1. Three servers in one process distort latency badly with
// SyncAlways (idle p99 30-77 ms instead of 3 ms here, cluster.md), so the
// tests assert order, acknowledgement and health, never speed; budgets are
// generous and every loop is bounded.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/optgate/optgate/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// freePorts returns n ports that were free a moment ago: a listener on
// 127.0.0.1:0 picks each, then closes so that a NATS server (which takes
// an address, not a listener) can bind it. Route ports must be known
// before the servers start and stay the same across a restart.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls[i], ports[i] = l, l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// testCluster is three embedded servers, n1..n3, routed to each other,
// each with its own store directory and a connection.
type testCluster struct {
	t     testing.TB
	cfgs  []*Config
	srvs  []*Server
	conns []*Conn
	regs  []*prometheus.Registry
}

// options are node i's Connect options: logs to the test's output, metrics
// on a registry of its own.
func (tc *testCluster) options(i int) Options {
	tc.regs[i] = prometheus.NewRegistry()
	return Options{Logger: slog.New(slog.NewTextHandler(tc.t.Output(), nil)), Registerer: tc.regs[i]}
}

func newTestCluster(t testing.TB, tune func(*Config)) *testCluster {
	t.Helper()
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("127.0.0.1:%d", p))
	}
	tc := &testCluster{t: t, srvs: make([]*Server, 3), conns: make([]*Conn, 3), regs: make([]*prometheus.Registry, 3)}
	for i := range 3 {
		c := &Config{
			Node: fmt.Sprintf("n%d", i+1),
			Embedded: &EmbeddedConfig{
				Listen:        "127.0.0.1:0",
				ClusterListen: routes[i],
				Routes:        routes,
			},
			AckTimeout: 5 * time.Second, // generous: a busy 2-core machine, three servers syncing in one process
			StartWait:  30 * time.Second,
		}
		if tune != nil {
			tune(c)
		}
		c.SetDefaults(t.TempDir())
		if err := c.Validate(); err != nil {
			t.Fatalf("config: %v", err)
		}
		tc.cfgs = append(tc.cfgs, c)
	}
	t.Cleanup(tc.close)
	for i := range 3 {
		tc.start(i)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() { tc.conns[i], errs[i] = Connect(context.Background(), tc.cfgs[i], tc.srvs[i], tc.options(i)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return tc
}

// start starts server i (again, after stop: same name, store and route port).
func (tc *testCluster) start(i int) {
	tc.t.Helper()
	log := slog.New(slog.NewTextHandler(tc.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := StartServer(tc.cfgs[i], log.With("server", tc.cfgs[i].Node))
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.srvs[i] = s
}

// stop shuts server i down gracefully.
func (tc *testCluster) stop(i int) {
	tc.srvs[i].Shutdown()
	tc.srvs[i] = nil
}

func (tc *testCluster) close() {
	for i, c := range tc.conns {
		if c != nil {
			c.Close()
			tc.conns[i] = nil
		}
	}
	for i, s := range tc.srvs {
		if s != nil {
			tc.stop(i)
		}
	}
}

// applied is what an ApplyFunc received, in order.
type applied struct {
	mu   sync.Mutex
	seqs []uint64
	recs []Record
}

func (a *applied) apply(seq uint64, rec Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seqs = append(a.seqs, seq)
	a.recs = append(a.recs, rec)
	return nil
}

func (a *applied) snapshot() ([]uint64, []Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]uint64(nil), a.seqs...), append([]Record(nil), a.recs...)
}

// wantApplied checks that a holds exactly seqs from+1..from+len(want)
// (no gap, no repeat) with want's records, each with an ID and a time; in
// want's order when exact, else in want's order per key (Append's promise
// when it retries). Data identifies a record: it is unique in these tests.
func wantApplied(a *applied, from uint64, want []Record, exact bool) error {
	seqs, recs := a.snapshot()
	if len(seqs) != len(want) {
		return fmt.Errorf("applied %d records, want %d", len(seqs), len(want))
	}
	keyOf := map[string]string{}
	wantByKey := map[string][]string{}
	for _, r := range want {
		k := r.Tenant + "/" + string(r.Key)
		keyOf[r.Tenant+"/"+string(r.Data)] = k
		wantByKey[k] = append(wantByKey[k], string(r.Data))
	}
	gotByKey := map[string][]string{}
	for i, s := range seqs {
		r := recs[i]
		if s != from+uint64(i)+1 {
			return fmt.Errorf("record %d has sequence %d, want %d (in order, no gap, no repeat)", i, s, from+uint64(i)+1)
		}
		if r.ID == "" || r.Time.IsZero() {
			return fmt.Errorf("record %d (%q) has no ID or no time", i, r.Data)
		}
		if exact && (r.Tenant != want[i].Tenant || string(r.Data) != string(want[i].Data)) {
			return fmt.Errorf("record %d is %s %q, want %s %q", i, r.Tenant, r.Data, want[i].Tenant, want[i].Data)
		}
		k, ok := keyOf[r.Tenant+"/"+string(r.Data)]
		if !ok {
			return fmt.Errorf("record %d (%s %q) was not appended", i, r.Tenant, r.Data)
		}
		gotByKey[k] = append(gotByKey[k], string(r.Data))
	}
	for k, w := range wantByKey {
		if !slices.Equal(gotByKey[k], w) {
			return fmt.Errorf("key %s: applied %q, want %q", k, gotByKey[k], w)
		}
	}
	return nil
}

func optOuts(from, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		msisdn := fmt.Sprintf("+1555%07d", from+i)
		recs[i] = Record{Tenant: "acme", Key: []byte(msisdn), Data: []byte("STOP " + msisdn)}
	}
	return recs
}

func TestClusterReplicatesInOrder(t *testing.T) {
	tc := newTestCluster(t, nil)
	var got [3]applied
	for i := range 3 {
		f, err := tc.conns[i].Follow(context.Background(), 0, got[i].apply)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if s := f.Status(); !s.Ready || s.Applied != 0 {
			t.Fatalf("n%d after Follow: %+v", i+1, s)
		}
	}
	want := optOuts(0, 60)
	log := tc.conns[0].Log()
	ctx := context.Background()
	for i := 0; i < len(want); i += 20 {
		if err := log.Append(ctx, want[i:i+20]...); err != nil {
			t.Fatalf("Append on n1: %v", err)
		}
	}
	for i := range 3 {
		testutil.CheckFor(t, 10*time.Second, func() error { return wantApplied(&got[i], 0, want, true) })
	}
	f := tc.conns[2].Log()
	if err := f.Append(ctx, Record{Tenant: "bad.tenant", Data: []byte("x")}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("Append of a dotted tenant: %v, want ErrBadRecord", err)
	}

	// A record appended twice with one ID (a retry after a lost ack) is
	// stored once.
	dup := Record{Tenant: "acme", Key: []byte("+15550000001"), ID: "change-1", Data: []byte("STOP again")}
	if err := log.Append(ctx, dup); err != nil {
		t.Fatal(err)
	}
	if err := tc.conns[1].Log().Append(ctx, dup); err != nil {
		t.Fatal(err)
	}
	want = append(want, dup)
	testutil.CheckFor(t, 10*time.Second, func() error { return wantApplied(&got[1], 0, want, true) })

	// The metrics: the stream holds 61 messages (the duplicate stored
	// once), all applied on n1, three current peers, no label at all.
	testutil.CheckFor(t, 10*time.Second, func() error {
		const wantMetrics = `
# HELP optgate_cluster_applied_sequence Last consent stream sequence applied on this node.
# TYPE optgate_cluster_applied_sequence gauge
optgate_cluster_applied_sequence 61
# HELP optgate_cluster_feed_connected 1 while this node's consent feed delivers.
# TYPE optgate_cluster_feed_connected gauge
optgate_cluster_feed_connected 1
# HELP optgate_cluster_peers Current replicas of the consent stream, leader included.
# TYPE optgate_cluster_peers gauge
optgate_cluster_peers 3
# HELP optgate_cluster_quorum 1 while the consent stream has a leader and a quorum of current replicas.
# TYPE optgate_cluster_quorum gauge
optgate_cluster_quorum 1
# HELP optgate_cluster_stream_messages Messages in the consent stream.
# TYPE optgate_cluster_stream_messages gauge
optgate_cluster_stream_messages 61
`
		return promtest.GatherAndCompare(tc.regs[0], strings.NewReader(wantMetrics),
			"optgate_cluster_applied_sequence", "optgate_cluster_feed_connected", "optgate_cluster_peers",
			"optgate_cluster_quorum", "optgate_cluster_stream_messages")
	})
	mfs, err := tc.regs[0].Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "result" {
					t.Errorf("%s has label %s=%q", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	for _, n := range []string{"optgate_cluster_replication_lag_seconds", "optgate_cluster_stream_bytes", "optgate_cluster_lag_seconds",
		"optgate_cluster_append_records_total", "optgate_cluster_append_seconds"} {
		if !names[n] {
			t.Errorf("metric %s missing", n)
		}
	}
	if n := promtest.ToFloat64(tc.conns[0].metrics.okRecs); n != 61 {
		t.Errorf("n1 append_records_total{result=ok} %v, want 61", n)
	}

	// A closed connection refuses at once, as a temporary failure.
	tc.conns[2].Close()
	if err := tc.conns[2].Log().Append(ctx, optOuts(0, 1)...); !errors.Is(err, ErrNotAcknowledged) {
		t.Errorf("Append on a closed connection: %v, want ErrNotAcknowledged", err)
	}
}

func TestSubjectHidesTheNumber(t *testing.T) {
	c := &Config{}
	c.SetDefaults("")
	seen := map[string]bool{}
	for _, r := range optOuts(0, 2000) {
		s := Subject(c, r.Tenant, r.Key)
		if strings.Contains(s, "555") || !strings.HasPrefix(s, "optgate.consent.acme.") || strings.Count(s, ".") != 3 {
			t.Fatalf("subject %q", s)
		}
		seen[s] = true
	}
	if len(seen) < 200 || len(seen) > DefaultShards {
		t.Errorf("2000 numbers on %d subjects, want about %d shards used", len(seen), DefaultShards)
	}
	other := *c
	other.SubjectKey = "another key"
	if Subject(c, "acme", []byte("+15550000001")) == Subject(&other, "acme", []byte("+15550000001")) &&
		Subject(c, "acme", []byte("+15550000002")) == Subject(&other, "acme", []byte("+15550000002")) {
		t.Error("the shard does not depend on the subject key")
	}
}

func TestFollowerResumesFromAppliedSequence(t *testing.T) {
	tc := newTestCluster(t, nil)
	ctx := context.Background()
	log := tc.conns[0].Log()
	first := optOuts(0, 30)
	if err := log.Append(ctx, first...); err != nil {
		t.Fatal(err)
	}
	var a applied
	f, err := tc.conns[1].Follow(ctx, 0, a.apply)
	if err != nil {
		t.Fatal(err)
	}
	// Follow returns once caught up: everything appended before is applied.
	if err := wantApplied(&a, 0, first, true); err != nil {
		t.Fatalf("at Follow's return: %v", err)
	}
	f.Close()
	last := f.Status().Applied
	if last != 30 {
		t.Fatalf("applied %d, want 30", last)
	}

	more := optOuts(30, 25)
	if err := log.Append(ctx, more...); err != nil {
		t.Fatal(err)
	}
	var b applied
	f, err = tc.conns[1].Follow(ctx, last, b.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := wantApplied(&b, last, more, true); err != nil {
		t.Fatalf("after a restart from %d: %v", last, err)
	}
	if err := f.Healthy(0); err != nil {
		t.Errorf("Healthy: %v", err)
	}
	// Idle, the heartbeat keeps the lag small: without it the lag would be
	// the time since the last change (1.5 s at the end of this loop). The
	// bound is loose for a busy machine; max_lag holds in production.
	for idle := time.Now(); time.Since(idle) < 1500*time.Millisecond; time.Sleep(20 * time.Millisecond) {
		if lag := f.Status().Lag; lag > time.Second {
			t.Fatalf("idle for %v, lag %v", time.Since(idle), lag)
		}
	}

	// An Apply that fails stops the feed without skipping the record: it
	// is offered again, and the node is unhealthy meanwhile.
	var fails applied
	var mu sync.Mutex
	failing := true
	flaky := func(seq uint64, rec Record) error {
		mu.Lock()
		defer mu.Unlock()
		if failing && seq == 56 {
			return errors.New("disk full")
		}
		return fails.apply(seq, rec)
	}
	g, err := tc.conns[2].Follow(ctx, 55, flaky)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := log.Append(ctx, optOuts(55, 2)...); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if err := g.Healthy(0); !errors.Is(err, ErrFeedDown) || !errors.Is(g.Status().Err, ErrApply) {
			return fmt.Errorf("Healthy %v, status error %v; want ErrFeedDown from ErrApply", err, g.Status().Err)
		}
		return nil
	})
	mu.Lock()
	failing = false
	mu.Unlock()
	testutil.CheckFor(t, 10*time.Second, func() error { return wantApplied(&fails, 55, optOuts(55, 2), true) })
	testutil.CheckFor(t, 10*time.Second, func() error { return g.Healthy(0) })
}

func TestClusterSurvivesOneServer(t *testing.T) {
	tc := newTestCluster(t, nil)
	ctx := context.Background()
	var a, b applied
	fa, err := tc.conns[0].Follow(ctx, 0, a.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := tc.conns[1].Follow(ctx, 0, b.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	log := tc.conns[0].Log()
	want := optOuts(0, 10)
	if err := log.Append(ctx, want...); err != nil {
		t.Fatal(err)
	}

	tc.conns[2].Close()
	tc.conns[2] = nil
	tc.stop(2)
	// Two of three hold a quorum: every append is still acknowledged.
	for i := 10; i < 50; i += 10 {
		// Each batch also opts its first number back in, then out again:
		// Append keeps one key's records in order even when it retries.
		recs := optOuts(i, 10)
		k := recs[0].Key
		recs = append(recs, Record{Tenant: "acme", Key: k, Data: []byte("START " + string(k))},
			Record{Tenant: "acme", Key: k, Data: []byte("STOP again " + string(k))})
		if err := log.Append(ctx, recs...); err != nil {
			t.Fatalf("Append with n3 down: %v", err)
		}
		want = append(want, recs...)
	}
	testutil.CheckFor(t, 10*time.Second, func() error { return wantApplied(&b, 0, want, false) })
	testutil.CheckFor(t, 10*time.Second, func() error { return fb.Healthy(0) })

	// n3 returns and catches up from its store and the others.
	tc.start(2)
	c, err := Connect(ctx, tc.cfgs[2], tc.srvs[2], tc.options(2))
	if err != nil {
		t.Fatal(err)
	}
	tc.conns[2] = c
	var cc applied
	fc, err := c.Follow(ctx, 0, cc.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	if err := wantApplied(&cc, 0, want, false); err != nil {
		t.Fatalf("n3 after its restart: %v", err)
	}
}

func TestClusterCutOffFailsClosed(t *testing.T) {
	const maxLag = 100 * time.Millisecond
	tc := newTestCluster(t, func(c *Config) { c.AckTimeout = time.Second })
	ctx := context.Background()
	var a applied
	f, err := tc.conns[0].Follow(ctx, 0, a.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log := tc.conns[0].Log()
	if err := log.Append(ctx, optOuts(0, 5)...); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error { return f.Healthy(maxLag) })
	testutil.CheckFor(t, 10*time.Second, func() error {
		if !f.Current(maxLag) {
			return errors.New("n1 healthy but not Current")
		}
		return nil
	})

	for _, i := range []int{1, 2} {
		tc.conns[i].Close()
		tc.conns[i] = nil
	}
	cut := time.Now()
	tc.stop(1)
	tc.stop(2)
	// Healthy must fail within max_lag + 1 s of losing the quorum.
	testutil.CheckFor(t, maxLag+time.Second-time.Since(cut), func() error {
		if err := f.Healthy(maxLag); err == nil || f.Current(maxLag) {
			return fmt.Errorf("n1 alone still reports healthy (%v) or current (%v)", err, f.Current(maxLag))
		}
		return nil
	})
	t.Logf("n1 alone unhealthy after %v: %v", time.Since(cut).Round(time.Millisecond), f.Healthy(maxLag))

	start := time.Now()
	err = log.Append(ctx, optOuts(100, 3)...)
	if !errors.Is(err, ErrNotAcknowledged) {
		t.Fatalf("Append without quorum: %v, want ErrNotAcknowledged", err)
	}
	if d := time.Since(start); d > tc.cfgs[0].AckTimeout+time.Second {
		t.Errorf("Append without quorum failed after %v, want about ack_timeout %v", d, tc.cfgs[0].AckTimeout)
	}
	t.Logf("Append without quorum: %v", err)
	// A follower started now cannot prove it is current: Follow refuses.
	fctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if g, err := tc.conns[0].Follow(fctx, 0, new(applied).apply); !errors.Is(err, ErrNotReady) {
		if g != nil {
			g.Close()
		}
		t.Errorf("Follow without quorum: %v, want ErrNotReady", err)
	}

	tc.start(1)
	tc.start(2)
	// Recovers by itself: appends acknowledged again, the feed healthy.
	testutil.CheckFor(t, 30*time.Second, func() error { return log.Append(ctx, optOuts(200, 1)...) })
	testutil.CheckFor(t, 10*time.Second, func() error {
		if err := f.Healthy(maxLag); err != nil || !f.Current(maxLag) {
			return fmt.Errorf("after the peers' return: healthy %v, current %v", err, f.Current(maxLag))
		}
		return nil
	})
}

func TestAppendGenerations(t *testing.T) {
	c := &Config{}
	c.SetDefaults("")
	l := (&Conn{cfg: c}).Log()
	recs := []Record{
		{Tenant: "a", Key: []byte("1"), Data: []byte("STOP")},
		{Tenant: "a", Key: []byte("2"), Data: []byte("STOP")},
		{Tenant: "a", Key: []byte("1"), Data: []byte("START")},
		{Tenant: "b", Key: []byte("1"), Data: []byte("STOP")},
		{Tenant: "a", Key: []byte("1"), Data: []byte("STOP")},
	}
	gens, err := l.generations(recs, map[*nats.Msg]int{})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, g := range gens {
		var s []string
		for _, m := range g {
			s = append(s, m.Subject[len(subjectPrefix):len(subjectPrefix)+1]+" "+string(m.Data))
		}
		got = append(got, s)
	}
	want := [][]string{{"a STOP", "a STOP", "b STOP"}, {"a START"}, {"a STOP"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("generations %q, want %q", got, want)
	}
	if _, err := l.generations([]Record{{Tenant: "a", Data: make([]byte, maxRecordSize+1)}}, map[*nats.Msg]int{}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("oversized record: %v, want ErrBadRecord", err)
	}
}

// writeTestCerts writes a CA and a certificate for 127.0.0.1, good as
// server and client, to dir.
func writeTestCerts(t *testing.T, dir string) (cert, key, ca string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "optgate test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
}

func TestClusterTLSAndAuth(t *testing.T) {
	cert, key, ca := writeTestCerts(t, t.TempDir())
	tc := newTestCluster(t, func(c *Config) {
		c.Embedded.TLS = TLSConfig{Cert: cert, Key: key, CA: ca}
		c.Embedded.Auth = AuthConfig{User: "optgate", Password: "s3cret"}
	})
	var a applied
	f, err := tc.conns[2].Follow(context.Background(), 0, a.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := optOuts(0, 3)
	if err := tc.conns[0].Log().Append(context.Background(), want...); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error { return wantApplied(&a, 0, want, true) })
	if n := tc.srvs[0].Peers(); n != 2 {
		t.Errorf("n1 has routes to %d peers, want 2", n)
	}
	// The client listener refuses a plain connection without credentials.
	if _, err := nats.Connect(tc.srvs[0].ClientURL(), nats.Timeout(time.Second), nats.MaxReconnects(0)); err == nil {
		t.Error("a client without TLS or credentials connected")
	}
}

// TestAppendSeqMatchesTheLog: AppendSeq returns each record's stream
// sequence, the one a follower delivers it with, also for a batch that
// holds two records of one key (two generations) and for a retried
// record the stream de-duplicates (its first sequence).
func TestAppendSeqMatchesTheLog(t *testing.T) {
	tc := newTestCluster(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := tc.conns[0].Log()
	recs := optOuts(0, 5)
	recs = append(recs, Record{Tenant: "acme", Key: recs[0].Key, Data: []byte("START again")})
	seqs, err := log.AppendSeq(ctx, recs...)
	if err != nil {
		t.Fatal(err)
	}
	var a applied
	f, err := tc.conns[1].Follow(ctx, 0, a.apply)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gotSeqs, gotRecs := a.snapshot()
	bySeq := map[uint64]string{}
	for i, s := range gotSeqs {
		bySeq[s] = string(gotRecs[i].Data)
	}
	for i, s := range seqs {
		if bySeq[s] != string(recs[i].Data) {
			t.Fatalf("record %d (%q): AppendSeq says sequence %d, the log has %q there", i, recs[i].Data, s, bySeq[s])
		}
	}
	again := Record{Tenant: "acme", Key: []byte("k"), ID: "fixed-id", Data: []byte("once")}
	s1, err := log.AppendSeq(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := log.AppendSeq(ctx, again)
	if err != nil || s2[0] != s1[0] {
		t.Fatalf("a retried record: sequence %v then %v (%v), want the first one again", s1, s2, err)
	}
}
