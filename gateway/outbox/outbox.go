package outbox

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
)

// Errors the queue reports.
var (
	// ErrExpired wraps the last error of an item given up because it is
	// older than its kind's MaxAge (see Kind.GiveUp).
	ErrExpired = errors.New("outbox: expired")
	// ErrBadItem is returned by Put for an item without an ID or a Kind.
	ErrBadItem = errors.New("outbox: item needs an id and a kind")
)

// Item is one unit of durable work. Kind names the Kind that delivers it
// and ID identifies it within the kind (a second Put of the same ID with
// the same Due replaces the first); Tenant, Account and Payload are the
// caller's, kept as given. The queue sets Created and Due when they are
// zero (both to the time of Put), and Attempts, LastErr and Due as it
// retries.
type Item struct {
	ID       string          `json:"id"`
	Kind     string          `json:"kind"`
	Tenant   string          `json:"tenant,omitempty"`
	Account  string          `json:"account,omitempty"`
	Created  time.Time       `json:"created"`
	Due      time.Time       `json:"due"`
	Attempts int             `json:"attempts"` // failed attempts so far
	LastErr  string          `json:"last_error,omitempty"`
	Payload  json.RawMessage `json:"payload"`
}

// Encode stamps an item about to be stored (Created now and Due Created
// when unset) and returns its stored form, the JSON every queue keeps.
func (it *Item) Encode() ([]byte, error) {
	if it.Created.IsZero() {
		it.Created = time.Now()
	}
	if it.Due.IsZero() {
		it.Due = it.Created
	}
	return json.Marshal(it)
}

// Kind is one kind of work: its name, the handler that delivers its items
// and its policy. Exactly one of Deliver and DeliverAsync is set.
//
// A handler's result decides the item's fate: nil removes it (delivered);
// an error wrapped by Permanent gives it up at once; any other error is
// temporary and the item is attempted again after a back-off, unless it
// is older than MaxAge, when it is given up (expired).
type Kind struct {
	Name string
	// Deliver delivers one item; up to Workers items at once.
	Deliver func(ctx context.Context, it *Item) error
	// DeliverAsync starts delivering one item and returns without waiting;
	// it calls done exactly once with the result, from any goroutine (a
	// second call is ignored). Up to Inflight items are in flight at once.
	// Use it when a delivery waits on a remote answer that would otherwise
	// hold a worker (an SMSC's window).
	DeliverAsync func(ctx context.Context, it *Item, done func(error))
	// Workers is the number of items Deliver works at once; default 4.
	Workers int
	// Inflight is the number of items DeliverAsync has in flight at once;
	// default 64.
	Inflight int
	// PerTenant, if positive, caps the items of one Tenant worked at once,
	// so that one tenant's dead endpoint cannot hold every worker.
	PerTenant int
	// Timeout bounds one attempt: the handler's ctx ends after it;
	// default 30 s.
	Timeout time.Duration
	// MaxAge, if positive, is how long after Created an item is still
	// retried: a temporary failure after it gives the item up.
	MaxAge time.Duration
	// MaxBackoff caps the wait before a retry; the wait doubles with each
	// attempt from 2 s (half of it, at random, is taken off); default (0)
	// caps it at 2^16 s.
	MaxBackoff time.Duration
	// GiveUp, if set, is called with an item the queue gives up (before
	// its removal) and the error that ended it: a Permanent error, or
	// ErrExpired wrapping the last temporary error.
	GiveUp func(it *Item, err error)
	// Depth, if set, is told each change in the number of this kind's
	// stored items: at Start what a previous run left, +1 a Put, -1 a
	// removal.
	Depth func(delta int)
}

// Queue is the durable queue as its users see it; Store implements it on
// Badger. The doc.go of this package says why it is this small.
type Queue interface {
	// Register adds a kind; it is called before Start.
	Register(k Kind)
	// Start starts delivering every registered kind's items, those a
	// previous run left included.
	Start()
	// Put stores items durably and returns once they are synced; then
	// they are delivered at least once, or given up.
	Put(items ...*Item) error
	// Close stops delivering: it returns once the attempts under way
	// ended and their results were written.
	Close()
}

var _ Queue = (*Store)(nil)

// permanent marks an error not worth retrying.
type permanent struct{ error }

func (e permanent) Unwrap() error { return e.error }

// Permanent wraps err (a handler's result) so that the item is given up at
// once instead of retried.
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err was wrapped by Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Store is a Queue in a Badger store, written through a group committer
// shared with the store's other writers. It is safe for concurrent use.
//
// Keys: "ob/" kind "/" due (8 bytes, big-endian unix nanos) id → the
// item's JSON; so a kind's items are scanned in due order.
type Store struct {
	db     *badger.DB
	commit *groupcommit.Committer
	log    *slog.Logger
	kinds  map[string]*kind // written only before Start
	wg     sync.WaitGroup
	stop   chan struct{}
	once   sync.Once // closes stop
}

