package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
)

// outbox is a durable queue in the gateway's Badger store: work that must
// not be lost (webhook posts, deliver_sm to upstream ESMEs that were not
// bound, MT messages accepted with ack: store) is written and synced
// first, then worked off with retries and capped exponential back-off
// until it succeeds or expires.
//
// Keys: "ob/" kind "/" due(8 bytes, big-endian unix nanos) id → item JSON.
type outbox struct {
	db     *badger.DB
	commit *groupcommit.Committer
	log    *slog.Logger
	kinds  map[string]*outKind
	wg     sync.WaitGroup
	stop   chan struct{}
}

// outItem is one unit of durable work.
type outItem struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	Tenant   string          `json:"tenant,omitempty"`
	Account  string          `json:"account,omitempty"`
	Created  time.Time       `json:"created"`
	Due      time.Time       `json:"due"`
	Attempts int             `json:"attempts"`
	LastErr  string          `json:"last_error,omitempty"`
	Payload  json.RawMessage `json:"payload"`
}

// outKind is one kind of work with its worker function.
type outKind struct {
	name string
	// work does one item and returns its result; workers run at once.
	work    func(ctx context.Context, it *outItem) error
	workers int
	// async, if set, replaces work: it starts one item and calls done
	// exactly once with its result, from any goroutine, without the
	// dispatcher waiting for it; up to inflight items run at once.
	async    func(ctx context.Context, it *outItem, done func(error))
	inflight int
	// perTenant, if set, caps the items of one tenant worked at once, so
	// that one tenant's dead endpoint cannot hold every worker.
	perTenant  int
	maxAge     time.Duration
	maxBackoff time.Duration
	onExpire   func(it *outItem)
	kick       chan struct{}
	mu         sync.Mutex
	busy       map[string]bool // ids being worked; guarded by mu
	// finished holds the ids settled since the dispatcher's current scan
	// began: that scan's snapshot may still hold their old keys, which
	// must not be dispatched again. Guarded by mu.
	finished   map[string]struct{}
	tenantBusy map[string]int // items being worked per tenant; guarded by mu
	depth      func(delta int)
	// expired, if set, counts an item given up.
	expired func()
}

// take marks it as being worked unless it is already, was settled during
// the current scan, or its tenant is at its cap.
func (k *outKind) take(it *outItem) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, fin := k.finished[it.ID]; fin || k.busy[it.ID] {
		return false
	}
	if k.perTenant > 0 && k.tenantBusy[it.Tenant] >= k.perTenant {
		return false
	}
	k.busy[it.ID] = true
	k.tenantBusy[it.Tenant]++
	return true
}

// untake gives back an item take claimed that was not handed out.
func (k *outKind) untake(it *outItem) {
	k.mu.Lock()
	delete(k.busy, it.ID)
	if k.tenantBusy[it.Tenant]--; k.tenantBusy[it.Tenant] <= 0 {
		delete(k.tenantBusy, it.Tenant)
	}
	k.mu.Unlock()
}

// release ends the work on it (after its result was written).
func (k *outKind) release(it *outItem) {
	k.mu.Lock()
	delete(k.busy, it.ID)
	k.finished[it.ID] = struct{}{}
	if k.tenantBusy[it.Tenant]--; k.tenantBusy[it.Tenant] <= 0 {
		delete(k.tenantBusy, it.Tenant)
	}
	k.mu.Unlock()
}

// newScan forgets the ids settled before a scan starts: their writes
// committed before its snapshot was taken.
func (k *outKind) newScan() {
	k.mu.Lock()
	clear(k.finished)
	k.mu.Unlock()
}

// errPermanent marks a failure not worth retrying.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

func newOutbox(db *badger.DB, c *groupcommit.Committer, log *slog.Logger) *outbox {
	return &outbox{db: db, commit: c, log: log, kinds: map[string]*outKind{}, stop: make(chan struct{})}
}

