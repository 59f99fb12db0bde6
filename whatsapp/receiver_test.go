package whatsapp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/valyala/fasthttp"
)

var meta = whatsapptest.Meta{PhoneNumberID: testPID}

func post(t testing.TB, url, secret string, body []byte) int {
	t.Helper()
	status, err := whatsapptest.Post(nil, url, secret, body)
	requireNoErr(t, err)
	return status
}

// rawPost posts body with the given signature header ("" omits it).
func rawPost(t testing.TB, url, sig string, body []byte) int {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod("POST")
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	req.SetBody(body)
	requireNoErr(t, fasthttp.DoTimeout(req, resp, 5*time.Second))
	return resp.StatusCode()
}

func TestSignatureVectors(t *testing.T) {
	r := &Receiver{}
	secret := []byte(testSecret)
	r.macs.New = func() any { return hmac.New(sha256.New, secret) }

	// Fixed literal vector from whatsapp.md §5 (openssl dgst -sha256 -hmac test_app_secret).
	body := []byte(`{"object":"whatsapp_business_account","entry":[]}`)
	testutil.RequireEqual(t, len(body), 49, "vector body length")
	const literal = "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756"
	testutil.RequireEqual(t, r.validSignature([]byte(literal), body), true, "literal vector")
	testutil.RequireEqual(t, whatsapptest.Sign(testSecret, body), literal, "whatsapptest.Sign on the literal vector")

	// Independently computed vector over a non-ASCII (escaped) body.
	body2 := whatsapptest.InboundText(meta, "16505551234", "wamid.X", "Grüße 👋", time.Unix(1749416383, 0))
	if bytes.ContainsAny(body2, "üß") || !bytes.Contains(body2, []byte(`\u00fc`)) || !bytes.Contains(body2, []byte(`\ud83d\udc4b`)) {
		t.Fatalf("non-ASCII not escaped as Meta does: %s", body2)
	}
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write(body2)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	testutil.RequireEqual(t, r.validSignature([]byte(want), body2), true, "computed vector")

	bad := []string{
		"",                                  // missing
		literal[7:],                         // no prefix
		"sha1=" + literal[7:],               // wrong algorithm
		literal[:len(literal)-1],            // truncated
		literal[:len(literal)-1] + "7",      // one digit off
		"sha256=" + strings.Repeat("z", 64), // not hex
		literal + "00",                      // too long
	}
	for _, sig := range bad {
		if r.validSignature([]byte(sig), body) {
			t.Errorf("signature %q accepted", sig)
		}
	}
	// The signature covers the raw bytes: a re-serialised body fails.
	if r.validSignature([]byte(literal), []byte(`{"object": "whatsapp_business_account", "entry": []}`)) {
		t.Error("signature valid for different bytes")
	}
}

func TestVerifyHandshake(t *testing.T) {
	db := openDB(t, t.TempDir())
	_, url := startReceiver(t, db, &recorder{}, nil)
	get := func(q string) (int, string, string) {
		status, body, err := fasthttp.Get(nil, url+"?"+q)
		requireNoErr(t, err)
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI(url + "?" + q)
		requireNoErr(t, fasthttp.Do(req, resp))
		return status, string(body), string(resp.Header.ContentType())
	}
	status, body, ct := get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=" + testVerify)
	testutil.RequireEqual(t, status, 200, "status")
	testutil.RequireEqual(t, body, "1158201444", "challenge returned raw (not JSON-quoted)")
	if body == `"1158201444"` || !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("challenge must be plain text, got %q (%s)", body, ct)
	}
	for _, q := range []string{
		"hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong",
		"hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=" + testVerify,
		"hub.mode=subscribe&hub.verify_token=" + testVerify,
		"hub.mode=subscribe&hub.challenge=1",
		"",
	} {
		status, _, _ := get(q)
		testutil.RequireEqual(t, status, 403, "status for "+q)
	}
}

