package consent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/optgate/optgate/internal/testutil"
	dto "github.com/prometheus/client_model/go"
)

// TestSyncWritesOn: the consent DB syncs every transaction commit itself
// (see the durability comment in Open); db.Sync after several unsynced
// transactions is not enough once a memtable rotates between them.
func TestSyncWritesOn(t *testing.T) {
	h := newHarness(t)
	if !h.s.db.Opts().SyncWrites {
		t.Fatal("consent DB opened with SyncWrites off")
	}
}

// TestGroupCommitOneTxnPerBatch runs many concurrent opt-outs on a store
// with tiny memtables, so that memtables rotate many times under load, and
// checks that the committer acknowledged every batch after exactly one
// (synced) transaction: a batch is never split over several transactions.
// After a reopen every acknowledged opt-out is there.
func TestGroupCommitOneTxnPerBatch(t *testing.T) {
	h := &harness{t: t, clock: newClock(), dir: t.TempDir()}
	h.cfg = Config{Dir: h.dir, Tenants: []TenantConfig{testTenant("acme")}, Clock: h.clock.Now, BadgerLowMemory: true,
		badgerOptions: func(o badger.Options) badger.Options {
			// 512 KiB memtables: a transaction may hold about 57 KiB (15%
			// of a memtable, of which the committer uses 3/4), so batches
			// are cut at the size limit and memtables rotate often.
			return o.WithMemTableSize(512 << 10).WithValueThreshold(16 << 10).WithNumMemtables(2)
		}}
	h.open()
	t.Cleanup(func() { h.s.Close() })

	var txns atomic.Int64
	h.s.commitTxn = func(txn *badger.Txn) error {
		txns.Add(1)
		return txn.Commit()
	}
	const workers, per = 32, 50
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				rcpt := fmt.Sprintf("+1202555%02d%02d", w, i)
				// Punctuation pads the evidence (raw text) so that changes are
				// big and batches hit the transaction size limit.
				for j, text := range []string{"STOP" + strings.Repeat("!", 900), "START", "STOP"} {
					res, err := h.s.Inbound(ctx, InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA,
						Recipient: rcpt, Text: text, MessageID: fmt.Sprintf("m-%d-%d-%d", w, i, j)})
					if err == nil && !res.Changed {
						err = fmt.Errorf("%s %.8q: nothing changed", rcpt, text)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var m dto.Metric
	requireNoErr(t, h.s.metrics.batchSize.Write(&m))
	batches, reqs := int64(m.GetHistogram().GetSampleCount()), int64(m.GetHistogram().GetSampleSum())
	testutil.RequireEqual(t, txns.Load(), batches, "Badger transactions committed vs batches acknowledged")
	if reqs < 3*workers*per {
		t.Fatalf("only %d requests went through the committer", reqs)
	}
	if batches >= reqs {
		t.Logf("no batching happened (%d batches for %d requests)", batches, reqs)
	}
	if len(h.s.db.Tables()) == 0 {
		t.Fatal("no memtable was flushed: the test did not exercise rotation")
	}
	t.Logf("%d requests in %d batches, %d tables", reqs, batches, len(h.s.db.Tables()))
	h.reopen()
	for w := 0; w < workers; w++ {
		for i := 0; i < per; i++ {
			rcpt := fmt.Sprintf("+1202555%02d%02d", w, i)
			testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcpt, 0).Reason, ReasonOptedOut, rcpt)
		}
	}
}

// TestTooBigChangeRefused: a change too big for one Badger transaction is
// refused with an error, changes nothing, and does not fence the store.
func TestTooBigChangeRefused(t *testing.T) {
	h := &harness{t: t, clock: newClock(), dir: t.TempDir()}
	h.cfg = Config{Dir: h.dir, Tenants: []TenantConfig{testTenant("acme")}, Clock: h.clock.Now, BadgerLowMemory: true,
		badgerOptions: func(o badger.Options) badger.Options {
			return o.WithMemTableSize(512 << 10).WithValueThreshold(16 << 10) // transactions of ~76 KiB at most
		}}
	h.open()
	t.Cleanup(func() { h.s.Close() })
	var b strings.Builder
	b.WriteString("recipient\n")
	for i := 0; i < 500; i++ { // one import batch of 500 rows: far over the limit
		fmt.Fprintf(&b, "+1514555%04d\n", i)
	}
	_, err := h.s.Import(context.Background(), strings.NewReader(b.String()), ImportOptions{Tenant: "acme", Source: "t", Operator: "ops"})
	if !errors.Is(err, ErrStorage) || !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("want a too-big error, got %v", err)
	}
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "+15145550000", 0).Allow, true, "nothing applied")
	h.mo("acme", ChannelSMS, senderA, rcptA, "STOP") // the store still takes writes
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, 0).Reason, ReasonOptedOut)
}
