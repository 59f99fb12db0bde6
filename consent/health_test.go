package consent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/optgate/optgate/internal/testutil"
)

// TestReopenLiftsFence: a commit whose fsync "failed" after its data
// reached Badger fences the store; Reopen (on the same process, without
// Close) replays Badger's logs, brings the memory index in line with the
// disk (the change that did land is honoured), and writes are accepted
// again.
func TestReopenLiftsFence(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.mo("acme", ChannelSMS, senderA, "+12025550100", "STOP")
	h.s.commitTxn = func(txn *badger.Txn) error {
		if err := txn.Commit(); err != nil {
			return err
		}
		return errors.New("fsync: input/output error")
	}
	_, err := h.s.Inbound(ctx, InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, Text: "STOP", MessageID: "r1"})
	if !errors.Is(err, ErrStorage) || !h.s.Failed() {
		t.Fatalf("failed commit: %v, fenced %v; want ErrStorage and fenced", err, h.s.Failed())
	}
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, 0).Allow, true, "index changed by a failed commit")
	h.s.commitTxn = func(txn *badger.Txn) error { return txn.Commit() }
	requireNoErr(t, h.s.Reopen(), "Reopen")
	testutil.RequireEqual(t, h.s.Failed(), false, "fenced after Reopen")
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, 0).Reason, ReasonOptedOut, "the change on disk is in the index")
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "+12025550100", 0).Reason, ReasonOptedOut, "earlier state kept")
	h.mo("acme", ChannelSMS, senderA, "+12025550101", "STOP")
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "+12025550101", 0).Reason, ReasonOptedOut, "write after Reopen")
	requireNoErr(t, h.s.Reopen(), "Reopen of a healthy store")
}

// TestReopenRefusesLostStore: a fenced store whose files are gone is not
// reopened empty (that would forget every opt-out): it stays fenced and
// Check keeps answering from memory.
func TestReopenRefusesLostStore(t *testing.T) {
	h := newHarness(t)
	h.mo("acme", ChannelSMS, senderA, rcptA, "STOP")
	h.s.commitTxn = func(txn *badger.Txn) error { txn.Discard(); return errors.New("no such file or directory") }
	if _, err := h.s.Inbound(context.Background(), InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA,
		Recipient: "+12025550100", Text: "STOP", MessageID: "l1"}); !errors.Is(err, ErrStorage) {
		t.Fatalf("failed commit: %v", err)
	}
	if err := os.Remove(filepath.Join(h.dir, badger.ManifestFilename)); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Reopen(); !errors.Is(err, ErrStoreLost) {
		t.Fatalf("Reopen without the store's files: %v, want ErrStoreLost", err)
	}
	testutil.RequireEqual(t, h.s.Failed(), true, "fence lifted on a lost store")
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, 0).Reason, ReasonOptedOut, "memory still answers")
}