func TestReceiverEventsAndConsentHooks(t *testing.T) {
	db := openDB(t, t.TempDir())
	rec := &recorder{}
	r, url := startReceiver(t, db, rec, nil)
	ts := time.Now().Add(-time.Minute).Truncate(time.Second)
	bodies := [][]byte{
		whatsapptest.InboundText(meta, "16505551234", "wamid.text1", "STOP", ts),
		whatsapptest.InboundWebhook(meta,
			whatsapptest.Button("16505551235", "wamid.btn1", "Stop promotions", "Stop promotions", "wamid.tpl", ts),
			whatsapptest.ButtonReply("16505551236", "wamid.br1", "optout", "Stop", ts),
			whatsapptest.ListReply("16505551237", "wamid.lr1", "row1", "Unsubscribe", "all lists", ts)),
		whatsapptest.StatusWebhook(meta,
			whatsapptest.Status{ID: "wamid.out1", Status: "failed", RecipientID: "16505551238", ErrorCode: 131050, Timestamp: ts},
			whatsapptest.Status{ID: "wamid.out2", Status: "failed", RecipientID: "16505551234", ErrorCode: 131047, Timestamp: ts},
			whatsapptest.Status{ID: "wamid.out3", Status: "delivered", RecipientID: "16505551234", Timestamp: ts}),
		whatsapptest.UserPreference(meta, "16505551239", "stop", ts),
		whatsapptest.UserPreference(meta, "16505551239", "resume", ts.Add(time.Second)),
	}
	for _, b := range bodies {
		testutil.RequireEqual(t, post(t, url, testSecret, b), 200, "status")
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if n := rec.count(); n != 9 {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})
	byKey := map[string]Event{}
	for _, ev := range rec.all() {
		testutil.RequireEqual(t, ev.PhoneNumberID, testPID, "phone number id")
		switch ev.Kind {
		case KindMessage:
			byKey[ev.Message.ID] = ev
		case KindStatus:
			byKey[ev.Status.ID] = ev
		case KindPreference:
			byKey["pref/"+ev.Preference.Value] = ev
		}
	}
	type want struct {
		key     string
		signal  Signal
		keyword string
	}
	for _, w := range []want{
		{"wamid.text1", SignalKeyword, "STOP"},
		{"wamid.btn1", SignalMarketingStop, "Stop promotions"},
		{"wamid.br1", SignalKeyword, "Stop"},
		{"wamid.lr1", SignalKeyword, "Unsubscribe"},
		{"wamid.out1", SignalMarketingStop, ""},
		{"wamid.out2", SignalWindowClosed, ""},
		{"wamid.out3", SignalNone, ""},
		{"pref/stop", SignalMarketingStop, ""},
		{"pref/resume", SignalMarketingResume, ""},
	} {
		ev, ok := byKey[w.key]
		if !ok {
			t.Fatalf("missing event %s", w.key)
		}
		testutil.RequireEqual(t, ev.Signal(), w.signal, "signal of "+w.key)
		if ev.Kind == KindMessage {
			testutil.RequireEqual(t, ev.Message.KeywordText(), w.keyword, "keyword text of "+w.key)
			testutil.RequireEqual(t, ev.Message.Timestamp.Equal(ts), true, "timestamp of "+w.key)
		}
	}
	testutil.RequireEqual(t, byKey["wamid.lr1"].Message.ReplyDescription, "all lists", "list description")
	testutil.RequireEqual(t, byKey["wamid.btn1"].Message.ContextID, "wamid.tpl", "context id")
	testutil.RequireEqual(t, byKey["wamid.out1"].Status.Errors[0].Code, 131050, "status error code")

	// Inbound messages opened windows; the 131047 failure closed 16505551234's.
	now := time.Now()
	testutil.RequireEqual(t, r.Window().Open(testPID, "16505551235", now), true, "window after button tap")
	testutil.RequireEqual(t, r.Window().Open(testPID, "+16505551237", now), true, "window after list reply (+ form)")
	testutil.RequireEqual(t, r.Window().Open(testPID, "16505551234", now), false, "window after 131047")
	testutil.RequireEqual(t, r.Window().Open(testPID, "16505559999", now), false, "window never opened")
}

