package consent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/testutil"
)

// sliceLog is an in-test replicated log: Append stores the replicas in
// order (or fails with err), and feed applies them to a store the way the
// cluster's follower does. The real log (package cluster, NATS JetStream)
// is exercised by the gateway's cluster tests.
type sliceLog struct {
	mu   sync.Mutex
	recs [][]byte
	err  error
}

func (l *sliceLog) Append(_ context.Context, recs []Replica) ([]uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	seqs := make([]uint64, len(recs))
	for i, r := range recs {
		if r.Tenant == "" || len(r.Data) == 0 || len(r.Data) > 64<<10 {
			return nil, errors.New("bad replica")
		}
		l.recs = append(l.recs, r.Data)
		seqs[i] = uint64(len(l.recs))
	}
	return seqs, nil
}

// feed applies every record after s's AppliedSeq.
func (l *sliceLog) feed(t *testing.T, s *Store) {
	t.Helper()
	l.mu.Lock()
	recs := l.recs
	l.mu.Unlock()
	for i := s.AppliedSeq(); i < uint64(len(recs)); i++ {
		requireNoErr(t, s.ApplyReplicated(i+1, recs[i]), "ApplyReplicated")
	}
}

// newReplicated opens node's store on log, with tenant acme unless
// tenants are given.
func newReplicated(t *testing.T, log *sliceLog, node string, tenants ...TenantConfig) *harness {
	t.Helper()
	if len(tenants) == 0 {
		tenants = []TenantConfig{testTenant("acme")}
	}
	h := &harness{t: t, clock: newClock(), dir: t.TempDir()}
	h.cfg = Config{Dir: h.dir, Tenants: tenants, Clock: h.clock.Now, BadgerLowMemory: true,
		Replicator: log, Node: node}
	h.open()
	t.Cleanup(func() { h.s.Close() })
	return h
}

// TestReplicatedOptOut: a STOP on node a, an operator opt-out and a
// marketing preference there reach node b through the log: b's Check
// blocks, b's evidence holds them, a retried MO is a duplicate on b, and
// after a restart b resumes after its applied sequence without applying
// anything twice.
func TestReplicatedOptOut(t *testing.T) {
	log := &sliceLog{}
	a, b := newReplicated(t, log, "a"), newReplicated(t, log, "b")
	res, err := a.s.Inbound(context.Background(), InboundMessage{Tenant: "acme", Channel: "sms", Sender: senderA,
		Recipient: rcptA, Text: "STOP", MessageID: "m1", ReceivedAt: a.clock.Now()})
	requireNoErr(t, err, "Inbound")
	testutil.RequireEqual(t, len(res.Replies), 1, "confirmations")
	_, err = a.s.OptOut(context.Background(), OperatorChange{Tenant: "acme", Channel: "sms", Recipient: "+12025550199", Operator: "ops"})
	requireNoErr(t, err, "OptOut")
	testutil.RequireEqual(t, b.check("acme", "sms", senderA, rcptA, CategoryTransactional).Action, ActionSend, "b before the feed")

	log.feed(t, b.s)
	log.feed(t, a.s) // a's own records: only its sequence advances
	testutil.RequireEqual(t, a.s.AppliedSeq(), uint64(len(log.recs)), "a's applied sequence")
	for _, h := range []*harness{a, b} {
		testutil.RequireEqual(t, h.check("acme", "sms", senderA, rcptA, CategoryTransactional).Reason, ReasonOptedOut, "STOP")
		testutil.RequireEqual(t, h.check("acme", "sms", senderA, "+12025550199", CategoryTransactional).Reason, ReasonOptedOut, "operator")
	}
	ev, err := b.s.History("acme", "sms", rcptA, 10)
	requireNoErr(t, err, "History")
	testutil.RequireEqual(t, len(ev), 1, "evidence on b")
	dup, err := b.s.Inbound(context.Background(), InboundMessage{Tenant: "acme", Channel: "sms", Sender: senderA,
		Recipient: rcptA, Text: "STOP", MessageID: "m1", ReceivedAt: b.clock.Now()})
	requireNoErr(t, err, "retried MO on b")
	testutil.RequireEqual(t, dup.Duplicate, true, "retried MO on b is a duplicate")

	// START on b reaches a; then b restarts and resumes.
	b.mo("acme", "sms", senderA, rcptA, "START")
	log.feed(t, a.s)
	testutil.RequireEqual(t, a.check("acme", "sms", senderA, rcptA, CategoryTransactional).Action, ActionSend, "START from b on a")
	seq := b.s.AppliedSeq()
	b.reopen()
	testutil.RequireEqual(t, b.s.AppliedSeq(), seq, "applied sequence after restart")
	requireNoErr(t, b.s.ApplyReplicated(1, log.recs[0]), "replay of an applied record")
	testutil.RequireEqual(t, b.check("acme", "sms", senderA, rcptA, CategoryTransactional).Action, ActionSend, "a replay changes nothing")
	testutil.RequireEqual(t, b.s.idx.len(), a.s.idx.len(), "index sizes")
}

