package receipt

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/internal/groupcommit"
)

// Limits of the receipt store.
const (
	// receiptQueueMax bounds the mappings waiting for the writer (about
	// 100 bytes each: 26 MB, close to a second of traffic at 300k msgs/s).
	receiptQueueMax = 1 << 18
	// receiptBatchMin is the queue length at which the writer stops
	// waiting for more and writes at once.
	receiptBatchMin = 4096
	// receiptLinger is how long the writer waits for a batch to fill
	// after the first mapping of an empty queue arrives.
	receiptLinger = 2 * time.Millisecond
	// receiptLookups bounds receipts waiting for a store lookup, and
	// receiptLookupWorkers is how many lookups run at once.
	receiptLookups       = 8192
	receiptLookupWorkers = 8
	// receiptPersistDelay is how long a mapping waits in memory before it
	// is written: most receipts come within seconds, and a mapping whose
	// final receipt came in that time is never written (nor deleted), so
	// the store only sees the late ones. receiptPendingMax bounds the
	// mappings waiting (about 150 bytes each: 75 MB); past it the oldest
	// are written early.
	receiptPersistDelay = time.Second
	receiptPendingMax   = 1 << 19
)

// store keeps the mappings of a Book in the gateway's Badger store, with
// a TTL of receipts.ttl, so a receipt is correlated however late it comes
// within the TTL, and after a restart.
//
// Keys: "rc/" smsc NUL canonical-id → appendTarget. The id is the
// dlr.CanonicalKey of the SMSC's id for the link's id_base, the form the
// book hashes, so the two sides of a correlation meet in the store too.
//
// Writes are asynchronous: put and del append to a bounded queue and
// never block the MT path or the SMSC's read goroutine. One writer takes
// the whole queue, after at most receiptLinger for it to fill. A put waits
// in the writer's pending set for receiptPersistDelay; a del that finds
// its put still pending cancels both, so a message whose final receipt
// came within that delay costs the store nothing. The writer hands the
// puts that are due and the other dels to the gateway store's group
// committer (internal/groupcommit), in requests that share its synced
// transactions with the store's other writes. No MT waits for these writes
// to reach the disk: a crash or power cut loses the mappings of the last
// receiptPersistDelay and a batch (about a second of traffic), whose
// receipts then go uncorrelated; that is accepted so the MT path never
// waits for a disk. On a clean shutdown everything pending is written. Each
// committed batch costs one fsync, which is why the writer's batches are
// large: the slower the disk, the more a batch holds. A writer that falls
// behind does not grow the queue past receiptQueueMax: further writes are
// dropped and counted (optgate_gateway_receipt_map_dropped_total), and
// those mappings live in the memory book only.
//
// A receipt the book does not know is looked up here by a small pool of
// workers (lookupStored), off the SMSC session's read goroutine.
type store struct {
	b      *Book
	db     *badger.DB
	commit *groupcommit.Committer
	ttl    time.Duration

	mu     sync.Mutex
	queue  []storeOp // guarded by mu
	max    int       // guarded by mu
	closed bool      // guarded by mu
	// pending holds the puts waiting for delay, in order in fifo; the
	// writer changes them, get reads pending (pmu is a leaf).
	pmu        sync.RWMutex
	pending    map[storeKey]pendingPut // guarded by pmu
	fifo       []pendingRef            // writer only
	seq        uint64                  // writer only
	delay      atomic.Int64            // nanoseconds (tests change it)
	pendingMax int                     // set before the writer starts
	kick       chan struct{}
	quit       chan struct{}
	wg         sync.WaitGroup

	lookMu     sync.RWMutex
	lookClosed bool // guarded by lookMu
	lookups    chan storeLookup
	lookWG     sync.WaitGroup

	closeOnce sync.Once
	// hook, if set, runs in the writer before each batch, and lookHook
	// before each lookup (tests stall them with these).
	hook, lookHook atomic.Pointer[func()]
	// lastErrLog rate-limits logging of store errors (unix seconds).
	lastErrLog atomic.Int64

	dropFull, dropErr, dropClosed prometheus.Counter
	written, avoided              prometheus.Counter
	hit, miss, lookErr, busy      prometheus.Counter
}

type storeKey struct{ smsc, canon string }

// pendingPut is a put waiting in the writer; seq tells it from a later
// put of the same key.
type pendingPut struct {
	p   packedTarget
	at  time.Time
	seq uint64
}

type pendingRef struct {
	k   storeKey
	at  time.Time
	seq uint64
}

// storeOp is one queued write: a mapping to set, or one to delete. at is
// when a put was queued (its TTL runs from then).
type storeOp struct {
	smsc, canon string
	p           packedTarget
	del         bool
	at          time.Time
}

