package receipt

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/smpp/dlr"
)

// The methods in this file let tests outside the package (the gateway's
// end-to-end receipt tests) look into a running book and tune or stall
// its store. Nothing else calls them.

// Remembers reports whether the memory book holds the mapping of the id
// SMSC s gave in a submit_sm_resp.
func (b *Book) Remembers(s SMSC, smscID string) bool {
	k := b.key(s, smscID, false)
	b.mu.Lock()
	defer b.mu.Unlock()
	_, cur := b.cur[k]
	_, old := b.old[k]
	return cur || old
}

// Stored returns the store's mapping (pending writes included) of the id
// SMSC s gave in a submit_sm_resp. found is false without a store.
func (b *Book) Stored(s SMSC, smscID string) (t Target, found bool, err error) {
	if b.store == nil {
		return t, false, nil
	}
	return b.store.get(s.Name, dlr.CanonicalKey(smscID, s.IDBase, false))
}

// StoreKey is the store's key for the mapping of the id SMSC s gave in a
// submit_sm_resp.
func StoreKey(s SMSC, smscID string) []byte {
	return appendStoreKey(nil, s.Name, dlr.CanonicalKey(smscID, s.IDBase, false))
}

// Forget drops every mapping from memory, as two rotations would; the
// store keeps them.
func (b *Book) Forget() {
	b.mu.Lock()
	b.cur, b.old = map[uint64]packedTarget{}, map[uint64]packedTarget{}
	b.mu.Unlock()
}

// SetMax sets how many mappings the memory book keeps (two generations of
// n/2).
func (b *Book) SetMax(n int) {
	b.mu.Lock()
	b.max = n
	b.mu.Unlock()
}

// StoreCounters are the store's counters (OpenStore registers them).
type StoreCounters struct {
	Hit, Miss          prometheus.Counter // lookups by result
	Written, Unwritten prometheus.Counter // mappings written; never written (their final receipt came first)
	DroppedFull        prometheus.Counter // mappings dropped for a full queue
}

// Counters returns the store's counters; the book must have a store.
func (b *Book) Counters() StoreCounters {
	s := b.store
	return StoreCounters{Hit: s.hit, Miss: s.miss, Written: s.written, Unwritten: s.avoided, DroppedFull: s.dropFull}
}

// Backlog returns how many store writes are queued for the writer and how
// many puts wait in it for their persist delay; the book must have a
// store.
func (b *Book) Backlog() (queued, pending int) {
	s := b.store
	s.mu.Lock()
	queued = len(s.queue)
	s.mu.Unlock()
	s.pmu.RLock()
	pending = len(s.pending)
	s.pmu.RUnlock()
	return queued, pending
}

// SetQueueMax bounds the writes waiting for the store's writer (default
// receiptQueueMax); the book must have a store.
func (b *Book) SetQueueMax(n int) {
	s := b.store
	s.mu.Lock()
	s.max = n
	s.mu.Unlock()
}

// SetPersistDelay sets how long a mapping waits before it is written
// (default receiptPersistDelay); the book must have a store.
func (b *Book) SetPersistDelay(d time.Duration) { b.store.delay.Store(int64(d)) }

// SetWriterHook has f run in the store's writer before each batch, and
// SetLookupHook before each store lookup (nil: nothing); the book must
// have a store.
func (b *Book) SetWriterHook(f func()) { setHook(&b.store.hook, f) }

// SetLookupHook: see SetWriterHook.
func (b *Book) SetLookupHook(f func()) { setHook(&b.store.lookHook, f) }

func setHook(p *atomic.Pointer[func()], f func()) {
	if f == nil {
		p.Store(nil)
		return
	}
	p.Store(&f)
}

// Encode returns the stored form of t, as the store writes it.
func (b *Book) Encode(t Target) []byte { return appendTarget(nil, pack(t), b.names) }

// Decode reads the stored form of a target; ok is false for a malformed
// value or one whose tenant or account Names no longer resolves.
func (b *Book) Decode(v []byte) (t Target, ok bool) { return decodeTarget(v, b.names) }
