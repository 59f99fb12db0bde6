package receipt

import (
	"strconv"
	"testing"
	"time"

	"github.com/optgate/optgate/smpp/dlr"
)

var carrier = SMSC{Name: "carrier", IDBase: dlr.Same}

func report(id string, st dlr.State) Report {
	return Report{ID: id, State: st, Stat: st.Stat(), Err: "000", Done: time.Unix(1700000000, 0)}
}

// A receipt finds the mapping of its SMSC's id, in the id form each side
// uses; an intermediate receipt keeps it, a final one removes it.
func TestBookLookup(t *testing.T) {
	hexDec := SMSC{Name: "hexdec", IDBase: dlr.RespHexDLRDec}
	for _, c := range []struct {
		name           string
		s              SMSC
		respID, dlrID  string
		wantFound      bool
		otherSMSCFinds bool
	}{
		{"same id", carrier, "AB12", "AB12", true, false},
		{"case and zeros", carrier, "00ab12", "AB12", true, false},
		{"hex resp, decimal receipt", hexDec, "1F", "31", true, false},
		{"hex resp, hex receipt", hexDec, "1F", "1F", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, _ := newBook(100, time.Minute)
			want := target("18c2f0a1b2c3d4e5")
			b.Add(c.s, c.respID, want)
			got, found, _ := b.lookupOrPark(c.s, report(c.dlrID, dlr.Enroute), false)
			if found != c.wantFound || (found && got != want) {
				t.Fatalf("lookup %q after %q: %+v, found %v; want found %v", c.dlrID, c.respID, got, found, c.wantFound)
			}
			if !c.wantFound {
				return
			}
			if _, found, _ := b.lookupOrPark(SMSC{Name: "other", IDBase: c.s.IDBase}, report(c.dlrID, dlr.Delivered), true); found {
				t.Fatal("another SMSC's receipt found the mapping")
			}
			if _, found, _ := b.lookupOrPark(c.s, report(c.dlrID, dlr.Delivered), true); !found {
				t.Fatal("an intermediate receipt removed the mapping")
			}
			if _, found, parked := b.lookupOrPark(c.s, report(c.dlrID, dlr.Delivered), true); found || !parked {
				t.Fatalf("after the final receipt: found %v parked %v, want parked", found, parked)
			}
		})
	}
}

// Targets are kept as given, numbers up to 20 bytes and parts up to 255.
func TestBookPack(t *testing.T) {
	in := Target{MsgID: "ffffffffffffffff", Tenant: 2, Account: 0, Origin: originHTTP, From: "Acme", To: "+123456789012345678", Part: 3, Parts: 7}
	if out := unpack(pack(in)); out != in {
		t.Fatalf("unpack(pack(%+v)) = %+v", in, out)
	}
	long := Target{MsgID: "1", From: "123456789012345678901234", Part: 300, Parts: 300}
	out := unpack(pack(long))
	if out.From != "12345678901234567890" || out.Part != 255 || out.Parts != 255 {
		t.Fatalf("a long target packed to %+v", out)
	}
}

// A receipt that overtakes its submit_sm_resp is parked and delivered by
// the Add that brings its mapping; a final one leaves no mapping behind,
// an intermediate one does.
func TestBookParkThenAdd(t *testing.T) {
	for _, final := range []bool{false, true} {
		b, rec := newBook(100, time.Minute)
		r := report("77", dlr.Accepted)
		if final {
			r = report("77", dlr.Delivered)
		}
		if _, found, parked := b.lookupOrPark(carrier, r, final); found || !parked {
			t.Fatalf("unknown receipt: found %v parked %v, want parked", found, parked)
		}
		if n := len(rec.deliveries()); n != 0 {
			t.Fatalf("%d deliveries before the mapping came", n)
		}
		want := target("abc")
		b.Add(carrier, "77", want)
		got := rec.deliveries()
		if len(got) != 1 || got[0].t != want || got[0].r != r {
			t.Fatalf("final %v: delivered %+v, want %+v with %+v", final, got, want, r)
		}
		if b.Remembers(carrier, "77") == final {
			t.Fatalf("final %v: book remembers the mapping: %v", final, !final)
		}
		if n := b.ExpireParked(time.Now().Add(time.Hour)); n != 0 {
			t.Fatalf("%d receipts still parked after Add delivered them", n)
		}
	}
}

