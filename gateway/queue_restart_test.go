package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// smscProxy is a listener the test keeps for the whole test: the gateway's
// config points at it, and it forwards to whichever SMSC is current, or
// drops connections during an outage. So an SMSC can come back without
// reusing a port.
type smscProxy struct {
	ln      net.Listener
	mu      sync.Mutex
	backend string     // "" during an outage
	conns   []net.Conn // guarded by mu
	wg      sync.WaitGroup
}

func newSMSCProxy(t *testing.T) *smscProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &smscProxy{ln: ln}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *smscProxy) addr() string { return p.ln.Addr().String() }

func (p *smscProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		be := p.backend
		p.mu.Unlock()
		if be == "" {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", be)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
		go func() { defer p.wg.Done(); io.Copy(c, s); c.Close() }()
	}
}

// set points the proxy at backend ("" for an outage, which also drops the
// connections open).
func (p *smscProxy) set(backend string) {
	p.mu.Lock()
	p.backend = backend
	var drop []net.Conn
	if backend == "" {
		drop, p.conns = p.conns, nil
	}
	p.mu.Unlock()
	for _, c := range drop {
		c.Close()
	}
}

func (p *smscProxy) close() {
	p.ln.Close()
	p.set("")
	p.wg.Wait()
}

// ack: store through an SMSC outage and a gateway restart: messages
// queued while the SMSC is down, the gateway restarted on the same store
// while they wait, then the SMSC back: every message is delivered, and
// duplicates (at least once) are counted and bounded.
func TestE2EStoreAckSurvivesOutageAndRestart(t *testing.T) {
	proxy := newSMSCProxy(t)
	smsc1 := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc1.Close)
	proxy.set(smsc1.Addr())
	dir := t.TempDir()
	y := configYAML(dir, proxy.addr(), "", "  - {system_id: acmeq, password: acmepw, tenant: acme, ack: store}\n")
	y += "queue: {max_backoff: 100ms}\n"
	env := startEnv(t, y, smsc1, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := env.bindAs("acmeq", "acmepw")
	proxy.set("") // outage
	smsc1.Close()
	testutil.CheckFor(t, 20*time.Second, func() error {
		if env.g.links["carrier"].up.Load() != 0 {
			return fmt.Errorf("carrier still bound")
		}
		return nil
	})
	const n = 40
	for i := 0; i < n; i++ {
		sm := &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(handset[1:])}, ShortMessage: fmt.Appendf(nil, "queued %d", i)}}
		if _, err := q.Submit(ctx, sm); err != nil {
			t.Fatalf("submit %d during the outage: %v", i, err)
		}
	}
	q.Close()
	if got := queued(env.g, "mt"); got != n {
		t.Fatalf("%d of %d queued before the restart", got, n)
	}
	// Restart on the same store while the SMSC is still down.
	env.stop()
	cfg, err := ParseConfig([]byte(y), "test.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	sl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	g2, err := New(cfg, Options{SMPPListener: sl, HTTPListener: hl})
	if err != nil {
		t.Fatal(err)
	}
	if err := g2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		g2.Shutdown(sctx)
	})
	if got := queued(g2, "mt"); got != n {
		t.Fatalf("%d of %d queued after the restart", got, n)
	}
	// The SMSC comes back, behind the same address.
	smsc2 := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc2.Close)
	proxy.set(smsc2.Addr())
	seen := map[string]int{}
	total := 0
	for len(seen) < n {
		s, err := smsc2.NextSubmit(ctx)
		if err != nil {
			t.Fatalf("only %d of %d delivered after the outage and restart: %v", len(seen), n, err)
		}
		if !strings.HasPrefix(string(s.PDU.ShortMessage), "queued ") {
			continue
		}
		seen[string(s.PDU.ShortMessage)]++
		total++
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		if got := queued(g2, "mt"); got != 0 {
			return fmt.Errorf("%d still queued", got)
		}
		return nil
	})
	// Drain what else came (a duplicate would come by now: nothing is left
	// to send).
	for {
		dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		s, err := smsc2.NextSubmit(dctx)
		dcancel()
		if err != nil {
			break
		}
		if strings.HasPrefix(string(s.PDU.ShortMessage), "queued ") {
			seen[string(s.PDU.ShortMessage)]++
			total++
		}
	}
	dups := total - n
	t.Logf("%d messages, %d duplicates", n, dups)
	// Nothing was written to an SMSC before the restart, so nothing should
	// be sent twice; at least once allows some, never more than n.
	if dups < 0 || dups > n {
		t.Fatalf("%d duplicates for %d messages", dups, n)
	}
}
