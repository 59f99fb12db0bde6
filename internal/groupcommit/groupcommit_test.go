package groupcommit

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/optgate/optgate/internal/testutil"
)

func openDB(t *testing.T, o func(badger.Options) badger.Options) *badger.DB {
	t.Helper()
	opts := badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithSyncWrites(true)
	if o != nil {
		opts = o(opts)
	}
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// unless returns nil when ok, else an error saying what is not so yet.
func unless(ok bool, what string) error {
	if ok {
		return nil
	}
	return errors.New("not so yet: " + what)
}

func op(k string) Op { return Op{Key: []byte(k), Value: []byte("v")} }

func has(t *testing.T, db *badger.DB, key string) bool {
	t.Helper()
	found, err := Read(db, []byte(key), nil)
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// gate is a commit hook that holds the first commit until released, so
// that tests can queue requests behind it.
type gate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	fail    atomic.Pointer[error] // commit, then report this error
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) commit(txn *badger.Txn) error {
	g.once.Do(func() { close(g.entered); <-g.release })
	err := txn.Commit()
	if p := g.fail.Load(); p != nil && err == nil {
		return *p
	}
	return err
}

// A group-commit batch larger than one Badger transaction is carried over
// at the transaction limits, never inside one request's writes, and every
// caller is answered once its own transaction committed.
func TestCommitterCutsBatchesAtTxnLimits(t *testing.T) {
	db := openDB(t, func(o badger.Options) badger.Options {
		return o.WithMemTableSize(1 << 20).WithValueThreshold(1 << 10)
	})
	c := New(db, Options{})
	val := make([]byte, 900)
	const writers, perWriter, opsPerReq = 16, 20, 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				ops := make([]Op, opsPerReq)
				for j := range ops {
					ops[j] = Op{Key: fmt.Appendf(nil, "k/%02d/%03d/%d", w, i, j), Value: val}
				}
				errs <- c.Write(ops...)
			}
		}()
	}
	wg.Wait()
	c.Close()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil || n != writers*perWriter*opsPerReq {
		t.Fatalf("%d of %d entries stored (%v)", n, writers*perWriter*opsPerReq, err)
	}
	// 2,560 writes of ~1 KB cannot all fit in one transaction of a 1 MB
	// memtable, and no request was committed alone unless it had to be.
	if got := c.Transactions(); got < 2 || got > writers*perWriter {
		t.Fatalf("%d transactions for %d requests", got, writers*perWriter)
	}
}

// A request too big for any transaction fails alone with ErrTxnTooBig:
// the request queued with it is stored and the committer is not fenced.
func TestTooBigRequestFailsAlone(t *testing.T) {
	db := openDB(t, nil)
	g := newGate()
	c := New(db, Options{Commit: g.commit})
	defer c.Close()
	go c.Write(op("first")) // holds the committer while the others queue
	<-g.entered
	big := make([]Op, db.MaxBatchCount()+1)
	for i := range big {
		big[i] = Op{Key: fmt.Appendf(nil, "big/%d", i), Value: []byte("x")}
	}
	bigErr, smallErr, emptyErr := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() { bigErr <- c.Write(big...) }()
	testutil.CheckFor(t, 5*time.Second, func() error { return unless(len(c.reqs) == 1, "big request queued") })
	go func() { emptyErr <- c.Write(op("ok"), Op{Value: []byte("no key")}) }()
	testutil.CheckFor(t, 5*time.Second, func() error { return unless(len(c.reqs) == 2, "empty-key request queued") })
	go func() { smallErr <- c.Write(op("small")) }()
	testutil.CheckFor(t, 5*time.Second, func() error { return unless(len(c.reqs) == 3, "small request queued") })
	close(g.release)
	if err := <-bigErr; !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("too-big request: %v, want ErrTxnTooBig", err)
	}
	if err := <-emptyErr; !errors.Is(err, badger.ErrEmptyKey) {
		t.Fatalf("request with an empty key: %v, want ErrEmptyKey", err)
	}
	if err := <-smallErr; err != nil {
		t.Fatalf("a small write queued with a too-big one: %v", err)
	}
	if c.Fenced() != nil {
		t.Fatalf("fenced by a refused request: %v", c.Fenced())
	}
	if has(t, db, "big/0") || has(t, db, "ok") || !has(t, db, "small") {
		t.Fatal("refused requests left writes, or the small one is missing")
	}
	if err := c.Write(op("after")); err != nil {
		t.Fatalf("write after a refused request: %v", err)
	}
}

