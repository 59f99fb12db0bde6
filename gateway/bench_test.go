package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// benchStoreDir returns a store folder whose consent index holds n
// suppressed recipients of tenant acme, built once and cached under the
// system temp folder (the build imports n rows through consent.Import).
func benchStoreDir(b *testing.B, n int) string {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("optgate-bench-gateway-%d", n))
	marker := filepath.Join(dir, "complete")
	if _, err := os.Stat(marker); err == nil {
		return dir
	}
	os.RemoveAll(dir)
	b.Logf("building %d suppressed entries in %s (once)", n, dir)
	st, err := consent.Open(consent.Config{Dir: filepath.Join(dir, "consent"), Tenants: []consent.TenantConfig{{ID: "acme", Brand: "Acme Recruiting", HelpContact: "help@acme.example"}}})
	if err != nil {
		b.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		w := make([]byte, 0, 1<<16)
		w = append(w, "recipient,scope,class\n"...)
		for i := 0; i < n; i++ {
			w = append(w, fmt.Sprintf("+1202%07d,tenant,all\n", i)...)
			if len(w) > 1<<15 {
				pw.Write(w)
				w = w[:0]
			}
		}
		pw.Write(w)
		pw.Close()
	}()
	rep, err := st.Import(context.Background(), pr, consent.ImportOptions{Tenant: "acme", Source: "benchmark", Operator: "bench"})
	if err != nil || rep.Applied != n {
		b.Fatalf("import: %+v %v", rep, err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkGatewayMT: an ESME → optgate → smpptest SMSC over loopback,
// consent check on against 1,000,000 suppressed entries, reporting msgs/s.
// Every part runs in this process on the same two cores.
func BenchmarkGatewayMT(b *testing.B) {
	const suppressed = 1_000_000
	dir := benchStoreDir(b, suppressed)
	smsc := smpptest.NewServer(smpptest.Config{NoRecord: true, Window: 1024})
	defer smsc.Close()
	y := benchMTYAML(dir, smsc.Addr(), "")
	g := startBenchGateway(b, y)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cn := benchConn(ctx, b, g)
	// Recipients: not suppressed (the +1514 range); one in 20 is suppressed
	// (the +1202 range the index holds), refused with 0x401.
	const pool = 4096
	pdus := make([]*smpp.SubmitSM, pool)
	for i := range pdus {
		to := fmt.Sprintf("1514%07d", i)
		if i%20 == 0 {
			to = fmt.Sprintf("1202%07d", i*97%suppressed)
		}
		pdus[i] = &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(to)}, ShortMessage: []byte("Your interview is confirmed for Tuesday at 10:00")}}
	}
	var ok, blocked, failed atomic.Int64
	done := func(r smpp.Result) {
		switch smpp.StatusOf(r.Err) {
		case smpp.StatusOK:
			ok.Add(1)
		case smpp.StatusOptedOut:
			blocked.Add(1)
		default:
			failed.Add(1)
		}
	}
	start := benchSubmitAll(ctx, b, cn, pdus, done)
	el := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d submits failed (ok %d, blocked %d)", failed.Load(), ok.Load(), blocked.Load())
	}
	if b.N >= pool && blocked.Load() == 0 {
		b.Fatal("no submit was blocked: the consent check is not in the path")
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
}

