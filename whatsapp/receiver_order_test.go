package whatsapp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// seqRecorder records, per sender, the wamids handled, in the order the Handler saw them.
type seqRecorder struct {
	mu    sync.Mutex
	seq   map[string][]string
	delay bool // sleep up to 300 µs in each call, to shuffle concurrent workers
}

func (s *seqRecorder) HandleEvent(ctx context.Context, ev Event) error {
	if ev.Kind != KindMessage {
		return nil
	}
	if s.delay {
		time.Sleep(time.Duration(rand.N(300)) * time.Microsecond)
	}
	s.mu.Lock()
	s.seq[ev.Message.From] = append(s.seq[ev.Message.From], ev.Message.ID)
	s.mu.Unlock()
	return nil
}

func (s *seqRecorder) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ids := range s.seq {
		n += len(ids)
	}
	return n
}

// TestReceiverSenderOrder posts, for each of several senders, bodies alternating STOP and START
// one after another (each after the previous one's 200, so spool order is post order), while
// other senders' traffic runs concurrently, and checks that the Handler saw every sender's
// messages exactly once and in that order, with several workers; with tiny queues the bodies
// overflow into the spool and come back through the sweeper, still in order.
func TestReceiverSenderOrder(t *testing.T) {
	for _, tc := range []struct {
		name      string
		queueSize int
		overflow  bool
	}{
		{"queued", 0, false},
		{"overflow", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openDB(t, t.TempDir())
			rec := &seqRecorder{seq: map[string][]string{}, delay: true}
			r, url := startReceiver(t, db, rec, func(c *ReceiverConfig) {
				c.Workers = 3
				c.QueueSize = tc.queueSize
			})
			const senders, perSender, noise = 6, 30, 60
			var wg sync.WaitGroup
			for s := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					from := "1650555" + strconv.Itoa(1000+s)
					for i := range perSender {
						text := "STOP"
						if i%2 == 1 {
							text = "START"
						}
						body := whatsapptest.InboundText(meta, from, fmt.Sprintf("wamid.ord.%d.%03d", s, i), text, time.Now())
						if st := post(t, url, testSecret, body); st != 200 {
							t.Errorf("sender %d body %d: status %d", s, i, st)
							return
						}
					}
				}()
			}
			for g := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range noise / 3 {
						n := g*100 + i
						body := whatsapptest.InboundText(meta, "1650666"+strconv.Itoa(1000+n), fmt.Sprintf("wamid.noise.%d", n), "hello", time.Now())
						if st := post(t, url, testSecret, body); st != 200 {
							t.Errorf("noise %d: status %d", n, st)
							return
						}
					}
				}()
			}
			wg.Wait()
			want := senders*perSender + noise
			testutil.CheckFor(t, 20*time.Second, func() error {
				if n := rec.total(); n != want {
					return fmt.Errorf("%d of %d messages handled", n, want)
				}
				return nil
			})
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for s := range senders {
				got := rec.seq["1650555"+strconv.Itoa(1000+s)]
				if len(got) != perSender {
					t.Fatalf("sender %d: %d messages handled, want %d", s, len(got), perSender)
				}
				for i, id := range got {
					if want := fmt.Sprintf("wamid.ord.%d.%03d", s, i); id != want {
						t.Fatalf("sender %d: message %d handled was %s, want %s (order %s)", s, i, id, want, strings.Join(got, " "))
					}
				}
			}
			if left := r.leftBehind.Load(); tc.overflow && left == 0 {
				t.Fatal("no body overflowed its queue: the sweeper path was not exercised")
			}
		})
	}
}