// A failed commit fences the committer: the batch's writers get the
// failure, no applied function runs, OnFence is called once, and every
// later write is refused with ErrFenced wrapping the failure, until
// Unfence.
func TestFailedCommitFences(t *testing.T) {
	db := openDB(t, nil)
	fsync := errors.New("fsync: input/output error")
	var fences atomic.Int32
	var batches []Batch
	var mu sync.Mutex
	fail := atomic.Bool{}
	c := New(db, Options{
		Commit: func(txn *badger.Txn) error {
			if fail.Load() {
				txn.Discard()
				return fsync
			}
			return txn.Commit()
		},
		OnFence: func(err error) {
			if !errors.Is(err, fsync) {
				t.Errorf("OnFence(%v), want the commit's error", err)
			}
			fences.Add(1)
		},
		OnBatch: func(b Batch) { mu.Lock(); batches = append(batches, b); mu.Unlock() },
	})
	defer c.Close()
	if err := c.Write(op("before")); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	applied := false
	err := c.Apply([]Op{op("lost")}, func() { applied = true })
	if err == nil || !errors.Is(err, fsync) || errors.Is(err, ErrFenced) {
		t.Fatalf("failed commit: %v, want the commit error (not ErrFenced)", err)
	}
	if applied {
		t.Fatal("applied ran for a failed commit")
	}
	fail.Store(false) // the disk is fine again: the fence holds anyway
	for i := 0; i < 3; i++ {
		err := c.Apply([]Op{op(fmt.Sprint("later", i))}, func() { applied = true })
		if !errors.Is(err, ErrFenced) || !errors.Is(err, fsync) {
			t.Fatalf("write %d after a failed commit: %v, want ErrFenced wrapping the failure", i, err)
		}
	}
	if applied || has(t, db, "later0") {
		t.Fatal("a write refused by the fence was applied or stored")
	}
	if got := fences.Load(); got != 1 {
		t.Fatalf("OnFence called %d times, want 1", got)
	}
	if c.Fenced() == nil {
		t.Fatal("Fenced() nil after a failed commit")
	}
	mu.Lock()
	if n := len(batches); n != 2 || batches[0].Err != nil || !errors.Is(batches[1].Err, fsync) {
		t.Fatalf("batches reported: %+v, want one good and one failed", batches)
	}
	mu.Unlock()
	c.Unfence()
	if err := c.Write(op("unfenced")); err != nil || !has(t, db, "unfenced") {
		t.Fatalf("write after Unfence: %v", err)
	}
}

// Writers queued while a commit syncs share the next transaction, and the
// applied functions run after their commit, in queue order, before each
// writer is answered.
func TestConcurrentWritersShareTransactionsInOrder(t *testing.T) {
	db := openDB(t, nil)
	g := newGate()
	var committed atomic.Int32 // transactions committed so far, by the hook
	c := New(db, Options{Commit: func(txn *badger.Txn) error {
		err := g.commit(txn)
		committed.Add(1)
		return err
	}})
	defer c.Close()
	go c.Write(op("first"))
	<-g.entered
	const n = 50
	var mu sync.Mutex
	var order []int
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- c.Apply([]Op{op(fmt.Sprint("w", i))}, func() {
				if committed.Load() != 2 {
					t.Errorf("applied %d ran before its commit", i)
				}
				if !has(t, db, fmt.Sprint("w", i)) {
					t.Errorf("applied %d ran before its write was visible", i)
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
			})
		}()
		testutil.CheckFor(t, 5*time.Second, func() error { return unless(len(c.reqs) == i+1, "writer queued") })
	}
	close(g.release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Transactions(); got != 2 {
		t.Fatalf("%d transactions for 1 + %d queued writers, want 2", got, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := slices.Collect(func(yield func(int) bool) {
		for i := range n {
			yield(i)
		}
	}); !slices.Equal(order, want) {
		t.Fatalf("applied order %v, want queue order", order)
	}
}

// Close answers every queued write (stored) before it returns; writes
// after Close are refused with ErrClosed.
func TestCloseDrains(t *testing.T) {
	db := openDB(t, nil)
	g := newGate()
	c := New(db, Options{Commit: g.commit})
	go c.Write(op("first"))
	<-g.entered
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- c.Write(op(fmt.Sprint("q", i))) }()
	}
	testutil.CheckFor(t, 5*time.Second, func() error { return unless(len(c.reqs) == n, "writers queued") })
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned with writes queued")
	case <-time.After(20 * time.Millisecond):
	}
	close(g.release)
	<-closed
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("queued write at Close: %v", err)
		}
	}
	for i := range n {
		if !has(t, db, fmt.Sprint("q", i)) {
			t.Fatalf("queued write q%d not stored at Close", i)
		}
	}
	if err := c.Write(op("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close: %v, want ErrClosed", err)
	}
}

// WriteAll stores more ops than one transaction takes, in requests that
// share batches, and counts what it stored; after a failed commit it
// stores nothing and says why.
func TestWriteAll(t *testing.T) {
	db := openDB(t, func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(1 << 10) })
	var fail atomic.Bool
	c := New(db, Options{Commit: func(txn *badger.Txn) error {
		if fail.Load() {
			txn.Discard()
			return errors.New("fsync: no space left on device")
		}
		return txn.Commit()
	}})
	defer c.Close()
	ops := make([]Op, 3*int(db.MaxBatchCount()))
	for i := range ops {
		ops[i] = Op{Key: fmt.Appendf(nil, "all/%06d", i), Value: []byte("v")}
	}
	n, err := c.WriteAll(ops)
	if err != nil || n != len(ops) {
		t.Fatalf("WriteAll: %d of %d stored, %v", n, len(ops), err)
	}
	if !has(t, db, "all/000000") || !has(t, db, fmt.Sprintf("all/%06d", len(ops)-1)) {
		t.Fatal("WriteAll said stored, entries missing")
	}
	// Requests of a quarter of a transaction, batched three or four to a
	// transaction: far fewer transactions than requests.
	if got := c.Transactions(); got < 4 || got > 8 {
		t.Fatalf("%d transactions for %d ops (Badger's limit %d per transaction)", got, len(ops), db.MaxBatchCount())
	}
	fail.Store(true)
	n, err = c.WriteAll(ops[:10])
	if err == nil || n != 0 {
		t.Fatalf("WriteAll through a failing commit: %d stored, %v", n, err)
	}
	if n, err = c.WriteAll(ops[:10]); !errors.Is(err, ErrFenced) || n != 0 {
		t.Fatalf("WriteAll when fenced: %d stored, %v, want ErrFenced", n, err)
	}
}