// Parked receipts expire after the grace period, except while the store
// is asked about them; unpark takes one once.
func TestBookParkExpireUnpark(t *testing.T) {
	b, rec := newBook(100, time.Minute)
	for _, id := range []string{"1", "2", "3"} {
		if _, _, parked := b.lookupOrPark(carrier, report(id, dlr.Delivered), true); !parked {
			t.Fatalf("receipt %s not parked", id)
		}
	}
	if n := b.ExpireParked(time.Now()); n != 0 {
		t.Fatalf("%d receipts expired within the grace period", n)
	}
	k2, k3 := b.key(carrier, "2", true), b.key(carrier, "3", true)
	if !b.markLookup(k2, true) {
		t.Fatal("markLookup did not find a parked receipt")
	}
	if !b.unpark(k3) || b.unpark(k3) {
		t.Fatal("unpark must take a parked receipt exactly once")
	}
	if n := b.ExpireParked(time.Now().Add(2 * time.Minute)); n != 1 {
		t.Fatalf("%d receipts expired, want 1 (one is being looked up, one unparked)", n)
	}
	if !b.markLookup(k2, false) {
		t.Fatal("the receipt being looked up is gone")
	}
	if n := b.ExpireParked(time.Now().Add(2 * time.Minute)); n != 1 {
		t.Fatalf("%d receipts expired once the lookup ended, want 1", n)
	}
	b.Add(carrier, "1", target("a"))
	if n := len(rec.deliveries()); n != 0 {
		t.Fatalf("an expired receipt was delivered (%d)", n)
	}
}

// The book holds two generations of max/2 mappings, and forgets one older
// than its TTL.
func TestBookRotation(t *testing.T) {
	b, _ := newBook(4, time.Minute)
	for _, id := range []string{"1", "2", "3", "4"} {
		b.Add(carrier, id, target(id))
	}
	if !b.Remembers(carrier, "1") || !b.Remembers(carrier, "4") {
		t.Fatal("two generations of two should hold four mappings")
	}
	b.Add(carrier, "5", target("5"))
	if b.Remembers(carrier, "1") || b.Remembers(carrier, "2") {
		t.Fatal("the oldest generation was kept past max")
	}
	if !b.Remembers(carrier, "3") || !b.Remembers(carrier, "5") {
		t.Fatal("recent mappings were forgotten")
	}
	b.mu.Lock()
	b.rotateLocked(time.Now().Add(2 * time.Hour)) // past the TTL of the hour
	b.rotateLocked(time.Now().Add(4 * time.Hour))
	b.mu.Unlock()
	if b.Remembers(carrier, "5") {
		t.Fatal("a mapping older than the TTL is still in the book")
	}
}

// The parking lot is bounded: past it a receipt is neither found nor
// parked.
func TestBookParkBound(t *testing.T) {
	b, _ := newBook(100, time.Minute)
	b.mu.Lock()
	for i := range 100000 {
		b.parked[uint64(i)] = parkedReceipt{at: time.Now()}
	}
	b.mu.Unlock()
	if _, found, parked := b.lookupOrPark(carrier, report("x", dlr.Delivered), true); found || parked {
		t.Fatalf("a full lot: found %v parked %v", found, parked)
	}
}

// BenchmarkBookAddLookup: the book's share of a message with a receipt:
// the mapping made on the MT path and found by its final receipt (no
// store). The lookup's allocations are the target's strings.
func BenchmarkBookAddLookup(b *testing.B) {
	book, _ := newBook(1<<20, time.Minute)
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = strconv.Itoa(1000000 + i)
	}
	tg := target("18c2f0a1b2c3d4e5")
	r := report("", dlr.Delivered)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := ids[i%len(ids)]
		book.Add(carrier, id, tg)
		r.ID = id
		if _, found, _ := book.lookupOrPark(carrier, r, true); !found {
			b.Fatal("mapping not found")
		}
	}
}