// TestReceiverSendersConcurrent checks that one worker handles a batch's different senders
// concurrently (so their consent commits can be shared), and one sender's events one at a
// time.
func TestReceiverSendersConcurrent(t *testing.T) {
	db := openDB(t, t.TempDir())
	const senders = 6
	release := make(chan struct{})
	var active, maxActive, perSenderMax atomic.Int32
	var mu sync.Mutex
	inSender := map[string]int{}
	gave := make(chan struct{}) // closed when a handler stopped waiting for the others
	var gaveOnce sync.Once
	var handled atomic.Int32
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		if ev.Kind != KindMessage {
			return nil
		}
		if ev.Message.From == "16500000000" {
			<-release // holds the worker until the rest is queued behind it
			handled.Add(1)
			return nil
		}
		mu.Lock()
		inSender[ev.Message.From]++
		if n := int32(inSender[ev.Message.From]); n > perSenderMax.Load() {
			perSenderMax.Store(n)
		}
		mu.Unlock()
		n := active.Add(1)
		for m := maxActive.Load(); n > m && !maxActive.CompareAndSwap(m, n); m = maxActive.Load() {
		}
		// Wait (bounded) until every sender's first message is in a Handler call at once.
		deadline := time.After(5 * time.Second)
	wait:
		for maxActive.Load() < senders {
			select {
			case <-deadline:
				gaveOnce.Do(func() { close(gave) })
				break wait
			case <-gave:
				break wait
			case <-time.After(time.Millisecond):
			}
		}
		active.Add(-1)
		mu.Lock()
		inSender[ev.Message.From]--
		mu.Unlock()
		handled.Add(1)
		return nil
	})
	_, url := startReceiver(t, db, h, func(c *ReceiverConfig) { c.Workers = 1 })
	testutil.RequireEqual(t, post(t, url, testSecret, whatsapptest.InboundText(meta, "16500000000", "wamid.hold", "x", time.Now())), 200, "hold")
	var wg sync.WaitGroup
	for s := range senders {
		for i := range 2 { // two from each sender: they must not overlap
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := whatsapptest.InboundText(meta, "1650111"+strconv.Itoa(1000+s), fmt.Sprintf("wamid.cc.%d.%d", s, i), "STOP", time.Now())
				if st := post(t, url, testSecret, body); st != 200 {
					t.Errorf("status %d", st)
				}
			}()
		}
	}
	wg.Wait()
	close(release)
	testutil.CheckFor(t, 20*time.Second, func() error {
		if n := handled.Load(); n != 1+2*senders {
			return fmt.Errorf("%d handled", n)
		}
		return nil
	})
	testutil.RequireEqual(t, maxActive.Load(), int32(senders), "senders handled at once")
	testutil.RequireEqual(t, perSenderMax.Load(), int32(1), "calls at once for one sender")
}

// TestSplitLanes checks the grouping: one lane per sender, bodies with several senders join
// their lanes, events without a sender stay with their body, and each lane keeps batch order.
func TestSplitLanes(t *testing.T) {
	msg := func(from string) Event { return Event{Kind: KindMessage, Message: &InboundMessage{From: from}} }
	st := func(to string) Event { return Event{Kind: KindStatus, Status: &Status{RecipientID: to}} }
	bodies := [][]Event{
		{msg("a")},                    // 0
		{msg("b")},                    // 1
		{msg("a"), msg("a")},          // 2
		{{Kind: KindError}},           // 3
		{st("c")},                     // 4
		{msg("d"), st("b")},           // 5: joins d with b
		{msg("d")},                    // 6
		{{Kind: KindError}, msg("e")}, // 7
	}
	var batch []*spoolItem
	var works []work
	for i, evs := range bodies {
		it := &spoolItem{seq: uint64(i), events: evs}
		batch = append(batch, it)
		for j := range it.events {
			works = append(works, work{item: it, ev: &it.events[j]})
		}
	}
	var got []string
	for _, lane := range splitLanes(works, batch) {
		var b strings.Builder
		for _, i := range lane {
			fmt.Fprintf(&b, "%d.", works[i].item.seq)
		}
		got = append(got, b.String())
	}
	want := []string{"0.2.2.", "1.5.5.6.", "3.", "4.", "7.7."}
	testutil.RequireEqual(t, strings.Join(got, " "), strings.Join(want, " "), "lanes")
}
