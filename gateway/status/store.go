package status

import (
	"cmp"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/internal/groupcommit"
)

// Store keeps the status book's records in the gateway store for
// receipts.ttl, so GET /v1/messages/{id} (and query_sm) answer after a
// restart.
//
// The book is written for every message, so nothing here waits for a
// disk on that path: the book appends each changed record to a bounded
// queue (enqueue, under the book's slot lock, so the queue holds a
// record's versions in order), and one writer takes the whole queue every
// statusLinger, keeps the last version of each id and writes them
// through the gateway's group committer (one synced transaction per
// batch). A message whose receipt came within the linger is written once,
// with its latest state. A crash loses the last statusLinger (and a batch)
// of changes; a clean shutdown writes everything queued. Past
// statusQueueMax queued records, further changes are dropped and counted
// (optgate_gateway_status_dropped_total): they live in memory only.
//
// Keys: "ms/" and id >> statusBucketBits as 8 bytes big-endian: one entry
// holds the records of statusBucket consecutive ids. Values: for each
// record, the id's low bits (a byte) and encode's form. An entry's
// TTL starts again at each write, so a record lives at least receipts.ttl.
type Store struct {
	tenants Tenants
	db      *badger.DB
	commit  *groupcommit.Committer
	ttl     time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	queue  []rec // guarded by mu
	closed bool  // guarded by mu
	kick   chan struct{}
	quit   chan struct{}
	wg     sync.WaitGroup

	written, dropFull, dropErr prometheus.Counter
}

const (
	statusLinger   = time.Second
	statusQueueMax = 1 << 18
)

// OpenStore starts persisting the book's records in db, through c (which
// must stay open until CloseStore returns); a record lives at least ttl.
// The metrics go to reg when it is not nil.
func (b *Book) OpenStore(db *badger.DB, c *groupcommit.Committer, ttl time.Duration, reg prometheus.Registerer, log *slog.Logger) {
	const ns, sub = "optgate", "gateway"
	s := &Store{tenants: b.tenants, db: db, commit: c, ttl: ttl, log: log, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	s.written = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "status_writes_total",
		Help: "Store entries of message statuses written (each holds the statuses of up to 64 consecutive message ids; for GET /v1/messages/{id} after a restart)."})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "status_dropped_total",
		Help: "Message status changes not written to the store, by reason (queue_full, store_error); they are kept in memory only."},
		[]string{"reason"})
	s.dropFull, s.dropErr = dropped.WithLabelValues("queue_full"), dropped.WithLabelValues("store_error")
	if reg != nil {
		reg.MustRegister(s.written, dropped)
	}
	b.store = s
	s.wg.Add(1)
	go s.writer()
}

// CloseStore writes what is queued and stops the writer; the committer
// must still be open.
func (b *Book) CloseStore() {
	s := b.store
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	s.wg.Wait()
}

