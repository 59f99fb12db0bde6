package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/internal/testutil"
)

// testStore is a Store on a real Badger store in dir, opened as the
// gateway opens its store.
type testStore struct {
	*Store
	db     *badger.DB
	commit *groupcommit.Committer
	closed bool
}

func openStore(t *testing.T, dir string) *testStore {
	return openStoreWith(t, dir, groupcommit.Options{})
}

// openStoreWith is openStore with the committer's options.
func openStoreWith(t *testing.T, dir string, opt groupcommit.Options) *testStore {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		t.Fatal(err)
	}
	c := groupcommit.New(db, opt)
	s := &testStore{Store: New(db, c, slog.New(slog.NewTextHandler(io.Discard, nil))), db: db, commit: c}
	t.Cleanup(s.close)
	return s
}

// close closes the queue, then its committer and store, as the gateway
// does; a second call does nothing.
func (s *testStore) close() {
	if s.closed {
		return
	}
	s.closed = true
	s.Store.Close()
	s.commit.Close()
	s.db.Close()
}

// recorder is a Deliver handler that records each attempt and answers
// with result (nil: delivered).
type recorder struct {
	mu       sync.Mutex
	attempts []Item
	at       []time.Time // when each attempt began
	result   func(it *Item) error
}

func (r *recorder) deliver(_ context.Context, it *Item) error {
	r.mu.Lock()
	r.attempts = append(r.attempts, *it)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
	if r.result == nil {
		return nil
	}
	return r.result(it)
}

func (r *recorder) got() []Item {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Item(nil), r.attempts...)
}

// delivered waits until the recorder saw n attempts and returns them.
func (r *recorder) delivered(t *testing.T, n int) []Item {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if got := len(r.got()); got < n {
			return fmt.Errorf("%d of %d attempts", got, n)
		}
		return nil
	})
	return r.got()
}

func emptied(t *testing.T, s *testStore, kind string) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := s.Count(kind, nil); n != 0 {
			return fmt.Errorf("%d items of %s still stored", n, kind)
		}
		return nil
	})
}