// BenchmarkGatewayMOStorm: STOPs from distinct handsets through the
// simulator's receiver bind into the gateway, each acknowledged only after
// its opt-out is synced; reports durable opt-outs a second. The
// confirmations go back to the simulator.
func BenchmarkGatewayMOStorm(b *testing.B) {
	smsc := smpptest.NewServer(smpptest.Config{NoRecord: true, Window: 1024})
	defer smsc.Close()
	dir := b.TempDir()
	y := fmt.Sprintf(`
store: {dir: %q}
http: {listen: "127.0.0.1:0"}
smpp: {listen: "127.0.0.1:0"}
tenants:
  - {id: acme, brand: Acme Recruiting, help_contact: help@acme.example, numbers: ["+15145550199"]}
smscs:
  - {name: carrier, address: %q, system_id: optgate, password: pw, binds: 2, window: 512}
routes:
  - {prefix: "+", smscs: [carrier]}
`, dir, smsc.Addr())
	startBenchGateway(b, y)
	base := smsc.Submits()
	var next atomic.Int64
	var failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				d := &smpp.DeliverSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(fmt.Sprintf("1438%07d", i))},
					Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")}, ShortMessage: []byte("STOP")}}
				if err := smsc.SendDeliver(context.Background(), "optgate", d); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d MOs refused", failed.Load())
	}
	testutil.CheckFor(b, 60*time.Second, func() error {
		if n := smsc.Submits() - base; n < int64(b.N) {
			return fmt.Errorf("%d of %d confirmations", n, b.N)
		}
		return nil
	})
	b.ReportMetric(float64(b.N)/el.Seconds(), "optouts/s")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "confirmed/s")
}

// benchMTYAML is the configuration of the MT benchmarks: store in dir,
// tenant acme with ESME account acme (password acmepw, window 4096, and
// the extra flow-style fields accountExtra, such as ", ack: store"), and
// one SMSC link to smscAddr (2 binds of window 512) routing everything.
func benchMTYAML(dir, smscAddr, accountExtra string) string {
	return fmt.Sprintf(`
store: {dir: %q}
http: {listen: "127.0.0.1:0"}
smpp: {listen: "127.0.0.1:0"}
tenants:
  - {id: acme, brand: Acme Recruiting, help_contact: help@acme.example, numbers: ["+15145550199"]}
accounts:
  - {system_id: acme, password: acmepw, tenant: acme, window: 4096%s}
smscs:
  - {name: carrier, address: %q, system_id: optgate, password: pw, binds: 2, window: 512}
routes:
  - {prefix: "+", smscs: [carrier]}
`, dir, accountExtra, smscAddr)
}

// benchConn binds account acme (password acmepw) to g, closed when the
// benchmark ends, and returns its connection.
func benchConn(ctx context.Context, b *testing.B, g *Gateway) *smpp.Conn {
	c := smpp.NewClient(smpp.ClientConfig{Addr: g.SMPPAddr(), SystemID: "acme", Password: "acmepw", Conn: smpp.ConnConfig{Window: 1024}})
	c.Start()
	b.Cleanup(func() { c.Close() })
	if err := c.WaitBound(ctx, 1); err != nil {
		b.Fatal(err)
	}
	return c.Conns()[0]
}

// benchSubmitAll resets the benchmark's timer and sends b.N submits on cn,
// taken in turn from pdus, and returns when done has seen every answer.
// It returns when the timer was reset.
func benchSubmitAll(ctx context.Context, b *testing.B, cn *smpp.Conn, pdus []*smpp.SubmitSM, done func(smpp.Result)) time.Time {
	var wg sync.WaitGroup
	wg.Add(b.N)
	answered := func(r smpp.Result) { done(r); wg.Done() }
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := cn.SendAsync(ctx, pdus[i%len(pdus)], answered); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	return start
}

// startBenchGateway runs a gateway from YAML until the benchmark ends and
// waits until every route has a bound SMSC.
func startBenchGateway(b *testing.B, y string) *Gateway {
	cfg, err := ParseConfig([]byte(y), "bench.yaml", nil)
	if err != nil {
		b.Fatal(err)
	}
	sl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	g, err := New(cfg, Options{SMPPListener: sl, HTTPListener: hl})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		g.Shutdown(ctx)
		cancel()
	})
	testutil.CheckFor(b, 10*time.Second, func() error {
		if ok, why := g.linksReady(); !ok {
			return fmt.Errorf("%s", why)
		}
		return nil
	})
	return g
}
