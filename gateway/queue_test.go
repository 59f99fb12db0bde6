package gateway

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/gateway/outbox"
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

// queuedFor counts the queued items of kind that belong to tenant.
func queuedFor(g *Gateway, kind, tenant string) int {
	return g.outbox.Count(kind, func(it *outbox.Item) bool { return it.Tenant == tenant })
}

// queued counts the items of a kind in the outbox.
func queued(g *Gateway, kind string) int {
	return g.outbox.Count(kind, nil)
}

// BenchmarkGatewayMTStore: BenchmarkGatewayMT's path for an ack: store
// account: each submit_sm is answered once it is synced in the outbox, and
// the queue's sender takes it on to the SMSC; the timer runs until every
// message reached the SMSC, so allocs/op count the whole queued path
// (put, dispatch, send, settle).
func BenchmarkGatewayMTStore(b *testing.B) {
	smsc := smpptest.NewServer(smpptest.Config{NoRecord: true, Window: 1024})
	defer smsc.Close()
	y := benchMTYAML(b.TempDir(), smsc.Addr(), ", ack: store")
	g := startBenchGateway(b, y)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cn := benchConn(ctx, b, g)
	const pool = 4096
	pdus := make([]*smpp.SubmitSM, pool)
	for i := range pdus {
		pdus[i] = &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: fmt.Appendf(nil, "1514%07d", i)}, ShortMessage: []byte("Your interview is confirmed for Tuesday at 10:00")}}
	}
	var failed atomic.Int64
	done := func(r smpp.Result) {
		if r.Err != nil {
			failed.Add(1)
		}
	}
	base := smsc.Submits()
	start := benchSubmitAll(ctx, b, cn, pdus, done)
	if failed.Load() > 0 {
		b.Fatalf("%d submits not stored", failed.Load())
	}
	testutil.CheckFor(b, 60*time.Second, func() error {
		if n := smsc.Submits() - base; n < int64(b.N) {
			return fmt.Errorf("%d of %d at the SMSC", n, b.N)
		}
		return nil
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
