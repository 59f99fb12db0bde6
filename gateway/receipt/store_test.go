package receipt

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/optgate/optgate/internal/testutil"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/optgate/optgate/smpp/dlr"
)

// storedTargets are targets of each origin the store keeps.
var storedTargets = map[string]Target{
	"A1": target("18c2f0a1b2c3d4e5"),
	"A2": {MsgID: "2", Tenant: 2, Origin: originHTTP, From: "Globex", To: "+447700900123", Part: 2, Parts: 3},
	"A3": {MsgID: "3", Origin: 3, To: "+15145550123", Part: 1, Parts: 1},
}

// Mappings written by one book (and flushed by CloseStore) are found by a
// new book on the reopened store, as after a restart.
func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	b, _ := newBook(100, time.Minute)
	c := openStore(t, b, db)
	b.SetPersistDelay(time.Hour) // only CloseStore writes them
	for id, tg := range storedTargets {
		b.Add(carrier, id, tg)
	}
	for id, want := range storedTargets { // pending mappings are found too
		testutil.CheckFor(t, 10*time.Second, func() error {
			if got, found, err := b.Stored(carrier, id); err != nil || !found || got != want {
				return fmt.Errorf("pending %s: %+v found %v err %v, want %+v", id, got, found, err, want)
			}
			return nil
		})
	}
	b.CloseStore()
	if n := promtest.ToFloat64(b.Counters().Written); n != float64(len(storedTargets)) {
		t.Fatalf("%v mappings written, want %d", n, len(storedTargets))
	}
	c.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	b2, _ := newBook(100, time.Minute)
	openStore(t, b2, openDB(t, dir))
	defer b2.CloseStore()
	for id, want := range storedTargets {
		if b2.Remembers(carrier, id) {
			t.Fatalf("a new book remembers %s", id)
		}
		got, found, err := b2.Stored(carrier, id)
		if err != nil || !found || got != want {
			t.Fatalf("after reopening, %s: %+v found %v err %v, want %+v", id, got, found, err, want)
		}
	}
	if _, found, _ := b2.Stored(SMSC{Name: "other"}, "A1"); found {
		t.Fatal("another SMSC's id found a mapping")
	}
}

// A mapping whose final receipt comes while it waits to be written is
// never written, nor deleted.
func TestStoreQuickFinalNeverWritten(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	b, _ := newBook(100, time.Minute)
	openStore(t, b, db)
	b.SetPersistDelay(time.Hour)
	b.Add(carrier, "Q1", target("1"))
	b.Add(carrier, "Q2", target("2"))
	if _, found, _ := b.lookupOrPark(carrier, report("Q1", dlr.Delivered), true); !found {
		t.Fatal("the mapping is not in the book")
	}
	b.CloseStore()
	c := b.Counters()
	if w, u := promtest.ToFloat64(c.Written), promtest.ToFloat64(c.Unwritten); w != 1 || u != 1 {
		t.Fatalf("written %v, unwritten %v; want 1 and 1", w, u)
	}
	onDisk := func(id string) bool {
		found := false
		err := db.View(func(txn *badger.Txn) error {
			_, err := txn.Get(StoreKey(carrier, id))
			found = err == nil
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	if onDisk("Q1") || !onDisk("Q2") {
		t.Fatalf("on disk: Q1 %v (want false), Q2 %v (want true)", onDisk("Q1"), onDisk("Q2"))
	}
}

// The stored form reads back as written; a cut, altered or foreign value,
// or one naming what the configuration no longer has, does not decode.
func TestStoreDecode(t *testing.T) {
	b, _ := newBook(100, time.Minute)
	for id, in := range storedTargets {
		v := b.Encode(in)
		if out, ok := b.Decode(v); !ok || out != in {
			t.Fatalf("%s: decoded %+v (%v), want %+v", id, out, ok, in)
		}
		for n := range len(v) {
			if _, ok := b.Decode(v[:n]); ok {
				t.Fatalf("%s: a value cut to %d of %d bytes decoded", id, n, len(v))
			}
		}
	}
	v := b.Encode(storedTargets["A1"])
	longTo := append([]byte(nil), v...)
	longTo[len(v)-len(storedTargets["A1"].To)-1] = 0x7f // the length of to
	bad := map[string][]byte{
		"empty":           nil,
		"unknown format":  append([]byte{2}, v[1:]...),
		"overlong id":     append([]byte{receiptFormat}, bytes.Repeat([]byte{0xff}, 11)...),
		"length past end": longTo,
		"noise":           []byte("rc/carrier\x00AB12"),
	}
	for name, val := range bad {
		if out, ok := b.Decode(val); ok {
			t.Fatalf("%s: decoded %+v", name, out)
		}
	}
	gone := []struct {
		name string
		t    Target
	}{
		{"SMPP without account", Target{MsgID: "1", Tenant: 1, Origin: originSMPP}},
		{"SMPP without tenant", Target{MsgID: "1", Account: 1, Origin: originSMPP}},
		{"HTTP without tenant", Target{MsgID: "1", Origin: originHTTP}},
	}
	for _, c := range gone {
		if out, ok := b.Decode(b.Encode(c.t)); ok {
			t.Fatalf("%s: decoded %+v", c.name, out)
		}
	}
	other := New(Config{Names: testNames{tenants: []string{"initech"}, accounts: names.accounts}})
	if out, ok := other.Decode(v); ok {
		t.Fatalf("a mapping of a tenant the configuration no longer has decoded: %+v", out)
	}
	reordered := New(Config{Names: testNames{tenants: []string{"globex", "acme"}, accounts: names.accounts}})
	if out, ok := reordered.Decode(v); !ok || out.Tenant != 2 {
		t.Fatalf("with the tenants reordered: %+v (%v), want acme at index 2", out, ok)
	}
}

// FuzzStoreDecode: no value makes Decode panic, and what decodes encodes
// to a value that decodes the same.
func FuzzStoreDecode(f *testing.F) {
	b, _ := newBook(100, time.Minute)
	for _, tg := range storedTargets {
		f.Add(b.Encode(tg))
	}
	f.Add([]byte{receiptFormat})
	f.Fuzz(func(t *testing.T, v []byte) {
		out, ok := b.Decode(v)
		if !ok {
			return
		}
		again, ok := b.Decode(b.Encode(out))
		if !ok || again != unpack(pack(out)) {
			t.Fatalf("%x decoded to %+v, which re-decodes to %+v (%v)", v, out, again, ok)
		}
	})
}
