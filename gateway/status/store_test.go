package status

import (
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/internal/groupcommit"
)

// openTestStore opens a real Badger store in dir and a book writing to it.
func openTestStore(tb testing.TB, dir string) (*Book, func()) {
	tb.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		tb.Fatal(err)
	}
	c := groupcommit.New(db, groupcommit.Options{})
	b := NewBook(acme{}, 1024)
	b.OpenStore(db, c, time.Hour, nil, slog.New(slog.DiscardHandler))
	closed := false
	closeAll := func() {
		if closed {
			return
		}
		closed = true
		b.CloseStore()
		c.Close()
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	}
	tb.Cleanup(closeAll)
	return b, closeAll
}

// Every field of a record comes back from the store, in a new book over
// the same files: states and reasons by name, the tenant by id.
func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	b, closeStore := openTestStore(t, dir)
	base := uint64(time.Now().UnixNano())
	at := time.Unix(0, time.Now().UnixNano()).UTC()
	want := []MessageStatus{
		{ID: hexID(base), Tenant: "acme", Channel: consent.ChannelSMS, To: "+15145550100", State: StateAccepted, Updated: at},
		{ID: hexID(base + 1), Tenant: "acme", Channel: consent.ChannelWhatsApp, To: "+447700900000", State: StateBlocked,
			Reason: ReasonMarketingOptOut, Updated: at},
		{ID: hexID(base + 2), Tenant: "acme", Channel: consent.ChannelSMS, To: "+15145550102", State: StateRejected,
			Reason: ReasonInvalidNumber, Updated: at},
		// Another bucket (64 ids each).
		{ID: hexID(base + 200), Tenant: "acme", Channel: consent.ChannelSMS, To: "+15145550103", State: StateFailed,
			Reason: ReasonCarrier, Updated: at},
	}
	for _, s := range want {
		b.Put(s)
	}
	// A receipt with the carrier's error moves the first one on.
	b.Update(want[0].ID, StateUndeliverable, CarrierReason("err:0B"))
	got0, _ := b.Get(want[0].ID)
	want[0] = got0
	if got0.State != StateUndeliverable || got0.Reason.String() != "err:0B" {
		t.Fatalf("after the receipt: %+v", got0)
	}
	closeStore()

	b, _ = openTestStore(t, dir)
	for _, w := range want {
		got, ok := b.Get(w.ID)
		if !ok || got != w {
			t.Errorf("after reopening: %+v %v, want %+v", got, ok, w)
		}
		if s, ok := b.Stored(w.ID); !ok || s != w {
			t.Errorf("Stored: %+v %v, want %+v", s, ok, w)
		}
	}
	if _, ok := b.Get(hexID(base + 3)); ok {
		t.Error("an id never written found")
	}
	// A state change of a stored message merges into the stored record.
	b.Update(want[1].ID, StateDelivered, ReasonNone)
	if got, _ := b.Get(want[1].ID); got.State != StateDelivered || got.To != want[1].To || got.Channel != consent.ChannelWhatsApp {
		t.Errorf("merged: %+v", got)
	}
}

func TestDecodeBadBytes(t *testing.T) {
	r := rec{id: 7, at: 42, tenant: 1, state: StateDelivered, reason: ReasonCarrier, channel: chanWhatsApp, toLen: 12}
	copy(r.to[:], "+15145550100")
	good := encode(acme{}, nil, r)
	if got, ok := decode(acme{}, 7, good); !ok || got != r {
		t.Fatalf("round trip: %+v %v, want %+v", got, ok, r)
	}
	// Every cut is refused, never read past.
	for n := range len(good) {
		if _, ok := decode(acme{}, 7, good[:n]); ok {
			t.Errorf("cut at %d of %d read", n, len(good))
		}
	}
	bad := func(name string, edit func(v []byte) []byte) {
		t.Helper()
		v := edit(append([]byte(nil), good...))
		if _, ok := decode(acme{}, 7, v); ok {
			t.Errorf("%s: read", name)
		}
	}
	bad("version", func(v []byte) []byte { v[0] = 2; return v })
	bad("tenant no longer configured", func(v []byte) []byte { v[11] = 'X'; return v }) // "acme" → "Xcme"
	bad("state that is none", func(v []byte) []byte { v[16] = 'D'; return v })          // "delivered" → "Delivered"
	bad("length past the end", func(v []byte) []byte { v[10] = 200; return v })

	// A bucket whose tail is damaged keeps the records before it.
	entry := append([]byte{byte(r.id)}, good...)
	if n, ok := entryLen(entry); !ok || n != len(entry) {
		t.Fatalf("entryLen %d %v, want %d", n, ok, len(entry))
	}
	for n := range len(entry) {
		if _, ok := entryLen(entry[:n]); ok {
			t.Errorf("a cut entry (%d of %d) has a length", n, len(entry))
		}
	}
}

// FuzzDecode: no value read from the store panics or reads past its end.
func FuzzDecode(f *testing.F) {
	r := rec{id: 7, at: 42, tenant: 1, state: StateAccepted, toLen: 3}
	f.Add(encode(acme{}, nil, r))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, v []byte) {
		if n, ok := entryLen(v); ok && n > len(v) {
			t.Fatalf("entry of %d in %d bytes", n, len(v))
		}
		if got, ok := decode(acme{}, 7, v); ok {
			if again, ok := decode(acme{}, 7, encode(acme{}, nil, got)); !ok || again != got {
				t.Fatalf("%+v reads back as %+v", got, again)
			}
		}
	})
}

// BenchmarkStoreWrite is the writer's cost per message status (in
// batches of 1024, through the group committer): what BenchmarkGatewayMT
// does not see when it ends within a linger.
func BenchmarkStoreWrite(b *testing.B) {
	book, _ := openTestStore(b, b.TempDir())
	w := writer{s: book.store, last: map[uint64]int{}}
	batch := make([]rec, 1024)
	for i := range batch {
		batch[i] = rec{id: uint64(i + 1), at: time.Now().UnixNano(), tenant: 1, state: StateAccepted, toLen: 12}
		copy(batch[i].to[:], "+15145550100")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(batch) {
		w.write(batch)
	}
}
