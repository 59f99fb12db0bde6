package status

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/consent"
)

// acme is a configuration of one tenant, "acme", at index 1.
type acme struct{}

func (acme) TenantIndex(id string) uint16 {
	if id == "acme" {
		return 1
	}
	return 0
}

func (acme) TenantID(i uint16) string {
	if i == 1 {
		return "acme"
	}
	return ""
}

func newTestStatusBook(size int) *Book { return NewBook(acme{}, size) }

func hexID(n uint64) string { return strconv.FormatUint(n, 16) }

func TestStatusBookKeepsTheLatestIDs(t *testing.T) {
	b := newTestStatusBook(1000) // rounded up to 1024
	if len(b.ring) != 1024 {
		t.Fatalf("ring of %d, want 1024", len(b.ring))
	}
	base := uint64(time.Now().UnixNano())
	at := time.Now()
	for i := range uint64(3000) {
		b.Put(MessageStatus{ID: hexID(base + i), Tenant: "acme", Channel: consent.ChannelSMS, To: "+15551230000", State: StateAccepted, Updated: at})
	}
	for i := uint64(3000 - 1024); i < 3000; i++ {
		st, ok := b.Get(hexID(base + i))
		if !ok || st.State != StateAccepted || st.Tenant != "acme" || st.To != "+15551230000" || st.ID != hexID(base+i) {
			t.Fatalf("id %d: %+v %v", i, st, ok)
		}
	}
	// Older ids were overwritten by newer ones in their slots: not found,
	// and never answered with another message's record.
	for i := range uint64(3000 - 1024) {
		if st, ok := b.Get(hexID(base + i)); ok {
			t.Fatalf("evicted id %d still answers: %+v", i, st)
		}
	}
	if _, ok := b.Get("zz"); ok {
		t.Fatal("malformed id found")
	}
	if _, ok := b.Get(hexID(base + 5000)); ok {
		t.Fatal("id never written found")
	}
}

// A record for an id older than the one in its slot (a held message
// released long after, an id from before a restart) goes to the late map and
// does not disturb the newer record.
func TestStatusBookLateWrites(t *testing.T) {
	b := newTestStatusBook(1024)
	base := uint64(time.Now().UnixNano())
	at := time.Now()
	newer := base + 1024
	b.Put(MessageStatus{ID: hexID(newer), Tenant: "acme", To: "+15550000001", State: StateAccepted, Updated: at})
	b.Put(MessageStatus{ID: hexID(base), Tenant: "acme", To: "+15550000002", State: StateQueued, Updated: at})
	if base&b.mask != newer&b.mask {
		t.Fatal("test ids do not share a slot")
	}
	if st, ok := b.Get(hexID(newer)); !ok || st.State != StateAccepted || st.To != "+15550000001" {
		t.Fatalf("newer record disturbed: %+v %v", st, ok)
	}
	if st, ok := b.Get(hexID(base)); !ok || st.State != StateQueued || st.To != "+15550000002" {
		t.Fatalf("late record: %+v %v", st, ok)
	}
	if !b.Update(hexID(base), StateDelivered, ReasonNone) {
		t.Fatal("update refused")
	}
	if st, _ := b.Get(hexID(base)); st.State != StateDelivered || st.To != "+15550000002" {
		t.Fatalf("late record after update: %+v", st)
	}
	// An update for an old id nobody recorded creates a late record.
	older := base - 1024 // the same slot again
	if !b.Update(hexID(older), StateExpired, ReasonNone) {
		t.Fatal("update refused")
	}
	if st, ok := b.Get(hexID(older)); !ok || st.State != StateExpired {
		t.Fatalf("late update: %+v %v", st, ok)
	}
	if st, ok := b.Get(hexID(newer)); !ok || st.State != StateAccepted {
		t.Fatalf("newer record disturbed by a late update: %+v %v", st, ok)
	}
}