func (o *outbox) register(k *outKind) {
	k.kick = make(chan struct{}, 1)
	k.busy = map[string]bool{}
	k.finished = map[string]struct{}{}
	k.tenantBusy = map[string]int{}
	if k.async != nil && k.inflight <= 0 {
		k.inflight = 64
	}
	if k.workers <= 0 {
		k.workers = 4
	}
	if k.depth == nil {
		k.depth = func(int) {}
	}
	o.kinds[k.name] = k
}

func itemKey(kind string, due time.Time, id string) []byte {
	b := make([]byte, 0, 4+len(kind)+8+len(id))
	b = append(b, "ob/"...)
	b = append(b, kind...)
	b = append(b, '/')
	b = binary.BigEndian.AppendUint64(b, uint64(due.UnixNano()))
	return append(b, id...)
}

// put stores items durably (one group-committed sync) and wakes workers.
func (o *outbox) put(items ...*outItem) error {
	ops := make([]groupcommit.Op, 0, len(items))
	for _, it := range items {
		if it.Created.IsZero() {
			it.Created = time.Now()
		}
		if it.Due.IsZero() {
			it.Due = it.Created
		}
		v, err := json.Marshal(it)
		if err != nil {
			return err
		}
		ops = append(ops, groupcommit.Op{Key: itemKey(it.Kind, it.Due, it.ID), Value: v})
	}
	if err := o.commit.Write(ops...); err != nil {
		return err
	}
	for _, it := range items {
		k := o.kinds[it.Kind]
		if k == nil {
			continue
		}
		k.depth(1)
		select {
		case k.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (o *outbox) start() {
	for _, k := range o.kinds {
		// Count what a previous run left.
		n := 0
		o.scan(k, time.Now().Add(100*365*24*time.Hour), func(*outItem, []byte) bool { n++; return true })
		k.depth(n)
		if k.async != nil {
			o.wg.Add(1)
			go o.dispatchAsync(k)
			continue
		}
		work := make(chan *outItem)
		for i := 0; i < k.workers; i++ {
			o.wg.Add(1)
			go o.worker(k, work)
		}
		o.wg.Add(1)
		go o.dispatch(k, work)
	}
}

func (o *outbox) close() {
	close(o.stop)
	o.wg.Wait()
}

// asyncResult is the end of one item of an async kind.
type asyncResult struct {
	it     *outItem
	err    error
	cancel context.CancelFunc
}

// dispatchAsync feeds an async kind: it starts items as in-flight slots
// free up, and a few settlers write their results (the callbacks come on
// connection goroutines, which must not wait for a sync).
func (o *outbox) dispatchAsync(k *outKind) {
	defer o.wg.Done()
	sem := make(chan struct{}, k.inflight)
	results := make(chan asyncResult, k.inflight) // never full: one slot per item in flight
	var settlers sync.WaitGroup
	for range 4 {
		settlers.Add(1)
		go func() {
			defer settlers.Done()
			for r := range results {
				r.cancel()
				o.settle(k, r.it, r.err)
				k.release(r.it)
				<-sem
			}
		}()
	}
	var started sync.WaitGroup // items whose done has not been called yet
	defer func() {
		// The links are stopped before the outbox closes, so every item
		// in flight ends soon; do not wait forever for one that does not.
		waited := make(chan struct{})
		go func() { started.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(40 * time.Second):
			o.log.Error("outbox: items still in flight at close", "kind", k.name)
			return // the settlers are left to finish (writes fail with ErrStoreClosed)
		}
		close(results)
		settlers.Wait()
	}()
	o.poll(k, func(it *outItem) bool {
		select {
		case sem <- struct{}{}:
		case <-o.stop:
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		started.Add(1)
		var once sync.Once
		k.async(ctx, it, func(err error) {
			once.Do(func() {
				results <- asyncResult{it: it, err: err, cancel: cancel}
				started.Done()
			})
		})
		return true
	})
}

// poll scans k's due items every 200 ms, or at once when kicked, until the
// outbox stops, and hands each item it claims (take) to hand; an item hand
// refuses (false: the outbox is stopping) is given back and the scan ends.
func (o *outbox) poll(k *outKind, hand func(it *outItem) bool) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		k.newScan()
		o.scan(k, time.Now(), func(it *outItem, _ []byte) bool {
			if !k.take(it) {
				return true
			}
			if !hand(it) {
				k.untake(it)
				return false
			}
			return true
		})
		select {
		case <-o.stop:
			return
		case <-k.kick:
		case <-t.C:
		}
	}
}

// scan calls fn for items of kind k due before limit, in due order.
func (o *outbox) scan(k *outKind, limit time.Time, fn func(it *outItem, key []byte) bool) {
	prefix := []byte("ob/" + k.name + "/")
	end := itemKey(k.name, limit, "")
	_ = o.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			key := it.Item().KeyCopy(nil)
			if bytes.Compare(key, end) > 0 {
				return nil
			}
			var item outItem
			err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &item) })
			if err != nil {
				o.log.Error("outbox: unreadable item", "kind", k.name, "err", err)
				continue
			}
			if !fn(&item, key) {
				return nil
			}
		}
		return nil
	})
}

