package gateway

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// statusStore keeps the status book's records in the gateway store for
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
// Keys: "ms/" and the id as 8 bytes big-endian. Values: encodeStatus.
type statusStore struct {
	g      *Gateway
	db     *badger.DB
	commit *committer
	ttl    time.Duration
	log    *slog.Logger

	mu     sync.Mutex
	queue  []statusRec // guarded by mu
	closed bool        // guarded by mu
	kick   chan struct{}
	quit   chan struct{}
	wg     sync.WaitGroup

	written, dropFull, dropErr prometheus.Counter
}

const (
	statusLinger   = time.Second
	statusQueueMax = 1 << 18
	statusChunk    = 1024 // records per committer request
)

// openStore starts persisting the book's records.
func (b *statusBook) openStore(db *badger.DB, c *committer, ttl time.Duration, reg prometheus.Registerer, log *slog.Logger) {
	const ns, sub = "optgate", "gateway"
	s := &statusStore{g: b.g, db: db, commit: c, ttl: ttl, log: log, kick: make(chan struct{}, 1), quit: make(chan struct{})}
	s.written = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "status_writes_total",
		Help: "Message statuses written to the store (for GET /v1/messages/{id} after a restart)."})
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

// closeStore writes what is queued and stops the writer; the committer
// must still be open.
func (b *statusBook) closeStore() {
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
func (s *statusStore) enqueue(r statusRec) {
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

func (s *statusStore) writer() {
	defer s.wg.Done()
	var spare []statusRec
	w := statusWriter{s: s, last: map[uint64]int{}}
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

// statusWriter holds the writer's buffers, reused from batch to batch.
type statusWriter struct {
	s    *statusStore
	last map[uint64]int // id → index of its last version in the batch
	buf  []byte
	ops  []kv
}

func (w *statusWriter) write(batch []statusRec) {
	if len(batch) == 0 {
		return
	}
	s := w.s
	clear(w.last)
	for i := range batch {
		w.last[batch[i].id] = i
	}
	w.buf, w.ops = w.buf[:0], w.ops[:0]
	// Keys and values go in one buffer; it must not move while ops point
	// into it, so it is sized first (a key is 11 bytes, a value at most
	// 13+4*255).
	need := 0
	for i := range batch {
		if w.last[batch[i].id] == i {
			need += 11 + statusValueMax
		}
	}
	if cap(w.buf) < need {
		w.buf = make([]byte, 0, need)
	}
	for i := range batch {
		r := batch[i]
		if w.last[r.id] != i {
			continue
		}
		if r.tenant == 0 {
			// A state change for a message this process never saw (a
			// receipt after a restart): who and where are in the store.
			stored, found := s.read(r.id)
			if !found {
				continue
			}
			mergeState(&stored, r)
			r = stored
		}
		start := len(w.buf)
		w.buf = appendStatusKey(w.buf, r.id)
		key := w.buf[start:len(w.buf):len(w.buf)]
		start = len(w.buf)
		w.buf = s.g.encodeStatus(w.buf, r)
		w.ops = append(w.ops, kv{key: key, val: w.buf[start:len(w.buf):len(w.buf)], ttl: s.ttl})
	}
	for ops := w.ops; len(ops) > 0; {
		n := min(len(ops), statusChunk)
		if err := s.commit.write(ops[:n]...); err != nil {
			s.dropErr.Add(float64(n))
			if !errors.Is(err, ErrStoreClosed) {
				s.log.Error("message status write", "err", err)
			}
		} else {
			s.written.Add(float64(n))
		}
		ops = ops[n:]
	}
	clear(w.ops) // let the buffer's slices go
}

// read returns the stored record of id.
func (s *statusStore) read(id uint64) (statusRec, bool) {
	var key [11]byte
	var r statusRec
	ok := false
	found, err := readKey(s.db, appendStatusKey(key[:0], id), func(v []byte) { r, ok = s.g.decodeStatus(id, v) })
	if err != nil {
		s.log.Error("message status read", "err", err)
	}
	return r, found && ok
}

func appendStatusKey(b []byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, "ms/"...), id)
}

// statusValueMax bounds an encoded status: version, time, channel and
// four strings of at most 255 bytes with their lengths.
const statusValueMax = 1 + 8 + 1 + 4*256

// encodeStatus appends r's stored form: version 1, the time (8 bytes),
// the channel, then the tenant id, state, reason and recipient, each a
// length byte and at most 255 bytes. The tenant is stored by id, not by
// its index in the configuration, which can change across restarts.
func (g *Gateway) encodeStatus(b []byte, r statusRec) []byte {
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(r.at))
	b = append(b, r.channel)
	tenant := ""
	if t := g.tenantAt(r.tenant); t != nil {
		tenant = t.ID
	}
	for _, s := range [...]string{tenant, interned(r.state), interned(r.reason), string(r.to[:r.toLen])} {
		s = s[:min(len(s), 255)]
		b = append(append(b, byte(len(s))), s...)
	}
	return b
}

// decodeStatus reads encodeStatus's form; false for a malformed value or
// a tenant no longer configured.
func (g *Gateway) decodeStatus(id uint64, v []byte) (statusRec, bool) {
	if len(v) < 10 || v[0] != 1 {
		return statusRec{}, false
	}
	r := statusRec{id: id, at: int64(binary.BigEndian.Uint64(v[1:9])), channel: v[9]}
	v = v[10:]
	var f [4]string
	for i := range f {
		if len(v) < 1 || len(v) < 1+int(v[0]) {
			return statusRec{}, false
		}
		f[i], v = string(v[1:1+int(v[0])]), v[1+int(v[0]):]
	}
	t := g.tenants[f[0]]
	if t == nil {
		return statusRec{}, false
	}
	r.tenant, r.state, r.reason = t.idx, intern(f[1]), intern(f[2])
	r.toLen = uint8(copy(r.to[:], f[3]))
	return r, true
}

// mergeState moves dst to src's state by setState's rule (no going
// backwards; the first failure stays), keeping dst's who and where.
func mergeState(dst *statusRec, src statusRec) {
	if src.state == 0 {
		return
	}
	cur, next := stateRank(interned(dst.state)), stateRank(interned(src.state))
	if dst.state != 0 && (next < cur || next == rankFailed && cur == rankFailed) {
		return
	}
	dst.state, dst.at = src.state, src.at
	if src.reason != 0 {
		dst.reason = src.reason
	}
}
