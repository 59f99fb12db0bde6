package bench

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

func TestLoadStopsAtCount(t *testing.T) {
	m := newMiniSMSC(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := StartLoad(ctx, LoadConfig{Addr: m.Addr(), Binds: 3, Window: 32, Count: 5000,
		Suppressed: 1000, SuppressedFraction: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	r := l.Wait()
	testutil.RequireEqual(t, r.Sent, int64(5000), "sent")
	testutil.RequireEqual(t, r.Answered(), int64(5000), "answered")
	testutil.RequireEqual(t, m.submits.Load(), int64(5000), "submits at the SMSC")
	testutil.RequireEqual(t, r.Errors, int64(0), "errors")
	testutil.RequireEqual(t, r.Timeouts, int64(0), "timeouts")
	testutil.RequireEqual(t, r.Latency.TotalCount(), int64(5000), "latencies recorded")
	// 20% ± 3% went to the suppressed pool, refused with 0x401.
	if r.Refused < 700 || r.Refused > 1300 {
		t.Fatalf("refused %d, want about 1000", r.Refused)
	}
	testutil.RequireEqual(t, r.Statuses["0x00000401 "+"ESME_ROPTEDOUT"]+r.Statuses[statusName(0x401)], r.Refused, "refused as opted out")
}

func TestLoadStopsAtDuration(t *testing.T) {
	m := newMiniSMSC(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	l, err := StartLoad(ctx, LoadConfig{Addr: m.Addr(), Binds: 2, Window: 16, Duration: 500 * time.Millisecond, Rate: 2000})
	if err != nil {
		t.Fatal(err)
	}
	r := l.Wait()
	el := time.Since(start)
	if el > 3*time.Second {
		t.Fatalf("load ran %s for a 500ms duration", el)
	}
	// Paced at 2000/s for 0.5s: about 1000.
	if r.Sent < 600 || r.Sent > 1400 {
		t.Fatalf("sent %d at 2000/s for 500ms", r.Sent)
	}
	testutil.RequireEqual(t, r.Answered(), r.Sent, "answered")
}

func TestLoadReceipts(t *testing.T) {
	m := newMiniSMSC(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := StartLoad(ctx, LoadConfig{Addr: m.Addr(), Binds: 2, Window: 16, Count: 300, Receipts: true})
	if err != nil {
		t.Fatal(err)
	}
	r := l.Wait()
	testutil.RequireEqual(t, r.Accepted, int64(300), "accepted")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if l.Counters().ReceiptsMatched.Load() != 300 {
			return errorf("matched %d receipts", l.Counters().ReceiptsMatched.Load())
		}
		return nil
	})
}

func TestLoadUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err := StartLoad(context.Background(), LoadConfig{Addr: addr, Count: 10})
	if err == nil || !strings.Contains(err.Error(), "cannot connect") {
		t.Fatalf("want a cannot-connect error, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("took too long to fail")
	}
}

func TestLoadBadConfig(t *testing.T) {
	for _, c := range []LoadConfig{
		{},
		{Addr: "127.0.0.1:1"},
		{Addr: "127.0.0.1:1", Count: 1, SuppressedFraction: 0.5},
		{Addr: "127.0.0.1:1", Count: 1, Window: 70000},
	} {
		if _, err := StartLoad(context.Background(), c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
