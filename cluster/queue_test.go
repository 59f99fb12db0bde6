package cluster

// The work queue against three real NATS servers clustered in the test
// process (cluster_test.go's testCluster). Assertions are about which node
// delivers what, how often and with what result; no timing is asserted
// except that a retry waits for its back-off.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/gateway/outbox"
	"github.com/optgate/optgate/internal/testutil"
)

// workLog records the deliveries and give-ups of one kind on every node.
type workLog struct {
	mu        sync.Mutex
	delivered map[string][]delivery // by item id
	gaveUp    map[string]error
}

type delivery struct {
	node     int
	attempts int
	at       time.Time
}

func newWorkLog() *workLog {
	return &workLog{delivered: map[string][]delivery{}, gaveUp: map[string]error{}}
}

func (w *workLog) add(node int, it *outbox.Item) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.delivered[it.ID] = append(w.delivered[it.ID], delivery{node: node, attempts: it.Attempts, at: time.Now()})
}

func (w *workLog) deliveries(id string) []delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]delivery(nil), w.delivered[id]...)
}

func (w *workLog) giveUp(it *outbox.Item, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gaveUp[it.ID] = err
}

func (w *workLog) gaveUpWith(id string) (error, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	err, ok := w.gaveUp[id]
	return err, ok
}

// queues opens the work queue on the nodes given, registers kind on each
// (built for that node by mk) and starts them; they are closed at the
// end of the test.
func (tc *testCluster) queues(t *testing.T, nodes []int, mk func(node int) outbox.Kind) []*Queue {
	t.Helper()
	qs := make([]*Queue, len(tc.conns))
	for _, i := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		q, err := tc.conns[i].Queue(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		q.Register(mk(i))
		q.Start()
		t.Cleanup(q.Close)
		qs[i] = q
	}
	return qs
}

// workMessages is the number of items in the work queue stream.
func (tc *testCluster) workMessages(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := tc.conns[0].js.Stream(ctx, WorkStream(tc.cfgs[0].Stream))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// requireWorkEmpty waits until the work queue stream holds nothing.
func (tc *testCluster) requireWorkEmpty(t *testing.T) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := tc.workMessages(t); n != 0 {
			return fmt.Errorf("%d items still in the work queue", n)
		}
		return nil
	})
}

func item(id string) *outbox.Item {
	return &outbox.Item{ID: id, Kind: "t", Tenant: "acme", Account: "acme-esme", Payload: payloadOf(id)}
}

// payloadOf is item id's payload: 100 KiB for id "big" (a long queued
// message), else a few bytes.
func payloadOf(id string) []byte {
	if id == "big" {
		return []byte(`"` + strings.Repeat("x", 100<<10) + `"`)
	}
	return []byte(`{"n":"` + id + `"}`)
}