// TestReplicationFailure: a change the log does not acknowledge is
// refused with ErrStorage, yet stays stored locally (it only blocks more)
// and is kept, across a restart, for ReplicatePending; meanwhile the
// SMSC's retry of that MO is refused too (not a Duplicate), and once the
// log takes the change again it reaches the other node and the retry is
// a Duplicate.
func TestReplicationFailure(t *testing.T) {
	log := &sliceLog{err: errors.New("no quorum")}
	a, b := newReplicated(t, log, "a"), newReplicated(t, log, "b")
	stop := func() (Result, error) {
		return a.s.Inbound(context.Background(), InboundMessage{Tenant: "acme", Channel: "sms", Sender: senderA,
			Recipient: rcptA, Text: "STOP", MessageID: "m1", ReceivedAt: a.clock.Now()})
	}
	_, err := stop()
	testutil.RequireEqual(t, errors.Is(err, ErrStorage), true, "error matches ErrStorage: "+errString(err))
	testutil.RequireEqual(t, a.check("acme", "sms", senderA, rcptA, CategoryTransactional).Reason, ReasonOptedOut, "kept locally")
	a.reopen()
	testutil.RequireEqual(t, a.s.Pending(), int64(1), "pending after a restart")
	_, err = stop()
	testutil.RequireEqual(t, errors.Is(err, ErrStorage), true, "retry while pending: "+errString(err))
	if n, err := a.s.ReplicatePending(context.Background()); err == nil || n != 0 {
		t.Fatalf("ReplicatePending with the log down: %d %v", n, err)
	}

	log.mu.Lock()
	log.err = nil
	log.mu.Unlock()
	n, err := a.s.ReplicatePending(context.Background())
	requireNoErr(t, err, "ReplicatePending")
	testutil.RequireEqual(t, n, 1, "appended again")
	testutil.RequireEqual(t, a.s.Pending(), int64(0), "pending after")
	log.feed(t, b.s)
	testutil.RequireEqual(t, b.check("acme", "sms", senderA, rcptA, CategoryTransactional).Reason, ReasonOptedOut, "on b")
	res, err := stop()
	requireNoErr(t, err, "retry once replicated")
	testutil.RequireEqual(t, res.Duplicate, true, "retry is a duplicate")
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestDecodeReplicaRefusesGarbage: what encodeReplica did not write is an
// error, never a panic.
func TestDecodeReplicaRefusesGarbage(t *testing.T) {
	good := encodeReplica("a", 1, appendOp(nil, &op{Key: recordKey("acme", "sms", rcptA, ""), Value: []byte{1, 2, 3}}))
	if _, ops, err := decodeReplica(good); err != nil || len(ops) != 1 {
		t.Fatalf("good replica: %v %d", err, len(ops))
	}
	for i := range good {
		if _, _, err := decodeReplica(good[:i]); !errors.Is(err, ErrBadReplica) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	// An op of a key that stays on its node (a held message's expiry
	// entry) is refused.
	other := encodeReplica("a", 1, appendOp(nil, &op{Key: expiryKey(1, "acme", "sms", rcptA, "x"), Value: []byte{1}}))
	if _, _, err := decodeReplica(other); !errors.Is(err, ErrBadReplica) {
		t.Fatalf("expiry op: %v", err)
	}
}

// TestApplyReplicatedConcurrentWithLocalChanges: node b applies a's log
// while b's own writers change the same recipients; with the stripes
// taken by ApplyReplicated, b's memory index stays exactly the records
// b's store holds (run with -race).
func TestApplyReplicatedConcurrentWithLocalChanges(t *testing.T) {
	log := &sliceLog{}
	a, b := newReplicated(t, log, "a"), newReplicated(t, log, "b")
	const n = 40
	rcpt := func(i int) string { return fmt.Sprintf("+120255501%02d", i) }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range n {
			for _, text := range []string{"STOP", "START", "STOP"} {
				_, err := a.s.Inbound(context.Background(), InboundMessage{Tenant: "acme", Channel: "sms", Sender: senderA,
					Recipient: rcpt(i), Text: text, ReceivedAt: a.clock.Now()})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := range n {
			_, err := b.s.OptOut(context.Background(), OperatorChange{Tenant: "acme", Channel: "sms", Recipient: rcpt(n - 1 - i), Operator: "ops"})
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for fed := false; !fed; {
		select {
		case <-done:
			fed = true
		default:
		}
		log.feed(t, b.s)
	}
	log.feed(t, a.s)
	for _, h := range []*harness{a, b} {
		records := 0
		requireNoErr(t, h.s.db.View(func(txn *badger.Txn) error {
			o := badger.DefaultIteratorOptions
			o.Prefix = []byte{pfxRecord, 0}
			it := txn.NewIterator(o)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				records++
			}
			return nil
		}), "count records")
		testutil.RequireEqual(t, h.s.idx.len(), records, "index entries = stored records")
	}
	for i := range n {
		testutil.RequireEqual(t, b.check("acme", "sms", senderA, rcpt(i), CategoryTransactional).Action, ActionBlock, "opted out on b: "+rcpt(i))
	}
}

// TestReplicatedHold: a message held on node a (attestation pending) is
// released by the recipient's YES on node b, once: a YES on a afterwards
// releases nothing, and a's expiry sweep finds it gone and emits no
// event. A message held on a and dropped by a STOP on b is not expired
// on a either. A hold nobody answers expires on the node that held it
// only (b has no expiry entry for it), and once that expiry reached b a
// late YES on b releases nothing. A payload too big for one log record is
// refused up front.
func TestReplicatedHold(t *testing.T) {
	ctx := context.Background()
	log := &sliceLog{}
	att := func() TenantConfig {
		return testTenant("att", func(c *TenantConfig) { c.Attestation = ModeAttestation })
	}
	a, b := newReplicated(t, log, "a", att()), newReplicated(t, log, "b", att())
	hold := func(h *harness, rcpt, id string) {
		t.Helper()
		r, err := h.s.Hold(ctx, HeldMessage{Tenant: "att", Channel: ChannelSMS, Sender: senderA, Recipient: rcpt, ID: id,
			Payload: []byte("payload " + id)})
		requireNoErr(t, err, "Hold")
		testutil.RequireEqual(t, r.Held, true, "held "+id)
	}
	sweep := func(h *harness) SweepReport {
		t.Helper()
		rep, err := h.s.Sweep(h.clock.Now().Add(DefaultHeldTTL + time.Hour))
		requireNoErr(t, err, "Sweep")
		return rep
	}
	const rcptB, rcptC = "+12025550142", "+12025550143"

	hold(a, rcptA, "m1")
	log.feed(t, b.s)
	res := b.mo("att", ChannelSMS, senderA, rcptA, "YES")
	testutil.RequireEqual(t, len(res.Released), 1, "released on b")
	testutil.RequireEqual(t, string(res.Released[0].Payload), "payload m1", "released payload")
	log.feed(t, a.s)
	testutil.RequireEqual(t, len(a.mo("att", ChannelSMS, senderA, rcptA, "YES").Released), 0, "a second YES on a")

	hold(a, rcptB, "m2")
	log.feed(t, b.s)
	testutil.RequireEqual(t, len(b.mo("att", ChannelSMS, senderA, rcptB, "STOP").Dropped), 1, "dropped on b")
	log.feed(t, a.s)
	testutil.RequireEqual(t, sweep(a).Expired, 0, "a expires what b released or dropped")
	testutil.RequireEqual(t, len(a.takeEvents()), 0, "events on a")

	hold(a, rcptC, "m3")
	log.feed(t, b.s)
	testutil.RequireEqual(t, sweep(b).Expired, 0, "b expires a's hold")
	testutil.RequireEqual(t, sweep(a).Expired, 1, "a expires its own hold")
	log.feed(t, b.s)
	testutil.RequireEqual(t, len(b.mo("att", ChannelSMS, senderA, rcptC, "YES").Released), 0, "YES on b after a's expiry")

	_, err := a.s.Hold(ctx, HeldMessage{Tenant: "att", Channel: ChannelSMS, Sender: senderA, Recipient: "+12025550144", ID: "big",
		Payload: make([]byte, maxReplicatedPayload+1)})
	testutil.RequireEqual(t, errors.Is(err, ErrInvalidInput), true, "oversized held payload: "+errString(err))
}

// TestConcurrentChangesConverge: a STOP on node a and a START of the same
// recipient on node b made at the same moment (neither has the other's
// yet) end, on both nodes, with the change later in the log; and a node
// never applies an older change of its own over a newer one it made since
// (a STOP then a START then a STOP on a: applying the log back does not
// undo, even for a moment, the last STOP).
func TestConcurrentChangesConverge(t *testing.T) {
	log := &sliceLog{}
	a, b := newReplicated(t, log, "a"), newReplicated(t, log, "b")
	state := func(h *harness) State {
		t.Helper()
		st, err := h.s.Get("acme", "sms", rcptA)
		requireNoErr(t, err, "Get")
		return st.Tenant.State
	}
	a.mo("acme", "sms", senderA, rcptA, "STOP") // log 1
	log.feed(t, b.s)
	log.feed(t, a.s)
	testutil.RequireEqual(t, state(b), StateOptedOut, "b after a's STOP")

	b.mo("acme", "sms", senderA, rcptA, "START") // log 2: b has a's STOP
	a.clock.Add(time.Second)
	a.mo("acme", "sms", senderA, rcptA, "START") // log 3, made before a saw log 2
	a.mo("acme", "sms", senderA, rcptA, "STOP")  // log 4
	testutil.RequireEqual(t, state(a), StateOptedOut, "a after its own STOP")
	// a applies 2 (b's START) and 3 (its own older START): both are older
	// than its STOP (4), which stays.
	for i := uint64(2); i <= 3; i++ {
		requireNoErr(t, a.s.ApplyReplicated(i, log.recs[i-1]), "ApplyReplicated")
		testutil.RequireEqual(t, state(a), StateOptedOut, fmt.Sprintf("a after applying record %d", i))
		testutil.RequireEqual(t, a.check("acme", "sms", senderA, rcptA, CategoryTransactional).Reason, ReasonOptedOut, "a's Check")
	}
	log.feed(t, a.s)
	log.feed(t, b.s)
	testutil.RequireEqual(t, state(a), StateOptedOut, "a: the last change in the log")
	testutil.RequireEqual(t, state(b), StateOptedOut, "b: the last change in the log")
	testutil.RequireEqual(t, a.s.own.len()+b.s.own.len(), 0, "own changes still tracked once applied back")

	// Two changes at once, neither node having the other's: a STOP on a
	// (log 5) and a START on b (log 6) of a recipient both know as
	// opted in. Before, each node kept the other's change: a ended opted
	// in, b opted out, until that recipient's next change.
	const rcpt = "+12025550177"
	a.mo("acme", "sms", senderA, rcpt, "START")
	a.mo("acme", "sms", senderA, rcpt, "STOP")
	b.mo("acme", "sms", senderA, rcpt, "START")
	log.feed(t, a.s)
	log.feed(t, b.s)
	for _, h := range []*harness{a, b} {
		st, err := h.s.Get("acme", "sms", rcpt)
		requireNoErr(t, err, "Get")
		testutil.RequireEqual(t, st.Tenant.State, StateOptedIn, "the change last in the log (b's START) on every node")
	}
}

// TestApplyReplicatedBatch: a batch of records, several of them changing
// one recipient, leaves the store and its memory index as applying them
// one by one does; a batch that starts at or below the applied sequence
// skips what is applied; AppliedSeq is the batch's last.
func TestApplyReplicatedBatch(t *testing.T) {
	log := &sliceLog{}
	a := newReplicated(t, log, "a")
	for _, text := range []string{"STOP", "START", "STOP"} {
		a.mo("acme", "sms", senderA, rcptA, text)
	}
	a.mo("acme", "sms", senderA, "+12025550188", "STOP")
	_, err := a.s.OptOut(context.Background(), OperatorChange{Tenant: "acme", Channel: "sms", Recipient: "+12025550189", Operator: "ops"})
	requireNoErr(t, err, "OptOut")
	one, batch := newReplicated(t, log, "one"), newReplicated(t, log, "batch")
	log.feed(t, one.s)
	requireNoErr(t, batch.s.ApplyReplicatedBatch(1, log.recs[:2]), "first batch")
	requireNoErr(t, batch.s.ApplyReplicatedBatch(1, log.recs), "overlapping batch")
	testutil.RequireEqual(t, batch.s.AppliedSeq(), uint64(len(log.recs)), "applied sequence")
	for _, r := range []string{rcptA, "+12025550188", "+12025550189"} {
		testutil.RequireEqual(t, batch.check("acme", "sms", senderA, r, CategoryTransactional),
			one.check("acme", "sms", senderA, r, CategoryTransactional), "decision for "+r)
	}
	testutil.RequireEqual(t, batch.check("acme", "sms", senderA, rcptA, CategoryTransactional).Reason, ReasonOptedOut, "the last STOP")
	testutil.RequireEqual(t, batch.s.idx.len(), one.s.idx.len(), "index sizes")
	testutil.RequireEqual(t, batch.s.idx.len(), a.s.idx.len(), "index size against the origin")
	batch.reopen()
	testutil.RequireEqual(t, batch.check("acme", "sms", senderA, rcptA, CategoryTransactional).Reason, ReasonOptedOut, "after a restart")
}