// enqueue queues r to be written; it never blocks.
func (s *Store) enqueue(r rec) {
	s.mu.Lock()
	if s.closed || len(s.queue) >= statusQueueMax {
		s.mu.Unlock()
		if !s.closed {
			s.dropFull.Inc()
		}
		return
	}
	first := len(s.queue) == 0
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	if first {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Store) writer() {
	defer s.wg.Done()
	var spare []rec
	w := writer{s: s, last: map[uint64]int{}}
	for {
		quit := false
		select {
		case <-s.kick:
			select {
			case <-time.After(statusLinger):
			case <-s.quit:
				quit = true
			}
		case <-s.quit:
			quit = true
		}
		s.mu.Lock()
		batch := s.queue
		s.queue = spare[:0]
		s.mu.Unlock()
		w.write(batch)
		spare = batch
		if quit {
			return
		}
	}
}

// writer holds the writer's buffers, reused from batch to batch.
type writer struct {
	s    *Store
	last map[uint64]int // id → index of its last version in the batch
	recs []rec          // the last versions, by id
	old  []byte         // a bucket's stored value
	enc  []byte         // a bucket's new records, encoded
	ops  []groupcommit.Op
}

// Store entries hold statusBucket consecutive ids each (our ids are
// sequential), so a batch of new messages costs a few Badger entries, not
// one per message: Badger's cost is per entry (about a dozen allocations
// and a key copy each), and the writer's batches are mostly ids in a row.
const (
	statusBucketBits = 6
	statusBucket     = 1 << statusBucketBits
)

func (w *writer) write(batch []rec) {
	if len(batch) == 0 {
		return
	}
	s := w.s
	clear(w.last)
	for i := range batch {
		w.last[batch[i].id] = i
	}
	w.recs, w.ops = w.recs[:0], w.ops[:0]
	for i := range batch {
		if w.last[batch[i].id] == i {
			w.recs = append(w.recs, batch[i])
		}
	}
	slices.SortFunc(w.recs, func(a, b rec) int { return cmp.Compare(a.id, b.id) })
	for recs := w.recs; len(recs) > 0; {
		bucket := recs[0].id >> statusBucketBits
		n := 1
		for n < len(recs) && recs[n].id>>statusBucketBits == bucket {
			n++
		}
		if op, ok := w.bucket(bucket, recs[:n]); ok {
			w.ops = append(w.ops, op)
		}
		recs = recs[n:]
	}
	n, err := s.commit.WriteAll(w.ops)
	s.written.Add(float64(n))
	if err != nil {
		s.dropErr.Add(float64(len(w.ops) - n))
		if !errors.Is(err, groupcommit.ErrClosed) {
			s.log.Error("message status write", "err", err)
		}
	}
	clear(w.ops) // let the values go
}

// bucket makes the store write of one bucket: its stored records, with
// recs (of that bucket) replacing theirs. A record with no tenant is a
// state change for a message this process never saw (a receipt after a
// restart): it is merged into the stored one, and dropped when there is
// none (nobody could be told about it).
func (w *writer) bucket(bucket uint64, recs []rec) (groupcommit.Op, bool) {
	s := w.s
	var mask, partial uint64 // by id & (statusBucket-1)
	for _, r := range recs {
		mask |= 1 << (r.id & (statusBucket - 1))
		if r.tenant == 0 {
			partial |= 1 << (r.id & (statusBucket - 1))
		}
	}
	key := appendStatusKey(make([]byte, 0, 11), bucket)
	w.old = w.old[:0]
	if _, err := groupcommit.Read(s.db, key, func(v []byte) { w.old = append(w.old, v...) }); err != nil {
		s.log.Error("message status read", "err", err)
		if partial != 0 {
			return groupcommit.Op{}, false // the stored records cannot be kept
		}
	}
	// The partial records take who and where from the stored ones.
	if partial != 0 {
		for rest := w.old; len(rest) > 0; {
			n, ok := entryLen(rest)
			if !ok {
				break
			}
			if low := uint64(rest[0]); partial&(1<<low) != 0 {
				id := bucket<<statusBucketBits | low
				if stored, ok := decode(s.tenants, id, rest[1:n]); ok {
					i, _ := slices.BinarySearchFunc(recs, id, func(r rec, id uint64) int { return cmp.Compare(r.id, id) })
					mergeState(&stored, recs[i])
					recs[i] = stored
				}
			}
			rest = rest[n:]
		}
	}
	w.enc = w.enc[:0]
	for _, r := range recs {
		if r.tenant != 0 {
			w.enc = encode(s.tenants, append(w.enc, byte(r.id&(statusBucket-1))), r)
		}
	}
	// The stored records recs does not replace, then recs.
	val := make([]byte, 0, len(w.old)+len(w.enc))
	for rest := w.old; len(rest) > 0; {
		n, ok := entryLen(rest)
		if !ok {
			break // a damaged tail: the records before it are kept
		}
		if mask&(1<<uint64(rest[0])) == 0 {
			val = append(val, rest[:n]...)
		}
		rest = rest[n:]
	}
	val = append(val, w.enc...)
	if len(val) == 0 {
		return groupcommit.Op{}, false
	}
	return groupcommit.Op{Key: key, Value: val, TTL: s.ttl}, true
}

// Stored returns what the store holds of message id (nothing of what is
// still queued to be written); false without a store.
func (b *Book) Stored(idStr string) (MessageStatus, bool) {
	id, ok := ParseID(idStr)
	if !ok || b.store == nil {
		return MessageStatus{}, false
	}
	r, ok := b.store.read(id)
	if !ok {
		return MessageStatus{}, false
	}
	return b.status(idStr, r), true
}

// read returns the stored record of id.
func (s *Store) read(id uint64) (rec, bool) {
	var key [11]byte
	var r rec
	ok := false
	_, err := groupcommit.Read(s.db, appendStatusKey(key[:0], id>>statusBucketBits), func(v []byte) {
		for len(v) > 0 {
			n, valid := entryLen(v)
			if !valid {
				return
			}
			if uint64(v[0]) == id&(statusBucket-1) {
				r, ok = decode(s.tenants, id, v[1:n])
				return
			}
			v = v[n:]
		}
	})
	if err != nil {
		s.log.Error("message status read", "err", err)
	}
	return r, ok
}

// appendStatusKey appends the store key of a bucket (id >> statusBucketBits).
func appendStatusKey(b []byte, bucket uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, "ms/"...), bucket)
}

// entryLen is the length of a bucket's first entry (the id's low
// byte, then encode's form); false when it is cut short.
func entryLen(v []byte) (int, bool) {
	n := 1 + 10
	if len(v) < n {
		return 0, false
	}
	for range 4 {
		if len(v) < n+1 || len(v) < n+1+int(v[n]) {
			return 0, false
		}
		n += 1 + int(v[n])
	}
	return n, true
}

// encode appends r's stored form: version 1, the time (8 bytes), the
// channel, then the tenant id, state, reason and recipient, each a length
// byte and at most 255 bytes. The tenant is stored by id, not by its index
// in the configuration, which can change across restarts; the state and
// the reason by name, not by their numbers.
func encode(tenants Tenants, b []byte, r rec) []byte {
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(r.at))
	b = append(b, r.channel)
	for _, s := range [...]string{tenants.TenantID(r.tenant), r.state.String(), r.reason.String(), string(r.to[:r.toLen])} {
		s = s[:min(len(s), 255)]
		b = append(append(b, byte(len(s))), s...)
	}
	return b
}

// decode reads encode's form; false for a malformed value, a state that
// is none of ours or a tenant no longer configured.
func decode(tenants Tenants, id uint64, v []byte) (rec, bool) {
	if len(v) < 10 || v[0] != 1 {
		return rec{}, false
	}
	r := rec{id: id, at: int64(binary.BigEndian.Uint64(v[1:9])), channel: v[9]}
	v = v[10:]
	var f [4]string
	for i := range f {
		if len(v) < 1 || len(v) < 1+int(v[0]) {
			return rec{}, false
		}
		f[i], v = string(v[1:1+int(v[0])]), v[1+int(v[0]):]
	}
	var ok bool
	if r.tenant = tenants.TenantIndex(f[0]); r.tenant == 0 {
		return rec{}, false
	}
	if r.state, ok = ParseState(f[1]); !ok {
		return rec{}, false
	}
	r.reason = CarrierReason(f[2])
	r.toLen = uint8(copy(r.to[:], f[3]))
	return r, true
}
