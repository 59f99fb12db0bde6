package smpptest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// esme binds an ESME to s. Its requests expire after a second: long enough
// for an answer on a loaded machine (only Ignore's request may expire),
// short for the test that waits for that expiry.
func esme(t *testing.T, s *Server) *ESME {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e, err := NewESME(ctx, smpp.ClientConfig{Addr: s.Addr(), SystemID: "acct", Password: "pw", Logger: quiet(),
		ThrottlePause: time.Millisecond, MaxRetries: 1, Conn: smpp.ConnConfig{RequestExpiry: time.Second, Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func sm(text string) *smpp.SubmitSM {
	return &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")},
		Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550100")}, ShortMessage: []byte(text), RegisteredDelivery: 1}}
}

func TestSimulatorScripts(t *testing.T) {
	s := NewServer(Config{Receipts: true, HexIDs: true, Logger: quiet()})
	defer s.Close()
	e := esme(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	id, err := e.Submit(ctx, sm("hello"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := s.NextSubmit(ctx)
	if err != nil || sub.MessageID != id || string(sub.PDU.ShortMessage) != "hello" {
		t.Fatalf("recorded submit %+v %v (id %s)", sub, err, id)
	}
	d, err := e.NextDeliver(ctx)
	if err != nil || !d.IsReceipt() {
		t.Fatalf("receipt: %v %v", d, err)
	}
	r, err := dlr.Parse(string(d.ShortMessage))
	if err != nil || r.ID != id || r.State != dlr.Delivered {
		t.Fatalf("receipt text %q: %+v %v", d.ShortMessage, r, err)
	}

	s.Fail(1, smpp.StatusInvDstAdr)
	if _, err := e.Submit(ctx, sm("x")); smpp.StatusOf(err) != smpp.StatusInvDstAdr {
		t.Fatalf("Fail: %v", err)
	}
	s.Nack(1)
	if _, err := e.Submit(ctx, sm("x")); smpp.StatusOf(err) != smpp.StatusSysErr {
		t.Fatalf("Nack: %v", err)
	}
	s.Throttle(5) // more than the client retries
	if _, err := e.Submit(ctx, sm("x")); smpp.StatusOf(err) != smpp.StatusThrottled {
		t.Fatalf("Throttle: %v", err)
	}
	s.Throttle(0)
	s.Ignore(1)
	if _, err := e.Submit(ctx, sm("x")); !errors.Is(err, smpp.ErrTimeout) {
		t.Fatalf("Ignore: %v", err)
	}
	s.SetLatency(func() time.Duration { return 50 * time.Millisecond })
	start := time.Now()
	if _, err := e.Submit(ctx, sm("slow")); err != nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("latency: %v after %s", err, time.Since(start))
	}
	s.SetLatency(nil)

	// MO: a long text arrives as concatenated parts.
	long := "Bonjour, je voudrais savoir si le poste est toujours disponible, et quels sont les horaires. Merci beaucoup pour votre réponse rapide, à bientôt !"
	if err := s.SendMO(ctx, "", "+15145550100", "+15145550199", long); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		d, err := e.NextDeliver(ctx)
		if err != nil {
			t.Fatalf("MO part %d: %v", i, err)
		}
		if d.IsReceipt() { // a receipt of an earlier submit, sent asynchronously
			i--
			continue
		}
		if d.ESMClass&smpp.ESMClassUDHI == 0 {
			t.Fatalf("MO part %d has no UDH", i)
		}
	}

	// Dropped connections: the ESME rebinds. A submit written on the
	// connection as it was dropped fails with an unknown outcome (it is
	// never resent silently), so the test sends again until the new bind
	// takes it.
	s.DropConnections()
	if err := e.WaitBound(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := e.Submit(ctx, sm("after drop"))
		if err == nil {
			break
		}
		if !errors.Is(err, smpp.ErrClosed) && !errors.Is(err, smpp.ErrNotBound) || ctx.Err() != nil {
			t.Fatalf("after drop: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSimulatorAuth(t *testing.T) {
	s := NewServer(Config{SystemID: "acct", Password: "pw", Logger: quiet()})
	defer s.Close()
	c := smpp.NewClient(smpp.ClientConfig{Addr: s.Addr(), SystemID: "acct", Password: "bad", ReconnectMin: time.Hour, Logger: quiet()})
	c.Start()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if c.WaitBound(ctx, 1) == nil {
		t.Fatal("bound with a wrong password")
	}
}
