package whatsapp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// The window of a user message is recorded in the spool commit of its body: open as soon as
// the 200 is sent, while the only worker is still busy with an earlier body.
func TestWindowRecordedWithTheBody(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		if ev.Kind == KindMessage && ev.Message.From == "16505550001" {
			select {
			case entered <- struct{}{}:
			default:
			}
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	r, url := startReceiver(t, db, h, func(c *ReceiverConfig) { c.Workers = 1 })
	defer close(release)
	now := time.Now()
	testutil.RequireEqual(t, post(t, url, testSecret, whatsapptest.InboundText(meta, "16505550001", "wamid.wa1", "hi", now)), 200, "first status")
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not called")
	}
	testutil.RequireEqual(t, post(t, url, testSecret, whatsapptest.InboundText(meta, "16505550002", "wamid.wa2", "hi", now)), 200, "second status")
	testutil.RequireEqual(t, r.Window().Open(testPID, "16505550002", now.Add(time.Second)), true, "window open at the 200")
	testutil.RequireEqual(t, r.Window().Open(testPID, "16505550003", now.Add(time.Second)), false, "another user's window")
}

// countPrefix counts the keys under prefix.
func countPrefix(t testing.TB, db *badger.DB, prefix string) int {
	t.Helper()
	n := 0
	requireNoErr(t, db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = []byte(prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}))
	return n
}

// The workers' outcomes ride in the committer's group commits; Shutdown returns only after the
// last ones are committed: every handled event is recorded as seen and every body deleted, and
// a redelivery after a restart is a duplicate.
func TestShutdownCommitsOutcomes(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	rec := &recorder{}
	r, url := startReceiver(t, db, rec, nil)
	const n = 40
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = whatsapptest.InboundText(meta, fmt.Sprintf("165055%05d", i), fmt.Sprintf("wamid.sd%d", i), "hello", time.Now())
		testutil.RequireEqual(t, post(t, url, testSecret, bodies[i]), 200, "status")
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if rec.count() != n {
			return fmt.Errorf("%d of %d handled", rec.count(), n)
		}
		return nil
	})
	requireNoErr(t, r.Shutdown(context.Background()))
	testutil.RequireEqual(t, countPrefix(t, db, spoolPrefix), 0, "bodies left in the spool")
	testutil.RequireEqual(t, countPrefix(t, db, dedupPrefix), n, "seen keys")
	requireNoErr(t, db.Close())

	db = openDB(t, dir)
	defer db.Close()
	rec2 := &recorder{}
	r2, url := startReceiver(t, db, rec2, nil)
	for _, b := range bodies[:5] {
		testutil.RequireEqual(t, post(t, url, testSecret, b), 200, "redelivery")
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if c := countPrefix(t, db, spoolPrefix); c != 0 {
			return fmt.Errorf("%d redelivered bodies left in the spool", c)
		}
		return nil
	})
	requireNoErr(t, r2.Shutdown(context.Background()))
	testutil.RequireEqual(t, rec2.count(), 0, "events handled after redelivery")
}

// The spool writes through the group committer it is given, and so follows its failure
// policy: a failed commit answers 500 (Meta retries), and later bodies are refused too while
// the committer is fenced, although the disk would take them; once the fence is lifted, a body
// is spooled and handled again.
func TestSpoolFencedAfterFailedCommit(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	var fail atomic.Bool
	c := groupcommit.New(db, groupcommit.Options{Commit: func(txn *badger.Txn) error {
		if fail.Load() {
			txn.Discard()
			return errors.New("fsync: input/output error")
		}
		return txn.Commit()
	}})
	defer c.Close()
	rec := &recorder{}
	_, url := startReceiver(t, db, rec, func(cfg *ReceiverConfig) { cfg.Committer = c })
	now := time.Now()
	fail.Store(true)
	testutil.RequireEqual(t, post(t, url, testSecret, whatsapptest.InboundText(meta, "16505550001", "wamid.f1", "hi", now)), 500,
		"status of a body whose commit failed")
	fail.Store(false)
	testutil.RequireEqual(t, post(t, url, testSecret, whatsapptest.InboundText(meta, "16505550002", "wamid.f2", "hi", now)), 500,
		"status of a body while the committer is fenced")
	if err := c.Fenced(); !errors.Is(err, groupcommit.ErrFenced) {
		t.Fatalf("committer not fenced after the failed commit: %v", err)
	}
	c.Unfence()
	testutil.RequireEqual(t, post(t, url, testSecret, whatsapptest.InboundText(meta, "16505550003", "wamid.f3", "hi", now)), 200,
		"status once the fence is lifted")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if rec.count() != 1 {
			return fmt.Errorf("%d events handled, want the one spooled after the fence", rec.count())
		}
		return nil
	})
}
