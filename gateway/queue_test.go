package gateway

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// ack: store is sent asynchronously: with an SMSC answering after 50 ms,
// 2,000 stored messages all reach it exactly once, and more than the old
// 16 workers' worth are in flight at once (counted at the simulator).
func TestStoreAckQueueSendsAsync(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{NoRecord: true})
	t.Cleanup(smsc.Close)
	var (
		mu      sync.Mutex
		seen    = map[string]int{}
		cur     atomic.Int64
		maxSeen atomic.Int64
		nextID  atomic.Int64
	)
	smsc.OnPDU(func(r *smpp.Request) bool {
		sm, ok := r.PDU.(*smpp.SubmitSM)
		if !ok {
			return false
		}
		text := string(sm.ShortMessage)
		mu.Lock()
		seen[text]++
		mu.Unlock()
		n := cur.Add(1)
		for {
			m := maxSeen.Load()
			if n <= m || maxSeen.CompareAndSwap(m, n) {
				break
			}
		}
		id := strconv.FormatInt(nextID.Add(1), 10)
		time.AfterFunc(50*time.Millisecond, func() {
			cur.Add(-1)
			r.Respond(smpp.StatusOK, &smpp.SubmitSMResp{MessageID: []byte(id)})
		})
		return true
	})
	dir := t.TempDir()
	y := configYAML(dir, smsc.Addr(), "", "  - {system_id: acmeq, password: acmepw, tenant: acme, ack: store, window: 512}\n")
	env := startEnv(t, y, smsc, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q := env.bindAs("acmeq", "acmepw", func(c *smpp.ClientConfig) { c.Conn = smpp.ConnConfig{Window: 512} })
	const n = 2000
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range n {
		wg.Add(1)
		sm := &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(handset[1:])}, ShortMessage: fmt.Appendf(nil, "queued %d", i)}}
		q.SubmitAsync(ctx, sm, func(_ string, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d submits not stored", failed.Load())
	}
	testutil.CheckFor(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) < n {
			return fmt.Errorf("%d of %d at the SMSC", len(seen), n)
		}
		return nil
	})
	testutil.CheckFor(t, 30*time.Second, func() error {
		if d := queued(env.g, "mt"); d != 0 {
			return fmt.Errorf("%d still queued", d)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for text, c := range seen {
		if c != 1 {
			t.Errorf("%q reached the SMSC %d times", text, c)
		}
	}
	if m := maxSeen.Load(); m <= 16 {
		t.Fatalf("at most %d submits in flight at the SMSC: the queue sender waits for each answer", m)
	}
	t.Logf("at most %d in flight", maxSeen.Load())
}

// queued counts the items of a kind in the outbox.
// queuedFor counts the queued items of kind that belong to tenant.
func queuedFor(g *Gateway, kind, tenant string) int {
	n := 0
	g.outbox.scan(g.outbox.kinds[kind], time.Now().Add(24*time.Hour*365), func(it *outItem, _ []byte) bool {
		if it.Tenant == tenant {
			n++
		}
		return true
	})
	return n
}

func queued(g *Gateway, kind string) int {
	n := 0
	g.outbox.scan(g.outbox.kinds[kind], time.Now().Add(24*time.Hour*365), func(*outItem, []byte) bool { n++; return true })
	return n
}
