package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/optgate/optgate/internal/testutil"

	"github.com/optgate/optgate/gateway/receipt"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
	"github.com/optgate/optgate/smpp/smpptest"
)

// newManualReceiptEnv starts a gateway against an SMSC that sends no
// receipts of its own: the tests send each one when they choose.
func newManualReceiptEnv(t *testing.T, extra string) *testEnv {
	t.Helper()
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	return startEnv(t, configYAML(dir, smsc.Addr(), "", "")+extra, smsc, dir)
}

// submitRecorded submits a message asking for a receipt and returns our
// id and the submit as the SMSC saw it (with the SMSC's id).
func (e *testEnv) submitRecorded(text string) (string, smpptest.Submit) {
	e.t.Helper()
	id, err := e.submit(handset, text)
	if err != nil {
		e.t.Fatalf("submit %q: %v", text, err)
	}
	s, _ := e.nextSubmitTo(handset)
	return id, s
}

// sendReceipt has the SMSC send a receipt for s and returns the gateway's
// answer (nil for ESME_ROK).
func (e *testEnv) sendReceipt(s smpptest.Submit, stat string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return e.smsc.SendDeliver(ctx, "optgate", smpptest.Receipt(s.MessageID, s.PDU, stat, time.Now()))
}

// stored reports whether the gateway store holds the mapping of s.
func (e *testEnv) stored(s smpptest.Submit) (receipt.Target, bool) {
	e.t.Helper()
	t, ok, err := e.g.receipts.Stored(e.g.links["carrier"].receiptSMSC(), s.MessageID)
	if err != nil {
		e.t.Fatal(err)
	}
	return t, ok
}

// waitStored waits until the mapping of s is in the store.
func (e *testEnv) waitStored(s smpptest.Submit) {
	e.t.Helper()
	testutil.CheckFor(e.t, 10*time.Second, func() error {
		if _, ok := e.stored(s); !ok {
			return fmt.Errorf("mapping of %s not stored", s.MessageID)
		}
		return nil
	})
}

// inBook reports whether the memory book holds the mapping of s.
func (e *testEnv) inBook(s smpptest.Submit) bool {
	return e.g.receipts.Remembers(e.g.links["carrier"].receiptSMSC(), s.MessageID)
}

// nextReceipt waits for a receipt at the upstream ESME and checks that it
// carries our id id with stat.
func (e *testEnv) nextReceipt(id, stat string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := e.esme.NextDeliver(ctx)
	if err != nil {
		e.t.Fatalf("no receipt for %s at the ESME: %v", id, err)
	}
	rid, _ := d.TLVs.ReceiptedMessageID()
	r, err := dlr.Parse(string(d.ShortMessage))
	if !d.IsReceipt() || err != nil || string(rid) != id || r.ID != id || r.Stat != stat {
		e.t.Fatalf("receipt %s (parsed %+v, %v): want our id %s, stat %s", d, r, err, id, stat)
	}
}

// receiptCount is the receipts counted with outcome (parked receipts that
// expire are counted without an SMSC).
func (e *testEnv) receiptCount(outcome string) float64 {
	return promtest.ToFloat64(e.g.metrics.receipts.WithLabelValues("carrier", outcome)) +
		promtest.ToFloat64(e.g.metrics.receipts.WithLabelValues("", outcome))
}

// A receipt that comes after the memory book rotated its mapping out (here
// by traffic: the book holds 2 mappings per generation) is found in the
// store and forwarded with our id; its final state removes the mapping.
func TestReceiptAfterBookRotation(t *testing.T) {
	env := newManualReceiptEnv(t, "")
	b := env.g.receipts
	b.SetMax(4)
	id, first := env.submitRecorded("the first")
	env.waitStored(first)
	for i := range 5 {
		env.submitRecorded(fmt.Sprintf("traffic %d", i))
	}
	if env.inBook(first) {
		t.Fatal("the book still holds the first mapping: it did not rotate")
	}
	hits := promtest.ToFloat64(b.Counters().Hit)
	if err := env.sendReceipt(first, "DELIVRD"); err != nil {
		t.Fatalf("the gateway refused the receipt: %v", err)
	}
	env.nextReceipt(id, "DELIVRD")
	if got := promtest.ToFloat64(b.Counters().Hit); got != hits+1 {
		t.Fatalf("store hits %v, want %v", got, hits+1)
	}
	code, m := env.http("GET", "/v1/messages/"+id, acmeToken, "")
	if code != 200 || m["state"] != "delivered" {
		t.Fatalf("status: %d %v", code, m)
	}
	// The final receipt removed the mapping from the store.
	testutil.CheckFor(t, 10*time.Second, func() error {
		if _, ok := env.stored(first); ok {
			return fmt.Errorf("mapping of a delivered message still stored")
		}
		return nil
	})
}

