package gateway

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func newTestStatusBook(size int) *statusBook {
	t := &Tenant{ID: "acme", idx: 1}
	g := &Gateway{tenants: map[string]*Tenant{"acme": t}, tenantList: []*Tenant{t}}
	return newStatusBook(g, size)
}

func hexID(n uint64) string { return strconv.FormatUint(n, 16) }

func TestStatusBookKeepsTheLatestIDs(t *testing.T) {
	b := newTestStatusBook(1000) // rounded up to 1024
	if len(b.ring) != 1024 {
		t.Fatalf("ring of %d, want 1024", len(b.ring))
	}
	base := uint64(time.Now().UnixNano())
	at := time.Now()
	for i := range uint64(3000) {
		b.put(MessageStatus{ID: hexID(base + i), Tenant: "acme", Channel: ChannelSMS, To: "+15551230000", State: "accepted", Updated: at})
	}
	for i := uint64(3000 - 1024); i < 3000; i++ {
		st, ok := b.get(hexID(base + i))
		if !ok || st.State != "accepted" || st.Tenant != "acme" || st.To != "+15551230000" || st.ID != hexID(base+i) {
			t.Fatalf("id %d: %+v %v", i, st, ok)
		}
	}
	// Older ids were overwritten by newer ones in their slots: not found,
	// and never answered with another message's record.
	for i := range uint64(3000 - 1024) {
		if st, ok := b.get(hexID(base + i)); ok {
			t.Fatalf("evicted id %d still answers: %+v", i, st)
		}
	}
	if _, ok := b.get("zz"); ok {
		t.Fatal("malformed id found")
	}
	if _, ok := b.get(hexID(base + 5000)); ok {
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
	b.put(MessageStatus{ID: hexID(newer), Tenant: "acme", To: "+15550000001", State: "accepted", Updated: at})
	b.put(MessageStatus{ID: hexID(base), Tenant: "acme", To: "+15550000002", State: "queued", Updated: at})
	if base&b.mask != newer&b.mask {
		t.Fatal("test ids do not share a slot")
	}
	if st, ok := b.get(hexID(newer)); !ok || st.State != "accepted" || st.To != "+15550000001" {
		t.Fatalf("newer record disturbed: %+v %v", st, ok)
	}
	if st, ok := b.get(hexID(base)); !ok || st.State != "queued" || st.To != "+15550000002" {
		t.Fatalf("late record: %+v %v", st, ok)
	}
	if !b.update(hexID(base), "delivered", "") {
		t.Fatal("update refused")
	}
	if st, _ := b.get(hexID(base)); st.State != "delivered" || st.To != "+15550000002" {
		t.Fatalf("late record after update: %+v", st)
	}
	// An update for an old id nobody recorded creates a late record.
	older := base - 1024 // the same slot again
	if !b.update(hexID(older), "expired", "") {
		t.Fatal("update refused")
	}
	if st, ok := b.get(hexID(older)); !ok || st.State != "expired" {
		t.Fatalf("late update: %+v %v", st, ok)
	}
	if st, ok := b.get(hexID(newer)); !ok || st.State != "accepted" {
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
	b.update(id, "delivered", "")
	b.put(MessageStatus{ID: id, Tenant: "acme", Channel: ChannelWhatsApp, To: "+15550000003", State: "accepted", Updated: submitted})
	st, ok := b.get(id)
	if !ok || st.State != "delivered" || st.Tenant != "acme" || st.To != "+15550000003" || st.Channel != ChannelWhatsApp {
		t.Fatalf("got %+v %v", st, ok)
	}
	// A later put (a newer state) wins over an earlier one.
	b.put(MessageStatus{ID: id, Tenant: "acme", To: "+15550000003", State: "failed", Reason: "x", Updated: time.Now().Add(time.Second)})
	if st, _ := b.get(id); st.State != "failed" || st.Reason != "x" {
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
				b.put(MessageStatus{ID: id, Tenant: "acme", To: "+15550000004", State: "accepted", Updated: time.Now()})
				b.update(id, "delivered", "")
				if st, ok := b.get(id); !ok || st.State != "delivered" {
					t.Errorf("%s: %+v %v", id, st, ok)
					return
				}
			}
		}()
	}
	wg.Wait()
}
