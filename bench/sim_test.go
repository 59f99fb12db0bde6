package bench

import (
	"context"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
)

func TestSimThrottleEvery(t *testing.T) {
	sim, err := StartSim(SimConfig{ThrottleEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := StartLoad(ctx, LoadConfig{Addr: sim.Addr(), Binds: 2, Window: 8, Count: 1000})
	if err != nil {
		t.Fatal(err)
	}
	r := l.Wait()
	testutil.RequireEqual(t, r.Refused, int64(100), "refused")
	testutil.RequireEqual(t, r.Statuses[statusName(uint32(smpp.StatusThrottled))], int64(100), "throttled")
	testutil.RequireEqual(t, sim.Throttled(), int64(100), "simulator's count")
	testutil.RequireEqual(t, sim.Submits(), int64(900), "accepted submits")
}

func TestSimLatency(t *testing.T) {
	sim, err := StartSim(SimConfig{Latency: "fixed:20ms"})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := StartLoad(ctx, LoadConfig{Addr: sim.Addr(), Binds: 1, Window: 4, Count: 20})
	if err != nil {
		t.Fatal(err)
	}
	r := l.Wait()
	if p50 := r.Latency.ValueAtQuantile(50); p50 < 20000 {
		t.Fatalf("p50 %dµs with a fixed 20ms latency", p50)
	}
}

func TestSimMOMixAndConfirmations(t *testing.T) {
	sim, err := StartSim(SimConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A bound ESME that only receives (and acks) MOs.
	l, err := StartLoad(ctx, LoadConfig{Addr: sim.Addr(), Binds: 2, Window: 4, Rate: 1, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Stop(); l.Wait() }()
	g, err := sim.StartMO(ctx, MOConfig{Account: "bench", Count: 300, Duration: 10 * time.Second, Window: 16})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	case <-ctx.Done():
		t.Fatal("MO generator did not finish")
	}
	testutil.RequireEqual(t, g.Acked.Load(), int64(300), "MOs acked")
	testutil.RequireEqual(t, l.Counters().MOs.Load(), int64(300), "MOs seen by the ESME")
	testutil.RequireEqual(t, g.Errors.Load(), int64(0), "MO errors")

	// A reply to a handset counts as a confirmation; an MT to a recipient does not.
	e := smpp.NewClient(smpp.ClientConfig{Addr: sim.Addr(), SystemID: "x", Password: "y"})
	e.Start()
	defer e.Close()
	if err := e.WaitBound(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{HandsetNumber(5), AllowedNumber(5)} {
		if _, err := e.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(to[1:])},
			ShortMessage: []byte("You are unsubscribed")}}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.RequireEqual(t, sim.Confirmations(), int64(1), "confirmations")
}

func TestParseMOMix(t *testing.T) {
	m, err := ParseMOMix("STOP:5, see you tomorrow:2,ARRÊT:1.5")
	if err != nil {
		t.Fatal(err)
	}
	testutil.RequireEqual(t, len(m), 3, "entries")
	testutil.RequireEqual(t, m[1].Text, "see you tomorrow", "text with spaces")
	testutil.RequireEqual(t, m[2].Weight, 1.5, "weight")
	for _, bad := range []string{"", "STOP", "STOP:0", "STOP:x", ":3"} {
		if _, err := ParseMOMix(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestNumberPools(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		for _, n := range []string{SuppressedNumber(i), AllowedNumber(i), HandsetNumber(i)} {
			if len(n) != 12 || n[0] != '+' || n[1] != '1' {
				t.Fatalf("bad number %q", n)
			}
			if seen[n] {
				t.Fatalf("%q in two pools", n)
			}
			seen[n] = true
		}
	}
	if !isHandset([]byte(HandsetNumber(7)[1:])) || isHandset([]byte(SuppressedNumber(7)[1:])) {
		t.Fatal("isHandset is wrong")
	}
	testutil.RequireEqual(t, SuppressedNumber(MaxSuppressed-1) != SuppressedNumber(0), true, "pool spans MaxSuppressed")
}