// An intermediate receipt found in the store puts the mapping back in the
// book, so the final one takes the fast path.
func TestReceiptIntermediateFromStoreRemembered(t *testing.T) {
	env := newManualReceiptEnv(t, "")
	id, s := env.submitRecorded("twice")
	env.waitStored(s)
	b := env.g.receipts
	b.Forget() // as after two rotations
	if err := env.sendReceipt(s, "ACCEPTD"); err != nil {
		t.Fatal(err)
	}
	env.nextReceipt(id, "ACCEPTD")
	if !env.inBook(s) {
		t.Fatal("a mapping found in the store was not put back in the book")
	}
	hits := promtest.ToFloat64(b.Counters().Hit)
	if err := env.sendReceipt(s, "DELIVRD"); err != nil {
		t.Fatal(err)
	}
	env.nextReceipt(id, "DELIVRD")
	if got := promtest.ToFloat64(b.Counters().Hit); got != hits {
		t.Fatalf("the final receipt went to the store (%v hits, want %v)", got, hits)
	}
}

// A receipt parked while the store is asked about it does not expire with
// its grace period: a slow lookup that finds the mapping still forwards it.
func TestReceiptSlowLookupOutlivesGrace(t *testing.T) {
	env := newManualReceiptEnv(t, "receipts: {grace: 100ms}\n")
	id, s := env.submitRecorded("slow disk")
	env.waitStored(s)
	b := env.g.receipts
	b.Forget()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	hook := func() {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}
	b.SetLookupHook(hook)
	answered := make(chan error, 1)
	go func() { answered <- env.sendReceipt(s, "DELIVRD") }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("no store lookup for a receipt the book does not know")
	}
	if n := b.ExpireParked(time.Now().Add(time.Hour)); n != 0 {
		close(release)
		t.Fatalf("%d receipts expired while their lookup was pending", n)
	}
	b.SetLookupHook(nil)
	close(release)
	if err := <-answered; err != nil {
		t.Fatalf("the gateway refused the receipt: %v", err)
	}
	env.nextReceipt(id, "DELIVRD")
	if n := b.ExpireParked(time.Now().Add(time.Hour)); n != 0 {
		t.Fatalf("%d receipts left parked after their lookup", n)
	}
}

// A receipt that arrives after the gateway was shut down and a new one
// opened on the same store reaches the upstream ESME with our id.
func TestReceiptAfterRestart(t *testing.T) {
	env := newManualReceiptEnv(t, "")
	id, s := env.submitRecorded("before the restart")
	env.stop() // no wait for the store: shutdown writes what is queued
	env2 := startEnv(t, env.yaml, env.smsc, env.dir)
	if env2.inBook(s) {
		t.Fatal("a new gateway's book is not empty")
	}
	if err := env2.sendReceipt(s, "DELIVRD"); err != nil {
		t.Fatalf("the gateway refused the receipt: %v", err)
	}
	env2.nextReceipt(id, "DELIVRD")
	if n := env2.receiptCount("correlated"); n != 1 {
		t.Fatalf("correlated receipts %v, want 1", n)
	}
}