func TestReceiverDuplicatesAndOrder(t *testing.T) {
	db := openDB(t, t.TempDir())
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	_, url := startReceiver(t, db, rec, func(c *ReceiverConfig) { c.Metrics = m })
	body := whatsapptest.InboundText(meta, "16505551234", "wamid.dup", "hello", time.Now())

	// Concurrent redeliveries of the same body, and a batch repeating one wamid.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s := post(t, url, testSecret, body); s != 200 {
				t.Errorf("status %d", s)
			}
		}()
	}
	wg.Wait()
	testutil.RequireEqual(t, post(t, url, testSecret, whatsapptest.InboundWebhook(meta,
		whatsapptest.Text("16505551234", "wamid.twice", "a", time.Now()),
		whatsapptest.Text("16505551234", "wamid.twice", "a", time.Now()))), 200, "batch status")

	// Out of order: read before delivered, and failed after delivered: all distinct events.
	for _, st := range []string{"read", "delivered", "sent", "read"} {
		testutil.RequireEqual(t, post(t, url, testSecret, whatsapptest.StatusWebhook(meta,
			whatsapptest.Status{ID: "wamid.o1", Status: st, RecipientID: "16505551234"})), 200, "status post")
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if n := rec.count(); n != 5 {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})
	// Redelivery after processing is still a duplicate.
	testutil.RequireEqual(t, post(t, url, testSecret, body), 200, "late redelivery")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if d := promtest.ToFloat64(m.dedupDrops); d != 10 {
			return fmt.Errorf("%v dedup drops", d)
		}
		return nil
	})
	testutil.RequireEqual(t, rec.count(), 5, "events after late redelivery")
	seen := map[string]int{}
	for _, ev := range rec.all() {
		if ev.Kind == KindMessage {
			seen[ev.Message.ID]++
		} else {
			seen[ev.Status.ID+"/"+ev.Status.Status]++
		}
	}
	for k, n := range seen {
		testutil.RequireEqual(t, n, 1, "deliveries of "+k)
	}
	testutil.RequireEqual(t, len(seen), 5, "distinct events")
	testutil.CheckFor(t, 2*time.Second, func() error {
		if d := promtest.ToFloat64(m.spoolDepth); d != 0 {
			return fmt.Errorf("spool depth %v", d)
		}
		return nil
	})
}

