package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// Graceful shutdown with an upstream bound and submits in flight at a slow
// SMSC: every in-flight submit is answered (accepted), then the upstream
// is unbound (not dropped), and the stores are closed.
func TestGracefulShutdown(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	smsc.SetLatency(func() time.Duration { return 300 * time.Millisecond })
	dir := t.TempDir()
	env := startEnv(t, configYAML(dir, smsc.Addr(), "", ""), smsc, dir)
	env.esme.Close()
	env.esme = nil
	var reason atomic.Value
	c := smpp.NewClient(smpp.ClientConfig{Addr: env.g.SMPPAddr(), SystemID: "acme", Password: "acmepw", ReconnectMin: time.Hour,
		Conn: smpp.ConnConfig{OnClose: func(_ *smpp.Conn, r smpp.CloseReason, _ error) { reason.Store(r) }}})
	c.Start()
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitBound(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]int{}
	for i := range n {
		wg.Add(1)
		c.SubmitAsync(ctx, &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(handset[1:])}, ShortMessage: fmt.Appendf(nil, "in flight %d", i)}},
			func(_ string, err error) {
				mu.Lock()
				results[fmt.Sprint(err)]++
				mu.Unlock()
				wg.Done()
			})
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if s := smsc.Submits(); s < n {
			return fmt.Errorf("%d of %d at the SMSC", s, n)
		}
		return nil
	})
	g := env.g
	env.g = nil // shut down here, not in the cleanup
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	if results["<nil>"] != n {
		t.Fatalf("in-flight submits at shutdown: %v, want all %d accepted", results, n)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if r, _ := reason.Load().(smpp.CloseReason); r != smpp.CloseUnbound {
			return fmt.Errorf("upstream session ended %v, want unbound", r)
		}
		return nil
	})
	if !g.db.IsClosed() {
		t.Fatal("gateway store still open")
	}
	if _, err := g.consent.Check("acme", ChannelSMS, ourNumber, handset, consent.CategoryTransactional); err == nil {
		t.Fatal("consent store still answers after shutdown")
	}
}