// Items put are delivered once each, with what was put, and removed;
// Depth is told of every item stored and removed.
func TestPutDeliver(t *testing.T) {
	s := openStore(t, t.TempDir())
	var rec recorder
	var depth atomic.Int64
	s.Register(Kind{Name: "hook", Deliver: rec.deliver, Depth: func(d int) { depth.Add(int64(d)) }})
	s.Start()
	for i := range 3 {
		if err := s.Put(&Item{ID: fmt.Sprint("id", i), Kind: "hook", Tenant: "acme", Account: "a1", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.delivered(t, 3)
	emptied(t, s, "hook")
	sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
	for i, it := range got {
		if it.ID != fmt.Sprint("id", i) || it.Kind != "hook" || it.Tenant != "acme" || it.Account != "a1" ||
			string(it.Payload) != fmt.Sprintf(`{"n":%d}`, i) || it.Attempts != 0 || it.Created.IsZero() {
			t.Errorf("delivered %+v", it)
		}
	}
	if n := len(rec.got()); n != 3 {
		t.Errorf("%d attempts for 3 items", n)
	}
	// Depth hears of a removal after it committed, when Count already
	// misses the item.
	testutil.CheckFor(t, 10*time.Second, func() error {
		if d := depth.Load(); d != 0 {
			return fmt.Errorf("depth %d after every item was delivered", d)
		}
		return nil
	})
}

// Put refuses an item it could not find again, and reports a store that
// cannot write instead of claiming the item stored.
func TestPutErrors(t *testing.T) {
	s := openStore(t, t.TempDir())
	if err := s.Put(&Item{Kind: "hook"}); !errors.Is(err, ErrBadItem) {
		t.Errorf("no id: %v", err)
	}
	if err := s.Put(&Item{ID: "x"}); !errors.Is(err, ErrBadItem) {
		t.Errorf("no kind: %v", err)
	}
	s.commit.Close()
	if err := s.Put(&Item{ID: "x", Kind: "hook"}); err == nil {
		t.Errorf("closed committer: %v", err)
	}
}

// A temporary error reschedules the item after a back-off (at least half
// of MaxBackoff here, longer than the 200 ms between scans, so a retry
// without back-off shows); the retry sees the attempt counted and its
// error.
func TestRetryAfterTemporaryError(t *testing.T) {
	s := openStore(t, t.TempDir())
	const backoff = time.Second
	rec := recorder{result: func(it *Item) error {
		if it.Attempts == 0 {
			return errors.New("endpoint busy")
		}
		return nil
	}}
	var gaveUp atomic.Int32
	s.Register(Kind{Name: "hook", Deliver: rec.deliver, MaxBackoff: backoff, MaxAge: time.Hour,
		GiveUp: func(*Item, error) { gaveUp.Add(1) }})
	s.Start()
	if err := s.Put(&Item{ID: "r1", Kind: "hook"}); err != nil {
		t.Fatal(err)
	}
	got := rec.delivered(t, 2)
	emptied(t, s, "hook")
	if got[1].Attempts != 1 || got[1].LastErr != "endpoint busy" {
		t.Errorf("retry saw attempts %d, last error %q", got[1].Attempts, got[1].LastErr)
	}
	rec.mu.Lock()
	gap := rec.at[1].Sub(rec.at[0])
	rec.mu.Unlock()
	if gap < backoff/2 {
		t.Errorf("retried after %s, the back-off is at least %s", gap, backoff/2)
	}
	if n := len(rec.got()); n != 2 || gaveUp.Load() != 0 {
		t.Errorf("%d attempts, %d given up", n, gaveUp.Load())
	}
}

// A Permanent error gives the item up at once: GiveUp sees the error, the
// item is removed and not attempted again.
func TestPermanentErrorDrops(t *testing.T) {
	s := openStore(t, t.TempDir())
	refused := errors.New("endpoint answered 410")
	rec := recorder{result: func(*Item) error { return Permanent(refused) }}
	gave := make(chan error, 1)
	s.Register(Kind{Name: "hook", Deliver: rec.deliver, MaxAge: time.Hour, GiveUp: func(it *Item, err error) { gave <- err }})
	s.Start()
	if err := s.Put(&Item{ID: "p1", Kind: "hook"}); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-gave:
	case <-time.After(10 * time.Second):
		t.Fatal("not given up")
	}
	if !errors.Is(err, refused) || !IsPermanent(err) || errors.Is(err, ErrExpired) {
		t.Errorf("GiveUp got %v", err)
	}
	emptied(t, s, "hook")
	if n := len(rec.got()); n != 1 {
		t.Errorf("%d attempts of a permanently failed item", n)
	}
}

// A temporary failure of an item older than MaxAge expires it: GiveUp sees
// ErrExpired wrapping the last error, and the item is removed.
func TestExpiryCallback(t *testing.T) {
	s := openStore(t, t.TempDir())
	down := errors.New("smsc down")
	rec := recorder{result: func(*Item) error { return down }}
	gave := make(chan *Item, 1)
	var gaveErr error
	s.Register(Kind{Name: "mt", Deliver: rec.deliver, MaxAge: time.Minute, GiveUp: func(it *Item, err error) {
		gaveErr = err
		gave <- it
	}})
	s.Start()
	if err := s.Put(&Item{ID: "old", Kind: "mt", Tenant: "acme", Created: time.Now().Add(-2 * time.Minute), Payload: []byte(`"x"`)}); err != nil {
		t.Fatal(err)
	}
	var it *Item
	select {
	case it = <-gave:
	case <-time.After(10 * time.Second):
		t.Fatal("not expired")
	}
	if it.ID != "old" || it.Tenant != "acme" || string(it.Payload) != `"x"` {
		t.Errorf("GiveUp got item %+v", it)
	}
	if !errors.Is(gaveErr, ErrExpired) || !errors.Is(gaveErr, down) || IsPermanent(gaveErr) {
		t.Errorf("GiveUp got %v", gaveErr)
	}
	emptied(t, s, "mt")
	if n := len(rec.got()); n != 1 {
		t.Errorf("%d attempts of an expired item", n)
	}
}

// Items put before a close are delivered after the store is reopened, a
// retried one with its attempts counted; Depth starts from what was left.
func TestSurvivesCloseReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	first := recorder{result: func(*Item) error { return errors.New("down") }}
	s.Register(Kind{Name: "retry", Deliver: first.deliver, MaxBackoff: time.Hour})
	s.Start()
	if err := s.Put(&Item{ID: "r", Kind: "retry"}); err != nil {
		t.Fatal(err)
	}
	first.delivered(t, 1)
	// Kind "hook" is not registered in this run: its items wait.
	for i := range 5 {
		if err := s.Put(&Item{ID: fmt.Sprint("h", i), Kind: "hook", Payload: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	s.close()

	s = openStore(t, dir)
	var hook, retry recorder
	var depth atomic.Int64
	s.Register(Kind{Name: "hook", Deliver: hook.deliver, Depth: func(d int) { depth.Add(int64(d)) }})
	s.Register(Kind{Name: "retry", Deliver: retry.deliver})
	if n := s.Count("hook", nil); n != 5 {
		t.Fatalf("%d hook items after reopening, want 5", n)
	}
	if n := s.Count("retry", func(it *Item) bool { return it.Attempts == 1 && it.LastErr == "down" }); n != 1 {
		t.Fatalf("the retried item is not stored with its attempt (%d)", n)
	}
	s.Start()
	got := hook.delivered(t, 5)
	emptied(t, s, "hook")
	seen := map[string]string{}
	for _, it := range got {
		seen[it.ID] = string(it.Payload)
	}
	for i := range 5 {
		if seen[fmt.Sprint("h", i)] != fmt.Sprint(i) {
			t.Errorf("after reopening, delivered %v", seen)
			break
		}
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if d := depth.Load(); d != 0 {
			return fmt.Errorf("depth %d after the left items were delivered", d)
		}
		return nil
	})
	// The retry is due within the hour's back-off at most; it is not due
	// yet, so it stays stored and undelivered.
	if n := len(retry.got()); n != 0 || s.Count("retry", nil) != 1 {
		t.Errorf("an item not due was delivered (%d) or lost", n)
	}
}

// A delivered item whose removal cannot be written (the commit fails and
// fences the committer) is not delivered again while the committer stays
// fenced, which would repeat it every scan; it stays stored, and once the
// fence is lifted it is delivered again (at least once) and removed.
func TestUnwritableResultNotRedelivered(t *testing.T) {
	var failing atomic.Bool
	s := openStoreWith(t, t.TempDir(), groupcommit.Options{Commit: func(txn *badger.Txn) error {
		if failing.Load() {
			txn.Discard()
			return errors.New("injected: disk full")
		}
		return txn.Commit()
	}})
	var attempts atomic.Int32
	rec := recorder{result: func(*Item) error {
		if attempts.Add(1) == 1 { // the first delivery's removal fails
			failing.Store(true)
		}
		return nil
	}}
	s.Register(Kind{Name: "mt", Deliver: rec.deliver})
	s.Start()
	if err := s.Put(&Item{ID: "m1", Kind: "mt"}); err != nil {
		t.Fatal(err)
	}
	rec.delivered(t, 1)
	testutil.CheckFor(t, 10*time.Second, func() error {
		if s.commit.Fenced() == nil {
			return errors.New("the committer is not fenced")
		}
		return nil
	})
	// A negative: nothing to poll for. Each of five scan periods would
	// have delivered the item again.
	time.Sleep(5 * pollEvery)
	if n := len(rec.got()); n != 1 {
		t.Fatalf("delivered %d times while its removal could not be written", n)
	}
	if n := s.Count("mt", nil); n != 1 {
		t.Fatalf("%d items stored while the store refused the removal, want 1", n)
	}
	failing.Store(false)
	s.commit.Unfence()
	rec.delivered(t, 2)
	emptied(t, s, "mt")
}

// Kinds run independently: a kind whose every worker is stuck does not
// hold the others (synchronous and asynchronous), each item reaches its
// own kind's handler, and once freed the stuck kind finishes.
func TestConcurrentKinds(t *testing.T) {
	s := openStore(t, t.TempDir())
	release := make(chan struct{})
	slow := recorder{result: func(*Item) error { <-release; return nil }}
	var fast recorder
	var async recorder
	s.Register(Kind{Name: "slow", Deliver: slow.deliver, Workers: 1})
	s.Register(Kind{Name: "fast", Deliver: fast.deliver, Workers: 3})
	s.Register(Kind{Name: "async", Inflight: 8, DeliverAsync: func(ctx context.Context, it *Item, done func(error)) {
		go func() { done(async.deliver(ctx, it)) }()
	}})
	s.Start()
	const per = 20
	var wg sync.WaitGroup
	for _, kind := range []string{"slow", "fast", "async"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if err := s.Put(&Item{ID: fmt.Sprint(kind, i), Kind: kind}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	fast.delivered(t, per)
	async.delivered(t, per)
	emptied(t, s, "fast")
	emptied(t, s, "async")
	if n := len(slow.got()); n != 1 {
		t.Errorf("%d slow items started with its one worker stuck", n)
	}
	close(release)
	slow.delivered(t, per)
	emptied(t, s, "slow")
	for kind, r := range map[string]*recorder{"slow": &slow, "fast": &fast, "async": &async} {
		ids := map[string]bool{}
		for _, it := range r.got() {
			if it.Kind != kind || ids[it.ID] {
				t.Errorf("kind %s handler got %s of kind %s (again: %v)", kind, it.ID, it.Kind, ids[it.ID])
			}
			ids[it.ID] = true
		}
	}
}

// One tenant's items hold at most PerTenant workers: another tenant's
// item goes through while the first tenant's are stuck.
func TestPerTenantCap(t *testing.T) {
	s := openStore(t, t.TempDir())
	release := make(chan struct{})
	defer close(release)
	rec := recorder{result: func(it *Item) error {
		if it.Tenant == "dead" {
			<-release
		}
		return nil
	}}
	s.Register(Kind{Name: "hook", Deliver: rec.deliver, Workers: 4, PerTenant: 2})
	s.Start()
	for i := range 4 {
		if err := s.Put(&Item{ID: fmt.Sprint("d", i), Kind: "hook", Tenant: "dead"}); err != nil {
			t.Fatal(err)
		}
	}
	rec.delivered(t, 2)
	if err := s.Put(&Item{ID: "live", Kind: "hook", Tenant: "live"}); err != nil {
		t.Fatal(err)
	}
	got := rec.delivered(t, 3)
	dead := 0
	for _, it := range got {
		if it.Tenant == "dead" {
			dead++
		}
	}
	if dead != 2 || got[len(got)-1].ID != "live" {
		t.Errorf("attempts %d of the dead tenant (want 2), last %s", dead, got[len(got)-1].ID)
	}
}

// Close while items are being delivered waits for the attempts under way
// (synchronous and asynchronous) and writes their results: after a
// reopen the delivered item is gone and the failed one is stored with
// its attempt, while an item that was not started is still there.
func TestCloseWhileDelivering(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	release := make(chan struct{})
	entered := make(chan string, 2)
	s.Register(Kind{Name: "sync", Workers: 1, Deliver: func(ctx context.Context, it *Item) error {
		entered <- it.ID
		<-release
		return nil
	}})
	s.Register(Kind{Name: "async", Inflight: 1, DeliverAsync: func(ctx context.Context, it *Item, done func(error)) {
		entered <- it.ID
		go func() { <-release; done(errors.New("smsc closed")) }()
	}})
	s.Start()
	for _, it := range []*Item{{ID: "s1", Kind: "sync"}, {ID: "s2", Kind: "sync"}, {ID: "a1", Kind: "async"}, {ID: "a2", Kind: "async"}} {
		if err := s.Put(it); err != nil {
			t.Fatal(err)
		}
	}
	started := map[string]bool{}
	for range 2 {
		select {
		case id := <-entered:
			started[id] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("deliveries not started: %v", started)
		}
	}
	closed := make(chan struct{})
	go func() { s.Store.Close(); close(closed) }()
	testutil.CheckFor(t, 10*time.Second, func() error {
		select {
		case <-s.stop:
			return nil
		default:
			return errors.New("Close has not begun")
		}
	})
	select {
	case <-closed:
		t.Fatal("Close returned while deliveries were under way")
	default:
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return after the deliveries ended")
	}
	s.close()
	if len(entered) != 0 {
		t.Fatalf("more items started after Close: %v %d", started, len(entered))
	}

	s = openStore(t, dir)
	syncLeft, asyncLeft := map[string]int{}, map[string]int{}
	s.Count("sync", func(it *Item) bool { syncLeft[it.ID] = it.Attempts; return true })
	s.Count("async", func(it *Item) bool { asyncLeft[it.ID] = it.Attempts; return true })
	var syncStarted, asyncStarted string
	for id := range started {
		if id[0] == 's' {
			syncStarted = id
		} else {
			asyncStarted = id
		}
	}
	if _, ok := syncLeft[syncStarted]; ok || len(syncLeft) != 1 {
		t.Errorf("sync items stored after close: %v (delivered: %s)", syncLeft, syncStarted)
	}
	if a, ok := asyncLeft[asyncStarted]; !ok || a != 1 || len(asyncLeft) != 2 {
		t.Errorf("async items stored after close: %v (failed once: %s)", asyncLeft, asyncStarted)
	}
}

// BenchmarkPutDeliver: Put one item at a time from many goroutines and
// deliver it (a handler that succeeds at once); the timer runs until every
// item was delivered and removed, so allocs/op count the queue's whole
// per-item path (put, scan, dispatch, settle).
func BenchmarkPutDeliver(b *testing.B) {
	db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		b.Fatal(err)
	}
	c := groupcommit.New(db, groupcommit.Options{})
	s := New(db, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var delivered atomic.Int64
	var depth atomic.Int64
	s.Register(Kind{Name: "hook", Workers: 8, Depth: func(d int) { depth.Add(int64(d)) },
		Deliver: func(context.Context, *Item) error { delivered.Add(1); return nil }})
	s.Start()
	defer func() { s.Close(); c.Close(); db.Close() }()
	payload := []byte(`{"url":"http://127.0.0.1:1/hook","event":{"id":"x"}}`)
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprint("id", i)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				if err := s.Put(&Item{ID: ids[i], Kind: "hook", Tenant: "acme", Payload: payload}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for deadline := time.Now().Add(time.Minute); delivered.Load() < int64(b.N) || depth.Load() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d delivered, depth %d", delivered.Load(), b.N, depth.Load())
		}
	}
	b.StopTimer()
}
