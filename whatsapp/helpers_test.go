package whatsapp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/optgate/optgate/internal/testutil"
)

func TestMain(m *testing.M) {
	if os.Getenv("WHATSAPP_TEST_LOG") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	lc := testutil.StartLeakCheck()
	os.Exit(lc.Exit(m.Run()))
}

// openDB opens a spool store as the gateway does: WithSyncWrites(true),
// so every commit is fsynced before it returns.
func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(nil).
		WithMemTableSize(16 << 20).
		WithValueLogFileSize(32 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(8 << 20).
		WithNumCompactors(2).
		WithNumVersionsToKeep(1)
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatalf("open badger: %v", err)
	}
	// Closed at cleanup, after the Receivers started on it (a deferred close
	// would run first and pull the store from under their sweeper).
	t.Cleanup(func() { db.Close() })
	return db
}

func requireNoErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// recorder is a Handler that records events.
type recorder struct {
	mu     sync.Mutex
	events []Event
	fail   func(Event) error // optional
}

func (r *recorder) HandleEvent(ctx context.Context, ev Event) error {
	if r.fail != nil {
		if err := r.fail(ev); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	return nil
}

func (r *recorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

const (
	testSecret = "test_app_secret"
	testVerify = "verify-me"
	testPID    = "106540352242922"
)

// startReceiver starts a Receiver on db served on 127.0.0.1:0 and returns it with its URL.
// The receiver is closed at cleanup (closing twice is harmless).
func startReceiver(t testing.TB, db *badger.DB, h Handler, mutate func(*ReceiverConfig)) (*Receiver, string) {
	t.Helper()
	cfg := ReceiverConfig{
		AppSecret: testSecret, VerifyToken: testVerify, PhoneNumberIDs: []string{testPID}, Handler: h,
		RetryBase: time.Millisecond, RetryMax: 10 * time.Millisecond, SweepInterval: 200 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := NewReceiver(db, cfg)
	requireNoErr(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err)
	done := make(chan error, 1)
	go func() { done <- r.Serve(ln) }()
	t.Cleanup(func() {
		_ = r.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return")
		}
	})
	return r, "http://" + ln.Addr().String() + "/webhooks/whatsapp"
}