// New returns a Store over db, which writes through c (a committer on
// db). Closing the Store leaves db and c open: close them after it.
func New(db *badger.DB, c *groupcommit.Committer, log *slog.Logger) *Store {
	return &Store{db: db, commit: c, log: log, kinds: map[string]*kind{}, stop: make(chan struct{})}
}

// Register adds k; it must be called before Start, once per name. It
// panics if k has no name or not exactly one handler (a programming
// error).
func (s *Store) Register(k Kind) {
	if k.Name == "" || (k.Deliver == nil) == (k.DeliverAsync == nil) {
		panic(fmt.Sprintf("outbox: kind %q needs a name and exactly one of Deliver and DeliverAsync", k.Name))
	}
	k = k.WithDefaults()
	s.kinds[k.Name] = &kind{Kind: k, kick: make(chan struct{}, 1), busy: map[string]bool{},
		finished: map[string]struct{}{}, tenantBusy: map[string]int{}, held: map[string]struct{}{}}
}

// WithDefaults is k with the defaults in place of its zero Inflight,
// Workers, Timeout and Depth (what Register does; for other Queues).
func (k Kind) WithDefaults() Kind {
	if k.Inflight <= 0 {
		k.Inflight = 64
	}
	if k.Workers <= 0 {
		k.Workers = 4
	}
	if k.Timeout <= 0 {
		k.Timeout = 30 * time.Second
	}
	if k.Depth == nil {
		k.Depth = func(int) {}
	}
	return k
}

// Backoff is the wait before the next attempt of an item that failed
// attempts times (at least 1): 2 s doubling per attempt, capped at
// maxBackoff when positive (else at 2^16 s), half of it taken off at
// random.
func Backoff(attempts int, maxBackoff time.Duration) time.Duration {
	back := time.Second << min(attempts, 16)
	if maxBackoff > 0 && back > maxBackoff {
		back = maxBackoff
	}
	return back/2 + rand.N(back/2+1)
}

func itemKey(kind string, due time.Time, id string) []byte {
	b := make([]byte, 0, 4+len(kind)+8+len(id))
	b = append(b, "ob/"...)
	b = append(b, kind...)
	b = append(b, '/')
	b = binary.BigEndian.AppendUint64(b, uint64(due.UnixNano()))
	return append(b, id...)
}

// Put stores items durably, all in one synced group commit, and wakes
// their kinds. Items of a kind not registered are stored and wait for a
// run that registers it.
func (s *Store) Put(items ...*Item) error {
	ops := make([]groupcommit.Op, 0, len(items))
	for _, it := range items {
		if it.ID == "" || it.Kind == "" {
			return ErrBadItem
		}
		v, err := it.Encode()
		if err != nil {
			return err
		}
		ops = append(ops, groupcommit.Op{Key: itemKey(it.Kind, it.Due, it.ID), Value: v})
	}
	if err := s.commit.Write(ops...); err != nil {
		return err
	}
	for _, it := range items {
		k := s.kinds[it.Kind]
		if k == nil {
			continue
		}
		k.Depth(1)
		select {
		case k.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// forever is a due limit past every stored item.
const forever = 100 * 365 * 24 * time.Hour

// Start counts what a previous run left (Kind.Depth) and starts delivering
// every registered kind.
func (s *Store) Start() {
	for _, k := range s.kinds {
		n := 0
		s.scan(k.Name, time.Now().Add(forever), func(*Item, []byte) bool { n++; return true })
		k.Depth(n)
		if k.DeliverAsync != nil {
			s.wg.Add(1)
			go s.dispatchAsync(k)
			continue
		}
		work := make(chan *Item)
		for range k.Workers {
			s.wg.Add(1)
			go s.worker(k, work)
		}
		s.wg.Add(1)
		go s.dispatch(k, work)
	}
}

// Close stops delivering. Synchronous attempts under way end (each within
// its Timeout) and their results are written before it returns; for
// asynchronous ones it waits up to 40 s for their done. Items whose result
// was not written are delivered again by the next run. Later calls wait
// for the first to finish.
func (s *Store) Close() {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
}

// Count returns the number of stored items of kind (due or not, being
// delivered or not) for which match, if not nil, is true.
func (s *Store) Count(kind string, match func(it *Item) bool) int {
	n := 0
	s.scan(kind, time.Now().Add(forever), func(it *Item, _ []byte) bool {
		if match == nil || match(it) {
			n++
		}
		return true
	})
	return n
}