// The same for a message sent over HTTP: the receipt becomes a
// message.status webhook for its tenant, after a restart.
func TestReceiptAfterRestartWebhook(t *testing.T) {
	var mu sync.Mutex
	var events []WebhookEvent
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev WebhookEvent
		if json.Unmarshal(body, &ev) == nil {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}
	}))
	defer hook.Close()
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := strings.Replace(configYAML(dir, smsc.Addr(), "", ""), "    numbers: [",
		"    webhook: {url: \""+hook.URL+"\", secret: hook-secret}\n    numbers: [", 1)
	env := startEnv(t, y, smsc, dir)
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"Your interview is at 10"}`)
	if code != 202 {
		t.Fatalf("send: %d %v", code, m)
	}
	id := m["id"].(string)
	s, _ := env.nextSubmitTo(handset)
	env.stop()
	env2 := startEnv(t, y, smsc, dir)
	if err := env2.sendReceipt(s, "DELIVRD"); err != nil {
		t.Fatalf("the gateway refused the receipt: %v", err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range events {
			var d map[string]any
			_ = json.Unmarshal(ev.Data, &d)
			if ev.Type == "message.status" && d["id"] == id && d["state"] == "delivered" && d["to"] == handset {
				return nil
			}
		}
		return fmt.Errorf("no message.status for %s in %d events", id, len(events))
	})
}

// A mapping older than receipts.ttl is gone from the book and the store: its
// receipt is not forwarded and is counted uncorrelated once parked for the
// grace period.
func TestReceiptExpiredMappingNotForwarded(t *testing.T) {
	env := newManualReceiptEnv(t, "receipts: {ttl: 2s, grace: 200ms}\n")
	sent := time.Now()
	_, s := env.submitRecorded("too late")
	env.waitStored(s)
	testutil.CheckFor(t, 15*time.Second, func() error {
		if time.Since(sent) <= 2*time.Second {
			return fmt.Errorf("the mapping is not older than its TTL yet")
		}
		if _, ok := env.stored(s); ok {
			return fmt.Errorf("mapping still stored after its TTL")
		}
		return nil
	})
	correlated, uncorrelated := env.receiptCount("correlated"), env.receiptCount("uncorrelated")
	misses := promtest.ToFloat64(env.g.receipts.Counters().Miss)
	if err := env.sendReceipt(s, "DELIVRD"); err != nil {
		t.Fatalf("the gateway refused the receipt: %v", err)
	}
	testutil.CheckFor(t, 15*time.Second, func() error {
		if n := env.receiptCount("uncorrelated"); n != uncorrelated+1 {
			return fmt.Errorf("uncorrelated %v, want %v", n, uncorrelated+1)
		}
		return nil
	})
	if n := promtest.ToFloat64(env.g.receipts.Counters().Miss); n != misses+1 {
		t.Fatalf("store misses %v, want %v", n, misses+1)
	}
	if n := env.receiptCount("correlated"); n != correlated {
		t.Fatalf("an expired mapping was correlated (%v, was %v)", n, correlated)
	}
	if n := env.esme.Pending(); n != 0 {
		t.Fatalf("%d deliver_sm reached the ESME for an expired mapping", n)
	}
}

// A writer that cannot keep up never holds up the MT path: past the queue
// bound, mappings are dropped and counted, and they still correlate from
// the memory book.
func TestReceiptStoreQueueBound(t *testing.T) {
	env := newManualReceiptEnv(t, "")
	st := env.g.receipts
	const bound = 8
	st.SetQueueMax(bound)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	unstall := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unstall)
	hook := func() {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}
	st.SetWriterHook(hook)
	_, first := env.submitRecorded("first")
	select {
	case <-entered: // the writer holds the first mapping and is stalled
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never took the first mapping")
	}
	dropped := promtest.ToFloat64(st.Counters().DroppedFull)
	const more = 40
	var subs []smpptest.Submit
	var ids []string
	for i := range more {
		id, s := env.submitRecorded(fmt.Sprintf("while stalled %d", i))
		ids, subs = append(ids, id), append(subs, s)
	}
	// A submit is answered before its mapping is queued: wait for the last.
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := promtest.ToFloat64(st.Counters().DroppedFull) - dropped; n < more-bound {
			return fmt.Errorf("dropped %v mappings, want %d", n, more-bound)
		}
		return nil
	})
	if n := promtest.ToFloat64(st.Counters().DroppedFull) - dropped; n != more-bound {
		t.Fatalf("dropped %v mappings, want %d", n, more-bound)
	}
	written := promtest.ToFloat64(st.Counters().Written)
	unstall()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := promtest.ToFloat64(st.Counters().Written) - written; n < 1+bound {
			return fmt.Errorf("%v of %d mappings written", n, 1+bound)
		}
		return nil
	})
	if _, ok := env.stored(first); !ok {
		t.Fatal("the mapping the writer held was not written")
	}
	// Which mappings found room is up to the order the puts came in (a
	// submit is answered before its mapping is queued): exactly bound did.
	kept, dropIdx := 0, -1
	for i, s := range subs {
		if _, ok := env.stored(s); ok {
			kept++
		} else {
			dropIdx = i
		}
	}
	if kept != bound || dropIdx < 0 {
		t.Fatalf("%d of %d mappings stored, want the %d that had room", kept, more, bound)
	}
	// A dropped mapping still correlates from the memory book.
	if err := env.sendReceipt(subs[dropIdx], "DELIVRD"); err != nil {
		t.Fatal(err)
	}
	env.nextReceipt(ids[dropIdx], "DELIVRD")
}

// The stored form of a mapping reads back as it was written, tenants and
// accounts found by name.
func TestReceiptStoredFormRoundTrip(t *testing.T) {
	env := newManualReceiptEnv(t, "")
	b, g := env.g.receipts, env.g
	in := receipt.Target{MsgID: "18c2f0a1b2c3d4e5", Tenant: g.tenants["acme"].idx, Account: g.accounts["acme"].idx, Origin: uint8(OriginSMPP),
		From: ourNumber, To: handset, Part: 2, Parts: 3}
	v := b.Encode(in)
	out, ok := b.Decode(v)
	if !ok || out != in {
		t.Fatalf("round trip: %+v (%v), want %+v", out, ok, in)
	}
	for n := range len(v) {
		if _, ok := b.Decode(v[:n]); ok {
			t.Fatalf("a value cut to %d of %d bytes decoded", n, len(v))
		}
	}
	in.Account = 0
	if _, ok := b.Decode(b.Encode(in)); ok {
		t.Fatal("an SMPP mapping without its account decoded")
	}
}

// BenchmarkGatewayMTReceipts: BenchmarkGatewayMT's path with a receipt
// asked for and sent back for every message: the mapping is made (memory
// book and store), the receipt correlated and forwarded to the ESME.
// Reports messages a second whose receipt reached the ESME.
func BenchmarkGatewayMTReceipts(b *testing.B) {
	smsc := smpptest.NewServer(smpptest.Config{NoRecord: true, Window: 1024, Receipts: true})
	defer smsc.Close()
	y := fmt.Sprintf(`
