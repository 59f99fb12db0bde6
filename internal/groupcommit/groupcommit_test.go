package groupcommit

import (
	"fmt"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// A group-commit batch larger than one Badger transaction is cut at the
// transaction limits, never inside one request's writes, and every caller
// is answered once its own transaction committed.
func TestCommitterCutsBatchesAtTxnLimits(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithSyncWrites(true).
		WithMemTableSize(1 << 20).WithValueThreshold(1 << 10))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := New(db, nil)
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
	err = db.View(func(txn *badger.Txn) error {
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
	// A request too big for any transaction fails alone.
	c2 := New(db, nil)
	defer c2.Close()
	big := make([]Op, db.MaxBatchCount()+1)
	for i := range big {
		big[i] = Op{Key: fmt.Appendf(nil, "big/%d", i), Value: []byte("x")}
	}
	done := make(chan error, 1)
	go func() { done <- c2.Write(big...) }()
	if err := c2.Write(Op{Key: []byte("small"), Value: []byte("y")}); err != nil {
		t.Fatalf("a small write next to a too-big one: %v", err)
	}
	if err := <-done; err == nil {
		t.Fatal("a write larger than a transaction succeeded")
	}
}