// A receipt can overtake the submit's own answer: the update comes first,
// the put after it keeps the later state and fills in who and where.
func TestStatusBookUpdateBeforePut(t *testing.T) {
	b := newTestStatusBook(1024)
	id := hexID(uint64(time.Now().UnixNano()))
	submitted := time.Now()
	time.Sleep(time.Millisecond)
	b.Update(id, StateDelivered, ReasonNone)
	b.Put(MessageStatus{ID: id, Tenant: "acme", Channel: consent.ChannelWhatsApp, To: "+15550000003", State: StateAccepted, Updated: submitted})
	st, ok := b.Get(id)
	if !ok || st.State != StateDelivered || st.Tenant != "acme" || st.To != "+15550000003" || st.Channel != consent.ChannelWhatsApp {
		t.Fatalf("got %+v %v", st, ok)
	}
	// A later put (a newer state) wins over an earlier one.
	b.Put(MessageStatus{ID: id, Tenant: "acme", To: "+15550000003", State: StateFailed, Reason: CarrierReason("x"), Updated: time.Now().Add(time.Second)})
	if st, _ := b.Get(id); st.State != StateFailed || st.Reason.String() != "x" {
		t.Fatalf("got %+v", st)
	}
}

func TestStatusBookConcurrent(t *testing.T) {
	// The book holds every id the test writes: it keeps only the latest
	// len(ring) ids, and a goroutine descheduled between its put and its
	// get could otherwise see its id evicted by the others' newer ones.
	const workers, each = 4, 2000
	b := newTestStatusBook(workers * each)
	base := uint64(time.Now().UnixNano())
	var next sync.Mutex
	n := base
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				next.Lock()
				n++
				id := hexID(n)
				next.Unlock()
				b.Put(MessageStatus{ID: id, Tenant: "acme", To: "+15550000004", State: StateAccepted, Updated: time.Now()})
				b.Update(id, StateDelivered, ReasonNone)
				if st, ok := b.Get(id); !ok || st.State != StateDelivered {
					t.Errorf("%s: %+v %v", id, st, ok)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestWhatsAppStatusBookMonotonic(t *testing.T) {
	b := newTestStatusBook(1024)
	base := uint64(time.Now().UnixNano())
	for _, tc := range []struct {
		seq  []string
		want string
	}{
		{[]string{"sent", "delivered", "read"}, "read"},
		{[]string{"read", "delivered", "sent"}, "read"},
		{[]string{"delivered", "sent"}, "delivered"},
		{[]string{"enroute", "delivered", "accepted_by_carrier"}, "delivered"},
		{[]string{"sent", "undeliverable", "delivered", "read"}, "undeliverable"}, // failed is terminal
		{[]string{"read", "undeliverable"}, "undeliverable"},
		{[]string{"expired", "undeliverable"}, "expired"}, // the first failure stays
		{[]string{"delivered", "unknown"}, "delivered"},
	} {
		base++
		id := hexID(base)
		b.Put(MessageStatus{ID: id, Tenant: "acme", Channel: consent.ChannelWhatsApp, To: "+447700900000", State: StateAccepted, Updated: time.Now().Add(-time.Second)})
		for _, s := range tc.seq {
			b.Update(id, mustState(t, s), ReasonNone)
		}
		if st, _ := b.Get(id); st.State.String() != tc.want {
			t.Errorf("%v: state %q, want %q", tc.seq, st.State, tc.want)
		}
		// The same in the late map (an id older than its slot's).
		late := hexID(base - 1<<20)
		for _, s := range tc.seq {
			b.Update(late, mustState(t, s), ReasonNone)
		}
		if st, _ := b.Get(late); st.State.String() != tc.want {
			t.Errorf("late %v: state %q, want %q", tc.seq, st.State, tc.want)
		}
	}
}

func mustState(t *testing.T, name string) State {
	t.Helper()
	s, ok := ParseState(name)
	if !ok {
		t.Fatalf("no state %q", name)
	}
	return s
}