// TestQueuePutAck: items put on one node are delivered once each by the
// nodes pulling the shared consumer, acknowledged and removed; a second
// Put of an id (a retry after a lost acknowledgement) is stored once; the
// subject carries a hash, not the tenant or account.
func TestQueuePutAck(t *testing.T) {
	tc := newTestCluster(t, nil)
	w := newWorkLog()
	qs := tc.queues(t, []int{0, 1, 2}, func(node int) outbox.Kind {
		return outbox.Kind{Name: "t", Deliver: func(_ context.Context, it *outbox.Item) error {
			if string(it.Payload) != string(payloadOf(it.ID)) || it.Tenant != "acme" || it.Account != "acme-esme" || it.Created.IsZero() {
				t.Errorf("delivered %+v: not the item put", it)
			}
			w.add(node, it)
			return nil
		}, GiveUp: w.giveUp}
	})
	const n = 30
	for i := range n {
		if err := qs[i%3].Put(item(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := qs[1].Put(item("m0")); err != nil { // the same id again
		t.Fatal(err)
	}
	if err := qs[2].Put(item("big")); err != nil {
		t.Fatalf("a 100 KiB item: %v", err)
	}
	huge := item("huge")
	huge.Payload = []byte(`"` + strings.Repeat("x", 600<<10) + `"`)
	if err := qs[2].Put(huge); !errors.Is(err, outbox.ErrBadItem) {
		t.Fatalf("a 600 KiB item: %v, want ErrBadItem", err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		for i := range n {
			if len(w.deliveries(fmt.Sprintf("m%d", i))) == 0 {
				return fmt.Errorf("m%d not delivered", i)
			}
		}
		if len(w.deliveries("big")) == 0 {
			return errors.New("big not delivered")
		}
		return nil
	})
	tc.requireWorkEmpty(t)
	for i := range n {
		if d := w.deliveries(fmt.Sprintf("m%d", i)); len(d) != 1 || d[0].attempts != 0 {
			t.Errorf("m%d delivered %v, want once at attempt 0", i, d)
		}
	}
	if s := WorkSubject(tc.cfgs[0], "t", "acme", "acme-esme"); strings.Contains(s, "acme") || !strings.HasPrefix(s, "optgate.work.t.") {
		t.Errorf("subject %q: want optgate.work.t.<hash>", s)
	}
}

// TestQueueNakDelayTermAndElsewhere: a temporary failure delivers the
// item again after the back-off (MaxBackoff 1 s: 0.5-1 s) with Attempts
// 1; a Permanent failure gives it up at once (GiveUp with the error, never
// delivered again, removed); an Elsewhere failure on the two nodes that
// cannot do it hands the item to the one that can.
func TestQueueNakDelayTermAndElsewhere(t *testing.T) {
	tc := newTestCluster(t, nil)
	w := newWorkLog()
	qs := tc.queues(t, []int{0, 1, 2}, func(node int) outbox.Kind {
		return outbox.Kind{Name: "t", MaxBackoff: time.Second, GiveUp: w.giveUp,
			Deliver: func(_ context.Context, it *outbox.Item) error {
				w.add(node, it)
				switch {
				case it.ID == "temp" && it.Attempts == 0:
					return errors.New("SMSC down")
				case it.ID == "perm":
					return outbox.Permanent(errors.New("refused for good"))
				case it.ID == "else" && node != 1:
					return Elsewhere(errors.New("not bound here"))
				}
				return nil
			}}
	})
	for _, id := range []string{"temp", "perm", "else"} {
		if err := qs[0].Put(item(id)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		if d := w.deliveries("temp"); len(d) < 2 {
			return fmt.Errorf("temp delivered %d times, want 2", len(d))
		}
		if d := w.deliveries("else"); len(d) == 0 || d[len(d)-1].node != 1 {
			return fmt.Errorf("else delivered %v, want a last delivery on node 1", d)
		}
		if _, ok := w.gaveUpWith("perm"); !ok {
			return errors.New("perm not given up")
		}
		return nil
	})
	tc.requireWorkEmpty(t)
	d := w.deliveries("temp")
	if len(d) != 2 || d[1].attempts != 1 {
		t.Fatalf("temp deliveries %v: want two, the second with Attempts 1", d)
	}
	if gap := d[1].at.Sub(d[0].at); gap < 400*time.Millisecond {
		t.Errorf("temp delivered again %v after its failure: the back-off (0.5-1 s) was not waited", gap)
	}
	if err, _ := w.gaveUpWith("perm"); !outbox.IsPermanent(err) {
		t.Errorf("perm given up with %v, want the Permanent error", err)
	}
	if d := w.deliveries("perm"); len(d) != 1 {
		t.Errorf("perm delivered %d times, want once", len(d))
	}
	for _, id := range []string{"temp", "else"} {
		if _, ok := w.gaveUpWith(id); ok {
			t.Errorf("%s given up", id)
		}
	}
}

// TestQueueRedeliveredWhenNodeDies: node 0 takes an item and never
// finishes it (a send under way) and then loses its connection (the node
// died): after WorkAckWait the servers hand the item to node 1, which
// delivers it with Attempts 1. While node 0 was alive its in-progress
// acks kept the item from node 1 past WorkAckWait.
func TestQueueRedeliveredWhenNodeDies(t *testing.T) {
	tc := newTestCluster(t, func(c *Config) { c.WorkAckWait = 2 * time.Second })
	w := newWorkLog()
	release := make(chan struct{})
	defer close(release)
	taken := make(chan struct{}, 1)
	kind := func(node int) outbox.Kind {
		return outbox.Kind{Name: "t", Timeout: time.Minute, GiveUp: w.giveUp,
			DeliverAsync: func(_ context.Context, it *outbox.Item, done func(error)) {
				w.add(node, it)
				if node == 0 {
					taken <- struct{}{}
					go func() { <-release; done(errors.New("node gone")) }()
					return
				}
				done(nil)
			}}
	}
	qs := tc.queues(t, []int{0}, kind)
	if err := qs[0].Put(item("held")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-taken:
	case <-time.After(20 * time.Second):
		t.Fatal("node 0 never took the item")
	}
	tc.queues(t, []int{1}, kind)
	// Three ack waits: node 0 is still alive and says so.
	time.Sleep(3 * tc.cfgs[0].WorkAckWait)
	if d := w.deliveries("held"); len(d) != 1 {
		t.Fatalf("item delivered %v while node 0 held it alive, want only node 0's", d)
	}
	tc.conns[0].nc.Close() // node 0 dies: no more in-progress acks
	testutil.CheckFor(t, 20*time.Second, func() error {
		d := w.deliveries("held")
		if len(d) < 2 || d[len(d)-1].node != 1 {
			return fmt.Errorf("deliveries %v: want node 1's after node 0 died", d)
		}
		if d[len(d)-1].attempts != 1 {
			return fmt.Errorf("node 1 delivered with Attempts %d, want 1", d[len(d)-1].attempts)
		}
		return nil
	})
	testutil.CheckFor(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := tc.conns[1].js.Stream(ctx, WorkStream(tc.cfgs[1].Stream))
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d items left", info.State.Msgs)
		}
		return nil
	})
}

// TestQueueExpiry: an item nobody can deliver is given up with
// outbox.ErrExpired once older than MaxAge (judged when an attempt
// fails), and one already older than MaxAge when delivered is given up
// without an attempt; both are removed.
func TestQueueExpiry(t *testing.T) {
	tc := newTestCluster(t, nil)
	w := newWorkLog()
	qs := tc.queues(t, []int{0, 2}, func(node int) outbox.Kind {
		return outbox.Kind{Name: "t", MaxAge: 2 * time.Second, MaxBackoff: 500 * time.Millisecond, GiveUp: w.giveUp,
			Deliver: func(_ context.Context, it *outbox.Item) error {
				w.add(node, it)
				return errors.New("nobody can deliver")
			}}
	})
	if err := qs[0].Put(item("late")); err != nil {
		t.Fatal(err)
	}
	old := item("old")
	old.Created = time.Now().Add(-time.Hour)
	if err := qs[2].Put(old); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		for _, id := range []string{"late", "old"} {
			if _, ok := w.gaveUpWith(id); !ok {
				return fmt.Errorf("%s not given up", id)
			}
		}
		return nil
	})
	tc.requireWorkEmpty(t)
	for _, id := range []string{"late", "old"} {
		if err, _ := w.gaveUpWith(id); !errors.Is(err, outbox.ErrExpired) {
			t.Errorf("%s given up with %v, want ErrExpired", id, err)
		}
	}
	if d := w.deliveries("late"); len(d) < 2 {
		t.Errorf("late delivered %d times before expiring, want retries", len(d))
	}
	if d := w.deliveries("old"); len(d) != 0 {
		t.Errorf("old (past MaxAge when delivered) was attempted %d times, want none", len(d))
	}
}