store: {dir: %q}
http: {listen: "127.0.0.1:0"}
smpp: {listen: "127.0.0.1:0"}
tenants:
  - {id: acme, brand: Acme Recruiting, help_contact: help@acme.example, numbers: ["+15145550199"]}
accounts:
  - {system_id: acme, password: acmepw, tenant: acme, window: 4096}
smscs:
  - {name: carrier, address: %q, system_id: optgate, password: pw, binds: 2, window: 512}
routes:
  - {prefix: "+", smscs: [carrier]}
`, b.TempDir(), smsc.Addr())
	g := startBenchGateway(b, y)
	var receipts atomic.Int64
	c := smpp.NewClient(smpp.ClientConfig{Addr: g.SMPPAddr(), SystemID: "acme", Password: "acmepw", Conn: smpp.ConnConfig{Window: 1024},
		Handler: smpp.HandlerFunc(func(r *smpp.Request) {
			if d, ok := r.PDU.(*smpp.DeliverSM); ok && d.IsReceipt() {
				receipts.Add(1)
			}
			r.Respond(smpp.StatusOK, nil)
		})})
	c.Start()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := c.WaitBound(ctx, 1); err != nil {
		b.Fatal(err)
	}
	cn := c.Conns()[0]
	const pool = 4096
	pdus := make([]*smpp.SubmitSM, pool)
	for i := range pdus {
		pdus[i] = &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(fmt.Sprintf("1514%07d", i))}, RegisteredDelivery: 1,
			ShortMessage: []byte("Your interview is confirmed for Tuesday at 10:00")}}
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	done := func(r smpp.Result) {
		if r.Err != nil {
			failed.Add(1)
		}
		wg.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		if err := cn.SendAsync(ctx, pdus[i%pool], done); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	testutil.CheckFor(b, 60*time.Second, func() error {
		if n := receipts.Load(); n < int64(b.N) {
			return fmt.Errorf("%d of %d receipts", n, b.N)
		}
		return nil
	})
	el := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d submits failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
}

// onDisk reports whether the Badger store itself (not the writer's pending
// set) holds the mapping of s.
func (e *testEnv) onDisk(s smpptest.Submit) bool {
	e.t.Helper()
	key := receipt.StoreKey(e.g.links["carrier"].receiptSMSC(), s.MessageID)
	found := false
	err := e.g.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return found
}

// A message whose final receipt comes while its mapping waits to be
// written costs the store nothing: the mapping is never written, nor
// deleted. One whose receipt is late is written once the delay is over.
func TestReceiptQuickFinalNeverWritten(t *testing.T) {
	env := newManualReceiptEnv(t, "")
	st := env.g.receipts
	st.SetPersistDelay(time.Hour) // nothing becomes due during the test
	written, avoided := promtest.ToFloat64(st.Counters().Written), promtest.ToFloat64(st.Counters().Unwritten)
	id, s := env.submitRecorded("quick receipt")
	if _, ok := env.stored(s); !ok { // pending mappings are found too
		testutil.CheckFor(t, 10*time.Second, func() error {
			if _, ok := env.stored(s); !ok {
				return fmt.Errorf("mapping of %s not pending", s.MessageID)
			}
			return nil
		})
	}
	if err := env.sendReceipt(s, "DELIVRD"); err != nil {
		t.Fatalf("the gateway refused the receipt: %v", err)
	}
	env.nextReceipt(id, "DELIVRD")
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := promtest.ToFloat64(st.Counters().Unwritten); n != avoided+1 {
			return fmt.Errorf("unwritten %v, want %v", n, avoided+1)
		}
		return nil
	})
	if n := promtest.ToFloat64(st.Counters().Written); n != written {
		t.Fatalf("%v store writes for a message whose receipt came at once", n-written)
	}
	if env.onDisk(s) {
		t.Fatal("the mapping reached the store")
	}

	// A late receipt: the mapping is written once due.
	st.SetPersistDelay(20 * time.Millisecond)
	_, late := env.submitRecorded("late receipt")
	testutil.CheckFor(t, 10*time.Second, func() error {
		if !env.onDisk(late) {
			return fmt.Errorf("mapping of %s not written", late.MessageID)
		}
		return nil
	})
	if n := promtest.ToFloat64(st.Counters().Written); n != written+1 {
		t.Fatalf("store writes %v, want %v", n-written, 1)
	}
}

// Receipts that come at once (the SMSC sends each right after its
// submit_sm_resp, so it can race the gateway's own bookkeeping of the
// answer): every mapping is cancelled by its final receipt and none is
// left waiting to be written (a del queued before its put would leave a
// stale mapping behind).
func TestReceiptImmediateNoStaleMapping(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{NoRecord: true, Receipts: true})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	env := startEnv(t, configYAML(dir, smsc.Addr(), "", ""), smsc, dir)
	st := env.g.receipts
	st.SetPersistDelay(time.Hour)
	written := promtest.ToFloat64(st.Counters().Written)
	// A receipt that overtook its submit_sm_resp is parked, then delivered
	// when the mapping comes.
	correlated := env.receiptCount("correlated") + env.receiptCount("parked")
	const n = 300
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n / 4 {
				if _, err := env.submit(handset, fmt.Sprintf("message %d/%d", i, j)); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d submits failed", f)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		if got := env.receiptCount("correlated") + env.receiptCount("parked") - correlated; got != n {
			return fmt.Errorf("%v of %d receipts correlated (correlated %v, parked %v, uncorrelated %v, unparsable %v, smsc receipts %d)", got, n,
				env.receiptCount("correlated"), env.receiptCount("parked"), env.receiptCount("uncorrelated"), env.receiptCount("unparsable"), smsc.Receipts())
		}
		queued, left := st.Backlog()
		if queued > 0 {
			return fmt.Errorf("%d store ops queued", queued)
		}
		// The writer takes the queue before it settles it: the last
		// batch's dels may still be on their way to their puts. With the
		// hour's delay a del queued before its put leaves the put pending
		// for good.
		if left != 0 {
			return fmt.Errorf("%d mappings left pending after every receipt came (a del queued before its put)", left)
		}
		return nil
	})
	if w := promtest.ToFloat64(st.Counters().Written) - written; w != 0 {
		t.Fatalf("%v store writes for receipts that all came at once", w)
	}
}
