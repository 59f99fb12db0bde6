package receipt

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// receiptsTo binds a client, as the gateway binds to an SMSC, to a test
// SMSC, and hands every receipt the client gets to b.Receive. send has
// the SMSC send a receipt for its id id with stat and returns the answer
// (nil for ESME_ROK).
func receiptsTo(t *testing.T, b *Book) (send func(id, stat string) error) {
	t.Helper()
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	c := smpp.NewClient(smpp.ClientConfig{Addr: smsc.Addr(), SystemID: "optgate", Password: "pw",
		Handler: smpp.HandlerFunc(func(r *smpp.Request) {
			rep, ok := Parse(r.PDU.(*smpp.DeliverSM))
			if !ok {
				r.Respond(smpp.StatusSysErr, nil)
				return
			}
			b.Receive(carrier, r, rep)
		})})
	c.Start()
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitBound(ctx, 1); err != nil {
		t.Fatal(err)
	}
	submit := &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")},
		Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550123")}, ShortMessage: []byte("hello")}}
	return func(id, stat string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return smsc.SendDeliver(ctx, "optgate", smpptest.Receipt(id, submit, stat, time.Now()))
	}
}

// A receipt whose mapping is in memory is delivered and answered by
// Deliver; one that overtook its mapping is answered at once, parked,
// and delivered by the Add that brings the mapping.
func TestReceiveFromMemory(t *testing.T) {
	b, rec := newBook(100, time.Minute)
	send := receiptsTo(t, b)
	want := target("a1")
	b.Add(carrier, "R1", want)
	if err := send("R1", "ACCEPTD"); err != nil {
		t.Fatalf("receipt refused: %v", err)
	}
	got := rec.deliveries()
	if len(got) != 1 || got[0].t != want || got[0].r.ID != "R1" || got[0].r.Stat != "ACCEPTD" {
		t.Fatalf("delivered %+v, want %+v with stat ACCEPTD", got, want)
	}
	if err := send("R2", "DELIVRD"); err != nil {
		t.Fatalf("an early receipt was refused: %v", err)
	}
	if n := len(rec.deliveries()); n != 1 {
		t.Fatalf("%d deliveries, want 1: the early receipt has no mapping yet", n)
	}
	b.Add(carrier, "R2", target("a2"))
	if got := rec.deliveries(); len(got) != 2 || got[1].t != target("a2") || got[1].r.Stat != "DELIVRD" {
		t.Fatalf("the parked receipt was not delivered by Add: %+v", got)
	}
	if c, p := rec.count("carrier", "correlated"), rec.count("carrier", "parked"); c != 1 || p != 1 {
		t.Fatalf("counted correlated %d, parked %d; want 1 and 1", c, p)
	}
}

// A receipt the memory book does not know is looked up in the store, off
// the session's goroutine, and delivered; its final state removes the
// mapping. One the store does not know either stays parked.
func TestReceiveFromStore(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	b1, _ := newBook(100, time.Minute)
	openStore(t, b1, db)
	want := target("b1")
	b1.Add(carrier, "S1", want)
	b1.CloseStore() // writes it

	b, rec := newBook(100, time.Minute) // as after a restart
	openStore(t, b, db)
	defer b.CloseStore()
	send := receiptsTo(t, b)
	if err := send("S1", "DELIVRD"); err != nil {
		t.Fatalf("receipt refused: %v", err)
	}
	got := rec.deliveries()
	if len(got) != 1 || got[0].t != want || got[0].r.Stat != "DELIVRD" {
		t.Fatalf("delivered %+v, want %+v", got, want)
	}
	c := b.Counters()
	if h := promtest.ToFloat64(c.Hit); h != 1 || rec.count("carrier", "correlated") != 1 {
		t.Fatalf("store hits %v, correlated %d; want 1 and 1", h, rec.count("carrier", "correlated"))
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if _, found, err := b.Stored(carrier, "S1"); found || err != nil {
			return errors.New("the final receipt left its mapping in the store")
		}
		return nil
	})
	if err := send("S2", "DELIVRD"); err != nil {
		t.Fatalf("an unknown receipt was refused: %v", err)
	}
	if m := promtest.ToFloat64(c.Miss); m != 1 || rec.count("carrier", "parked") != 1 || len(rec.deliveries()) != 1 {
		t.Fatalf("store misses %v, parked %d, deliveries %d; want 1, 1, 1", m, rec.count("carrier", "parked"), len(rec.deliveries()))
	}
	b.Add(carrier, "S2", target("b2")) // the mapping comes within the grace period
	if got := rec.deliveries(); len(got) != 2 || got[1].t != target("b2") {
		t.Fatalf("the parked receipt was not delivered by Add: %+v", got)
	}
}

// A store that fails a lookup has the SMSC send the receipt again
// (ESME_RX_T_APPN) rather than lose it.
func TestReceiveStoreErrorAsksRetry(t *testing.T) {
	db := openDB(t, t.TempDir())
	b, rec := newBook(100, time.Minute)
	openStore(t, b, db)
	defer b.CloseStore()
	send := receiptsTo(t, b)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	err := send("E1", "DELIVRD")
	var se *smpp.StatusError
	if !errors.As(err, &se) || se.Status != smpp.StatusXTAppn {
		t.Fatalf("answer %v, want ESME_RX_T_APPN", err)
	}
	if n := b.ExpireParked(time.Now().Add(time.Hour)); n != 0 || len(rec.deliveries()) != 0 {
		t.Fatalf("a receipt refused for retry stayed parked (%d) or was delivered (%d)", n, len(rec.deliveries()))
	}
}
