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
	commit *committer
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
	name       string
	work       func(ctx context.Context, it *outItem) error
	workers    int
	maxAge     time.Duration
	maxBackoff time.Duration
	onExpire   func(it *outItem)
	kick       chan struct{}
	mu         sync.Mutex
	busy       map[string]bool // ids being worked; guarded by mu
	depth      func(delta int)
	// expired, if set, counts an item given up.
	expired func()
}

// errPermanent marks a failure not worth retrying.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

func newOutbox(db *badger.DB, c *committer, log *slog.Logger) *outbox {
	return &outbox{db: db, commit: c, log: log, kinds: map[string]*outKind{}, stop: make(chan struct{})}
}

func (o *outbox) register(k *outKind) {
	k.kick = make(chan struct{}, 1)
	k.busy = map[string]bool{}
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
	ops := make([]kv, 0, len(items))
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
		ops = append(ops, kv{key: itemKey(it.Kind, it.Due, it.ID), val: v})
	}
	if err := o.commit.write(ops...); err != nil {
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
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		o.scan(k, time.Now(), func(it *outItem, _ []byte) bool {
			k.mu.Lock()
			busy := k.busy[it.ID]
			if !busy {
				k.busy[it.ID] = true
			}
			k.mu.Unlock()
			if busy {
				return true
			}
			select {
			case work <- it:
				return true
			case <-o.stop:
				return false
			}
		})
		select {
		case <-o.stop:
			return
		case <-k.kick:
		case <-t.C:
		}
	}
}

func (o *outbox) worker(k *outKind, work <-chan *outItem) {
	defer o.wg.Done()
	for it := range work {
		o.run(k, it)
		k.mu.Lock()
		delete(k.busy, it.ID)
		k.mu.Unlock()
	}
}

func (o *outbox) run(k *outKind, it *outItem) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := k.work(ctx, it)
	cancel()
	oldKey := itemKey(k.name, it.Due, it.ID)
	var perm errPermanent
	switch {
	case err == nil:
		// Removing done work need not be synced: if the removal is lost
		// in a crash the work is redone (at least once).
		if werr := o.commit.writeLazy(kv{key: oldKey, del: true}); werr != nil {
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
		if werr := o.commit.write(kv{key: oldKey, del: true}); werr == nil {
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
	if werr := o.commit.write(kv{key: oldKey, del: true}, kv{key: itemKey(k.name, it.Due, it.ID), val: v}); werr != nil {
		o.log.Error("outbox: cannot reschedule", "kind", k.name, "id", it.ID, "err", werr)
	}
	o.log.Debug("outbox: retry scheduled", "kind", k.name, "id", it.ID, "attempt", it.Attempts, "in", back, "err", err)
}