// OpenStore starts persisting the book's mappings in db, written through
// the gateway store's group committer c, and registers the store's
// metrics with reg (if not nil). CloseStore must run before c and db
// close.
func (b *Book) OpenStore(db *badger.DB, c *groupcommit.Committer, reg prometheus.Registerer) {
	const ns, sub = "optgate", "gateway"
	s := &store{b: b, db: db, commit: c, ttl: b.ttl, max: receiptQueueMax, kick: make(chan struct{}, 1),
		quit: make(chan struct{}), lookups: make(chan storeLookup, receiptLookups),
		pending: make(map[storeKey]pendingPut), pendingMax: receiptPendingMax}
	s.delay.Store(int64(receiptPersistDelay))
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "receipt_map_dropped_total",
		Help: "Receipt mappings (SMSC id to ours) not written to the store, by reason (queue_full: the writer fell behind; " +
			"store_error; closed). They are kept in memory only."}, []string{"reason"})
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "receipt_map_lookups_total",
		Help: "Store lookups for receipts not in the memory book, by result (hit, miss, error; busy: too many waiting, " +
			"the SMSC was asked to retry)."}, []string{"result"})
	s.written = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "receipt_map_writes_total",
		Help: "Receipt mappings written to (or deleted from) the store."})
	s.avoided = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "receipt_map_unwritten_total",
		Help: "Receipt mappings never written to the store: their final receipt came while they waited to be written."})
	queue := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "receipt_map_queue",
		Help: "Receipt mappings waiting to be written to the store."}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.queue))
	})
	s.dropFull, s.dropErr, s.dropClosed = dropped.WithLabelValues("queue_full"), dropped.WithLabelValues("store_error"),
		dropped.WithLabelValues("closed")
	s.hit, s.miss, s.lookErr, s.busy = lookups.WithLabelValues("hit"), lookups.WithLabelValues("miss"),
		lookups.WithLabelValues("error"), lookups.WithLabelValues("busy")
	if reg != nil {
		reg.MustRegister(dropped, lookups, s.written, s.avoided, queue)
	}
	s.wg.Add(1)
	go s.writer()
	s.lookWG.Add(receiptLookupWorkers)
	for range receiptLookupWorkers {
		go func() {
			defer s.lookWG.Done()
			for q := range s.lookups {
				b.resolve(q)
			}
		}()
	}
	b.store = s
}

// CloseStore finishes the lookups waiting, writes what is queued and
// stops; the Badger store stays open. It must run before the store
// closes, after the SMSC binds are down.
func (b *Book) CloseStore() {
	s := b.store
	if s == nil {
		return
	}
	s.closeOnce.Do(func() {
		s.lookMu.Lock()
		s.lookClosed = true
		close(s.lookups)
		s.lookMu.Unlock()
		s.lookWG.Wait() // lookups may queue deletes
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.quit)
		s.wg.Wait()
	})
}

// put queues a mapping. It never blocks: when the queue is full the
// mapping is dropped (and counted) and stays in the memory book only.
func (s *store) put(smsc, canon string, p packedTarget) {
	s.enqueue(storeOp{smsc: smsc, canon: canon, p: p})
}

// del queues the removal of a mapping (its final receipt came).
func (s *store) del(smsc, canon string) {
	s.enqueue(storeOp{smsc: smsc, canon: canon, del: true})
}