func (o *outbox) dispatch(k *outKind, work chan<- *outItem) {
	defer o.wg.Done()
	defer close(work)
	o.poll(k, func(it *outItem) bool {
		select {
		case work <- it:
			return true
		case <-o.stop:
			return false
		}
	})
}

func (o *outbox) worker(k *outKind, work <-chan *outItem) {
	defer o.wg.Done()
	for it := range work {
		o.run(k, it)
		k.release(it)
	}
}

func (o *outbox) run(k *outKind, it *outItem) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := k.work(ctx, it)
	cancel()
	o.settle(k, it, err)
}

// settle writes the result of one attempt: done work is removed, work
// given up is removed after onExpire, anything else is rescheduled with
// back-off. It returns once the write committed (k.release relies on it).
func (o *outbox) settle(k *outKind, it *outItem, err error) {
	oldKey := itemKey(k.name, it.Due, it.ID)
	var perm errPermanent
	switch {
	case err == nil:
		// Removing done work need not be synced: if the removal is lost
		// in a crash the work is redone (at least once).
		if werr := o.commit.WriteLazy(groupcommit.Op{Key: oldKey, Delete: true}); werr != nil {
			o.log.Error("outbox: cannot remove done item", "kind", k.name, "id", it.ID, "err", werr)
			return
		}
		k.depth(-1)
		return
	case errors.As(err, &perm) || (k.maxAge > 0 && time.Since(it.Created) > k.maxAge):
		o.log.Warn("outbox: giving up", "kind", k.name, "id", it.ID, "attempts", it.Attempts+1, "err", err)
		if k.onExpire != nil {
			k.onExpire(it)
		}
		if k.expired != nil {
			k.expired()
		}
		if werr := o.commit.Write(groupcommit.Op{Key: oldKey, Delete: true}); werr == nil {
			k.depth(-1)
		}
		return
	}
	it.Attempts++
	it.LastErr = err.Error()
	back := time.Second << min(it.Attempts, 16)
	if k.maxBackoff > 0 && back > k.maxBackoff {
		back = k.maxBackoff
	}
	back = back/2 + rand.N(back/2+1)
	it.Due = time.Now().Add(back)
	v, _ := json.Marshal(it)
	if werr := o.commit.Write(groupcommit.Op{Key: oldKey, Delete: true}, groupcommit.Op{Key: itemKey(k.name, it.Due, it.ID), Value: v}); werr != nil {
		o.log.Error("outbox: cannot reschedule", "kind", k.name, "id", it.ID, "err", werr)
	}
	o.log.Debug("outbox: retry scheduled", "kind", k.name, "id", it.ID, "attempt", it.Attempts, "in", back, "err", err)
}