func TestReceiverRejects(t *testing.T) {
	db := openDB(t, t.TempDir())
	rec := &recorder{}
	m := NewMetrics(nil)
	_, url := startReceiver(t, db, rec, func(c *ReceiverConfig) { c.Metrics = m; c.MaxRequestBodySize = 64 << 10 })
	good := whatsapptest.InboundText(meta, "16505551234", "wamid.good", "hi", time.Now())

	testutil.RequireEqual(t, rawPost(t, url, "", good), 401, "missing signature")
	testutil.RequireEqual(t, rawPost(t, url, whatsapptest.Sign("other", good), good), 401, "wrong secret")
	tampered := bytes.Replace(good, []byte("hi"), []byte("ho"), 1)
	testutil.RequireEqual(t, rawPost(t, url, whatsapptest.Sign(testSecret, good), tampered), 401, "tampered body")

	huge := append([]byte(`{"object":"whatsapp_business_account","entry":[],"pad":"`), bytes.Repeat([]byte("x"), 100<<10)...)
	huge = append(huge, `"}`...)
	testutil.RequireEqual(t, post(t, url, testSecret, huge), 413, "huge body")

	testutil.RequireEqual(t, post(t, url, testSecret, good[:len(good)/2]), 400, "truncated JSON")
	testutil.RequireEqual(t, post(t, url, testSecret, []byte(`[1,2,3]`)), 400, "array body")
	testutil.RequireEqual(t, post(t, url, testSecret, []byte(`{"entry":"nope"}`)), 400, "entry of wrong type")
	testutil.RequireEqual(t, post(t, url, testSecret, []byte(``)), 400, "empty body")
	testutil.RequireEqual(t, post(t, url, testSecret, []byte(`{"object":"whatsapp_business_account","entry":[]}`)), 200, "empty entry list")

	// Unknown phone-number id: acknowledged, counted, not processed.
	other := whatsapptest.InboundText(whatsapptest.Meta{PhoneNumberID: "999"}, "16505551234", "wamid.unknown", "hi", time.Now())
	testutil.RequireEqual(t, post(t, url, testSecret, other), 200, "unknown number")
	testutil.RequireEqual(t, promtest.ToFloat64(m.unknownIDs), 1.0, "unknown counter")

	// Partial garbage: a bad entry, a bad message and a bad timestamp beside good items.
	partial := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[
		{"id":7,"changes":"x"},
		{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":%q},
			"messages":[{"from":"1","id":"wamid.p1","timestamp":"12","type":"text","text":{"body":"ok"}},
			            {"from":1,"id":"wamid.bad"},
			            {"from":"1","id":"wamid.p2","timestamp":"soon","type":"text","text":{"body":"bad ts"}},
			            {"from":"1","id":"wamid.p3","timestamp":12,"type":"text","text":{"body":"ok2"}}]}}]}]}`, testPID)
	testutil.RequireEqual(t, post(t, url, testSecret, []byte(partial)), 200, "partial garbage")
	testutil.RequireEqual(t, promtest.ToFloat64(m.skipped), 3.0, "skipped counter")

	testutil.RequireEqual(t, post(t, url, testSecret, good), 200, "good body")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if n := rec.count(); n != 3 {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})
	ids := map[string]bool{}
	for _, ev := range rec.all() {
		ids[ev.Message.ID] = true
	}
	for _, id := range []string{"wamid.good", "wamid.p1", "wamid.p3"} {
		testutil.RequireEqual(t, ids[id], true, id+" processed")
	}
}

func TestReceiverHandlerRetry(t *testing.T) {
	db := openDB(t, t.TempDir())
	var mu sync.Mutex
	calls := 0
	rec := &recorder{fail: func(Event) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			return errors.New("consent store unavailable")
		}
		return nil
	}}
	_, url := startReceiver(t, db, rec, nil)
	testutil.RequireEqual(t, post(t, url, testSecret, whatsapptest.InboundText(meta, "1", "wamid.r", "x", time.Now())), 200, "status")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if rec.count() != 1 {
			return errors.New("not handled")
		}
		return nil
	})
	mu.Lock()
	testutil.RequireEqual(t, calls, 3, "handler calls")
	mu.Unlock()
}

func TestReceiverDeadLetterAndReplay(t *testing.T) {
	db := openDB(t, t.TempDir())
	var broken sync.Mutex
	failing := true
	rec := &recorder{fail: func(Event) error {
		broken.Lock()
		defer broken.Unlock()
		if failing {
			return errors.New("down")
		}
		return nil
	}}
	m := NewMetrics(nil)
	r, url := startReceiver(t, db, rec, func(c *ReceiverConfig) { c.MaxAttempts = 3; c.Metrics = m })
	testutil.RequireEqual(t, post(t, url, testSecret, whatsapptest.InboundText(meta, "1", "wamid.dead", "x", time.Now())), 200, "status")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if promtest.ToFloat64(m.spoolDead) != 1 {
			return errors.New("not dead-lettered")
		}
		return nil
	})
	broken.Lock()
	failing = false
	broken.Unlock()
	// The metric counts the dead letter before the committer writes it
	// (spool.go), so Replay may find it a moment later.
	testutil.CheckFor(t, 5*time.Second, func() error {
		n, err := r.Replay()
		requireNoErr(t, err)
		if n != 1 {
			return fmt.Errorf("replayed: got %d, want 1", n)
		}
		return nil
	})
	testutil.CheckFor(t, 5*time.Second, func() error {
		if rec.count() != 1 {
			return errors.New("not handled after replay")
		}
		return nil
	})
}

func TestReceiverOverflowSweep(t *testing.T) {
	db := openDB(t, t.TempDir())
	rec := &recorder{fail: func(Event) error { time.Sleep(time.Millisecond); return nil }}
	_, url := startReceiver(t, db, rec, func(c *ReceiverConfig) { c.QueueSize = 1; c.Workers = 1 })
	const n = 60
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := whatsapptest.InboundText(meta, "1", fmt.Sprintf("wamid.ov%d", i), "x", time.Now())
			if s := post(t, url, testSecret, body); s != 200 {
				t.Errorf("status %d", s)
			}
		}()
	}
	wg.Wait()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if c := rec.count(); c != n {
			return fmt.Errorf("%d events", c)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // let a periodic sweep run: nothing may be handled twice
	testutil.RequireEqual(t, rec.count(), n, "events after sweep")
}

// TestReceiverCrashRecovery kills the pipeline mid-handler by closing the receiver, reopens
// the same Badger directory and checks the spooled event is processed exactly once.
func TestReceiverCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	entered := make(chan struct{}, 1)
	blocking := HandlerFunc(func(ctx context.Context, ev Event) error {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	})
	r, url := startReceiver(t, db, blocking, nil)
	body := whatsapptest.InboundText(meta, "16505551234", "wamid.crash", "STOP", time.Now())
	testutil.RequireEqual(t, post(t, url, testSecret, body), 200, "status")
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not called")
	}
	requireNoErr(t, r.Close())
	requireNoErr(t, db.Close())

	db = openDB(t, dir)
	rec := &recorder{}
	_, url = startReceiver(t, db, rec, nil)
	testutil.CheckFor(t, 5*time.Second, func() error {
		if rec.count() != 1 {
			return fmt.Errorf("%d events", rec.count())
		}
		return nil
	})
	testutil.RequireEqual(t, rec.all()[0].Message.ID, "wamid.crash", "recovered event")
	// Meta's redelivery of the same body after recovery is a duplicate.
	testutil.RequireEqual(t, post(t, url, testSecret, body), 200, "redelivery")
	time.Sleep(100 * time.Millisecond)
	testutil.RequireEqual(t, rec.count(), 1, "events after redelivery")
}

func TestReceiverClosed(t *testing.T) {
	db := openDB(t, t.TempDir())
	r, err := NewReceiver(db, ReceiverConfig{AppSecret: "s", VerifyToken: "v", Handler: &recorder{}})
	requireNoErr(t, err)
	requireNoErr(t, r.Shutdown(context.Background()))
	testutil.RequireEqual(t, r.Serve(nil), ErrServerClosed, "Serve after Shutdown")
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI(DefaultPath)
	r.HandleFastHTTP(&ctx)
	testutil.RequireEqual(t, ctx.Response.StatusCode(), 503, "POST after Shutdown")
	_, err = NewReceiver(db, ReceiverConfig{})
	if err == nil || !strings.Contains(err.Error(), "AppSecret") || !strings.Contains(err.Error(), "Handler") {
		t.Fatalf("config errors not all reported: %v", err)
	}
}

// Close stops at once: a connection in the middle of a request is closed
// with the Receiver, not left serving (its goroutine alive) until its read
// timeout.
func TestReceiverCloseDropsOpenConnections(t *testing.T) {
	db := openDB(t, t.TempDir())
	r, u := startReceiver(t, db, &recorder{}, nil)
	pu, err := neturl.Parse(u)
	requireNoErr(t, err)
	c, err := net.Dial("tcp", pu.Host)
	requireNoErr(t, err)
	defer c.Close()
	// One whole request first, so the connection is served...
	_, err = fmt.Fprintf(c, "GET %s?hub.mode=subscribe&hub.verify_token=%s&hub.challenge=42 HTTP/1.1\r\nHost: x\r\n\r\n", pu.Path, testVerify)
	requireNoErr(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	requireNoErr(t, err)
	resp.Body.Close()
	testutil.RequireEqual(t, resp.StatusCode, 200, "verification handshake")
	// ...then half of the next one.
	_, err = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", pu.Path)
	requireNoErr(t, err)
	requireNoErr(t, r.Close())
	requireNoErr(t, c.SetReadDeadline(time.Now().Add(3*time.Second)))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection is still open after Close: read %v", err)
	}
}

// Only whatsapp_business_account notifications are taken: another object (a Page or Instagram
// subscription of the same app, or none) is acknowledged with 200 so that Meta stops retrying,
// counted, and never reaches the handler; and only the exact webhook path is served.
func TestReceiverObjectAndPath(t *testing.T) {
	db := openDB(t, t.TempDir())
	rec := &recorder{}
	m := NewMetrics(nil)
	_, url := startReceiver(t, db, rec, func(c *ReceiverConfig) { c.Metrics = m })
	good := whatsapptest.InboundText(meta, "16505551234", "wamid.obj1", "STOP", time.Now())
	page := bytes.Replace(good, []byte(`"object":"whatsapp_business_account"`), []byte(`"object":"page"`), 1)
	none := bytes.Replace(good, []byte(`,"object":"whatsapp_business_account"`), nil, 1)
	testutil.RequireEqual(t, bytes.Equal(page, good) || bytes.Equal(none, good), false, "test bodies rewritten")
	testutil.RequireEqual(t, post(t, url, testSecret, page), 200, "object page")
	testutil.RequireEqual(t, post(t, url, testSecret, none), 200, "no object")
	testutil.RequireEqual(t, promtest.ToFloat64(m.webhooks.WithLabelValues("other_object")), 2.0, "other objects counted")

	for _, p := range []string{"/webhooks/whatsapp/", "/webhooks/whatsappx", "/webhooks/whatsapp/extra", "/"} {
		u := strings.TrimSuffix(url, "/webhooks/whatsapp") + p
		testutil.RequireEqual(t, post(t, u, testSecret, good), 404, "path "+p)
	}
	testutil.RequireEqual(t, rec.count(), 0, "nothing handled from other objects or paths")

	// The same body under the right object and path is processed once.
	testutil.RequireEqual(t, post(t, url, testSecret, good), 200, "good body")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if n := rec.count(); n != 1 {
			return fmt.Errorf("%d events", n)
		}
		return nil
	})
	testutil.RequireEqual(t, rec.all()[0].Message.ID, "wamid.obj1", "the good body's event")
}