func (s *store) enqueue(op storeOp) {
	s.mu.Lock()
	if s.closed || len(s.queue) >= s.max {
		closed := s.closed
		s.mu.Unlock()
		if closed {
			s.dropClosed.Inc()
		} else {
			s.dropFull.Inc()
		}
		return
	}
	s.queue = append(s.queue, op)
	first := len(s.queue) == 1
	s.mu.Unlock()
	if first {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// writer writes the queue in batches until the store closes, then writes
// what is left, pending puts included.
func (s *store) writer() {
	defer s.wg.Done()
	var batch, out []storeOp
	due := time.NewTimer(time.Hour)
	due.Stop()
	for {
		quitting := false
		select {
		case <-s.kick:
		case <-due.C:
		case <-s.quit:
			quitting = true
		}
		if !quitting {
			s.mu.Lock()
			short := len(s.queue) > 0 && len(s.queue) < receiptBatchMin
			s.mu.Unlock()
			if short {
				t := time.NewTimer(receiptLinger)
				select {
				case <-t.C:
				case <-s.quit:
					t.Stop()
				}
			}
		}
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		closed := s.closed
		s.mu.Unlock()
		if len(batch) > 0 {
			if h := s.hook.Load(); h != nil {
				(*h)()
			}
		}
		now := time.Now()
		out = s.settle(out[:0], batch, now, closed)
		if len(out) > 0 {
			s.write(out, now)
		}
		clear(batch) // drop the strings they hold
		clear(out)
		if cap(batch) > 4*receiptBatchMin {
			batch = nil // a burst is over: do not keep its memory
		}
		if cap(out) > 4*receiptBatchMin {
			out = nil
		}
		if closed {
			return // nothing is queued once closed is set
		}
		if len(s.fifo) > 0 {
			due.Reset(max(s.fifo[0].at.Add(time.Duration(s.delay.Load())).Sub(now), receiptLinger))
		}
	}
}

// settle moves the queued ops into the pending set and appends to out
// what is to be written now: dels whose put was already written, and the
// pending puts that are due (all of them when flush is set). It runs on
// the writer.
func (s *store) settle(out, batch []storeOp, now time.Time, flush bool) []storeOp {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for _, op := range batch {
		k := storeKey{op.smsc, op.canon}
		if op.del {
			if _, ok := s.pending[k]; ok {
				delete(s.pending, k)
				s.avoided.Inc()
				continue
			}
			out = append(out, op)
			continue
		}
		s.seq++
		s.pending[k] = pendingPut{p: op.p, at: now, seq: s.seq}
		s.fifo = append(s.fifo, pendingRef{k: k, at: now, seq: s.seq})
	}
	cutoff := now.Add(-time.Duration(s.delay.Load()))
	n := 0
	for ; n < len(s.fifo); n++ {
		f := s.fifo[n]
		if !flush && f.at.After(cutoff) && len(s.pending) <= s.pendingMax {
			break
		}
		if e, ok := s.pending[f.k]; ok && e.seq == f.seq {
			delete(s.pending, f.k)
			out = append(out, storeOp{smsc: f.k.smsc, canon: f.k.canon, p: e.p, at: e.at})
		}
	}
	if n > 0 {
		clear(s.fifo[:n])
		s.fifo = s.fifo[n:]
		if len(s.fifo) == 0 || cap(s.fifo) > 4*len(s.fifo)+1024 {
			s.fifo = append([]pendingRef(nil), s.fifo...) // let the old array go
		}
	}
	return out
}

// write hands a batch to the gateway store's group committer (WriteAll):
// its mappings share synced transactions with the store's other writes.
func (s *store) write(batch []storeOp, now time.Time) {
	// One buffer for every key and value of the batch: Badger keeps the
	// slices until the commit. Just over 100 bytes each in the usual case.
	buf := make([]byte, 0, len(batch)*112)
	ops := make([]groupcommit.Op, 0, len(batch))
	for i := range batch {
		op := &batch[i]
		start := len(buf)
		buf = appendStoreKey(buf, op.smsc, op.canon)
		key := buf[start:len(buf):len(buf)]
		if op.del {
			ops = append(ops, groupcommit.Op{Key: key, Delete: true})
			continue
		}
		ttl := s.ttl - now.Sub(op.at)
		if ttl <= 0 {
			continue // expired while it waited: as if written and expired
		}
		start = len(buf)
		buf = appendTarget(buf, op.p, s.b.names)
		ops = append(ops, groupcommit.Op{Key: key, Value: buf[start:len(buf):len(buf)], TTL: ttl})
	}
	n, err := s.commit.WriteAll(ops)
	s.written.Add(float64(n))
	if err != nil {
		s.dropErr.Add(float64(len(ops) - n))
		s.logErr("receipt store write", err)
	}
}

// logErr logs a store error at most once every 10 seconds.
func (s *store) logErr(msg string, err error) {
	now := time.Now().Unix()
	if last := s.lastErrLog.Load(); now-last >= 10 && s.lastErrLog.CompareAndSwap(last, now) {
		s.b.log.Error(msg, "err", err)
	}
}

// get returns the stored mapping of (smsc, canonical id). found is false
// when there is none, it expired, or it names a tenant or account the
// configuration no longer has.
func (s *store) get(smsc, canon string) (t Target, found bool, err error) {
	s.pmu.RLock()
	e, ok := s.pending[storeKey{smsc, canon}]
	s.pmu.RUnlock()
	if ok {
		if time.Since(e.at) >= s.ttl {
			return t, false, nil
		}
		t, found = decodeTarget(appendTarget(nil, e.p, s.b.names), s.b.names)
		return t, found, nil
	}
	_, err = groupcommit.Read(s.db, appendStoreKey(nil, smsc, canon), func(v []byte) { t, found = decodeTarget(v, s.b.names) })
	return t, found, err
}
