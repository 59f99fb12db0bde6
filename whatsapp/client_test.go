package whatsapp

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
)

func newTestClient(t *testing.T, mock *whatsapptest.Server, mutate func(*ClientConfig)) (*Client, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	cfg := ClientConfig{
		BaseURL: mock.URL(), Version: "v25.0", PhoneNumberID: testPID, Token: "test-token",
		Timeout: 2 * time.Second, RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
		PairRetryUnit: time.Millisecond, Metrics: m, Rate: 1000,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := NewClient(cfg)
	requireNoErr(t, err)
	t.Cleanup(c.Close)
	return c, m
}

func textMsg(to, body string) Message { return Message{To: to, Text: &Text{Body: body}} }

func TestClientSendKinds(t *testing.T) {
	mock := whatsapptest.NewServer(whatsapptest.Config{})
	defer mock.Close()
	c, m := newTestClient(t, mock, nil)
	ctx := context.Background()

	id, err := c.Send(ctx, Message{To: "+16505551234", ReplyTo: "wamid.q", Text: &Text{Body: "You are unsubscribed. Reply START to resubscribe."}})
	requireNoErr(t, err)
	if id == "" {
		t.Fatal("no wamid")
	}
	_, err = c.Send(ctx, Message{To: "16505551234", Template: &Template{Name: "order_update", Language: "en_US",
		Components: []Component{
			{Type: "body", Parameters: []Parameter{TextParam("A-1001"), TextParam("Friday")}},
			{Type: "header", Parameters: []Parameter{NamedParam("customer", "Ana")}},
			{Type: "button", SubType: "quick_reply", Index: 1, Parameters: []Parameter{PayloadParam("stop")}},
		}}})
	requireNoErr(t, err)
	_, err = c.Send(ctx, Message{To: "+16505551234", Buttons: &Buttons{Body: "Keep receiving updates?",
		Buttons: []Button{{ID: "keep", Title: "Yes"}, {ID: "optout", Title: "Stop"}}}})
	requireNoErr(t, err)

	reqs := mock.Requests()
	testutil.RequireEqual(t, len(reqs), 3, "requests")
	for _, r := range reqs {
		testutil.RequireEqual(t, r.Authorization, "Bearer test-token", "auth header")
		testutil.RequireEqual(t, r.PhoneNumberID, testPID, "phone number id in path")
		testutil.RequireEqual(t, r.Version, "v25.0", "version in path")
	}
	var text, tpl, btn map[string]any
	requireNoErr(t, json.Unmarshal(reqs[0].Body, &text))
	requireNoErr(t, json.Unmarshal(reqs[1].Body, &tpl))
	requireNoErr(t, json.Unmarshal(reqs[2].Body, &btn))
	testutil.RequireEqual(t, text["messaging_product"], any("whatsapp"), "messaging_product")
	testutil.RequireEqual(t, text["type"], any("text"), "type")
	testutil.RequireEqual(t, text["context"].(map[string]any)["message_id"], any("wamid.q"), "context")
	testutil.RequireEqual(t, reqs[1].TemplateName, "order_update", "template name")
	comps := tpl["template"].(map[string]any)["components"].([]any)
	body := comps[0].(map[string]any)["parameters"].([]any)
	testutil.RequireEqual(t, body[1].(map[string]any)["text"], any("Friday"), "positional parameter")
	named := comps[1].(map[string]any)["parameters"].([]any)[0].(map[string]any)
	testutil.RequireEqual(t, named["parameter_name"], any("customer"), "named parameter")
	button := comps[2].(map[string]any)
	testutil.RequireEqual(t, button["index"], any("1"), "button index")
	testutil.RequireEqual(t, button["sub_type"], any("quick_reply"), "button sub_type")
	inter := btn["interactive"].(map[string]any)
	testutil.RequireEqual(t, inter["type"], any("button"), "interactive type")
	buttons := inter["action"].(map[string]any)["buttons"].([]any)
	testutil.RequireEqual(t, buttons[1].(map[string]any)["reply"].(map[string]any)["id"], any("optout"), "button id")
	testutil.RequireEqual(t, promtest.ToFloat64(m.sends.WithLabelValues("sent", "none")), 3.0, "sent counter")

	// Local validation: nothing reaches Meta.
	for _, bad := range []Message{
		{To: "1"},
		{To: "", Text: &Text{Body: "x"}},
		{To: "1", Template: &Template{Name: "Bad-Name", Language: "en"}},
		{To: "1", Buttons: &Buttons{Body: "x", Buttons: []Button{{ID: "a", Title: "same"}, {ID: "b", Title: "same"}}}},
		{To: "1", Buttons: &Buttons{Body: "x", Buttons: make([]Button, 4)}},
		{To: "1", Text: &Text{Body: "x"}, Template: &Template{Name: "a", Language: "en"}},
	} {
		if _, err := c.Send(ctx, bad); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%+v: got %v, want ErrInvalidMessage", bad, err)
		}
	}
	testutil.RequireEqual(t, len(mock.Requests()), 3, "requests after invalid messages")
}

func TestClientRetries(t *testing.T) {
	cases := []struct {
		name     string
		failures []whatsapptest.Failure
		n        int
		class    string
	}{
		{"throughput 130429 (429)", []whatsapptest.Failure{{Code: 130429, HTTPStatus: 429}}, 2, "throttle"},
		{"throughput 130429 (400)", []whatsapptest.Failure{{Code: 130429}}, 2, "throttle"},
		{"pair 131056", []whatsapptest.Failure{{Code: 131056, Subcode: 2494055}}, 2, "pair_throttle"},
		{"131000 something went wrong", []whatsapptest.Failure{{Code: 131000}}, 2, "transient"},
		{"131016 service unavailable", []whatsapptest.Failure{{Code: 131016, HTTPStatus: 503}}, 1, "transient"},
		{"bare 502", []whatsapptest.Failure{{RawStatus: 502, RawBody: "<html>Bad Gateway</html>"}}, 2, "transient"},
		{"timeout", []whatsapptest.Failure{{Delay: 2 * time.Second}}, 1, "transient"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mock := whatsapptest.NewServer(whatsapptest.Config{})
			defer mock.Close()
			// A timeout well above a loaded machine's answer time: only
			// the delayed answer may time out, or the retries differ.
			c, m := newTestClient(t, mock, func(c *ClientConfig) { c.Timeout = time.Second })
			for _, f := range tc.failures {
				mock.FailNext(tc.n, f)
			}
			id, err := c.Send(context.Background(), Message{To: "+16505551234", Template: &Template{Name: "hello", Language: "en_US"}})
			requireNoErr(t, err)
			if id == "" {
				t.Fatal("no wamid")
			}
			testutil.CheckFor(t, 10*time.Second, func() error { // a delayed answer is recorded when it ends
				if n := len(mock.Requests()); n != tc.n+1 {
					return errors.New("attempts: " + string(rune('0'+n)))
				}
				return nil
			})
			testutil.RequireEqual(t, promtest.ToFloat64(m.retries.WithLabelValues(tc.class)), float64(tc.n), "retries of class "+tc.class)
			testutil.RequireEqual(t, promtest.ToFloat64(m.sends.WithLabelValues("sent_after_retry", "none")), 1.0, "outcome")
		})
	}
}

func TestClientRetriesExhausted(t *testing.T) {
	mock := whatsapptest.NewServer(whatsapptest.Config{})
	defer mock.Close()
	c, m := newTestClient(t, mock, func(c *ClientConfig) { c.MaxAttempts = 3 })
	mock.FailNext(10, whatsapptest.Failure{Code: 131000})
	_, err := c.Send(context.Background(), Message{To: "1", Template: &Template{Name: "hello", Language: "en"}})
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want *APIError", err)
	}
	testutil.RequireEqual(t, ae.Code, 131000, "code")
	testutil.RequireEqual(t, ae.HTTPStatus, 500, "http status")
	testutil.RequireEqual(t, ae.Retryable, true, "retryable")
	testutil.RequireEqual(t, ae.FBTraceID != "", true, "fbtrace id")
	testutil.RequireEqual(t, len(mock.Requests()), 3, "attempts")
	testutil.RequireEqual(t, promtest.ToFloat64(m.sends.WithLabelValues("failed", "transient")), 1.0, "failed counter")

	// Timeouts surface as a transport APIError once attempts run out.
	mock2 := whatsapptest.NewServer(whatsapptest.Config{})
	defer mock2.Close()
	mock2.FailNext(10, whatsapptest.Failure{Delay: 300 * time.Millisecond})
	c2, _ := newTestClient(t, mock2, func(c *ClientConfig) { c.MaxAttempts = 2; c.Timeout = 50 * time.Millisecond })
	_, err = c2.Send(context.Background(), Message{To: "1", Template: &Template{Name: "hello", Language: "en"}})
	if !errors.As(err, &ae) || ae.HTTPStatus != 0 || ae.Err == nil || !ae.Retryable {
		t.Fatalf("got %#v, want a retryable transport APIError", err)
	}
}

func TestClientPermanentErrors(t *testing.T) {
	for _, tc := range []struct {
		code  int
		class ErrorClass
	}{
		{131026, ClassPermanent},
		{131050, ClassOptOut},
		{132000, ClassTemplate},
		{132015, ClassTemplate},
		{131047, ClassWindow},
		{100, ClassPermanent},
	} {
		mock := whatsapptest.NewServer(whatsapptest.Config{})
		c, _ := newTestClient(t, mock, nil)
		mock.FailNext(1, whatsapptest.Failure{Code: tc.code})
		_, err := c.Send(context.Background(), Message{To: "1", Template: &Template{Name: "hello", Language: "en"}})
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != tc.code || ae.Class != tc.class || ae.Retryable {
			t.Errorf("code %d: got %v (%#v)", tc.code, err, ae)
		}
		testutil.RequireEqual(t, len(mock.Requests()), 1, "no retry of a permanent error")
		mock.Close()
	}
}

func TestClientExpiredToken(t *testing.T) {
	mock := whatsapptest.NewServer(whatsapptest.Config{})
	defer mock.Close()
	c, m := newTestClient(t, mock, nil)
	mock.ExpireToken()
	_, err := c.Send(context.Background(), textMsg("1", "x"))
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v", err)
	}
	testutil.RequireEqual(t, ae.Code, 190, "code")
	testutil.RequireEqual(t, ae.HTTPStatus, 401, "http")
	testutil.RequireEqual(t, ae.Type, "OAuthException", "type")
	testutil.RequireEqual(t, ae.Class, ClassAuth, "class")
	testutil.RequireEqual(t, ae.Retryable, false, "retryable")
	testutil.RequireEqual(t, len(mock.Requests()), 1, "attempts")
	testutil.RequireEqual(t, promtest.ToFloat64(m.tokenErrors), 1.0, "optgate_whatsapp_token_errors_total")
}

func TestClientWindow(t *testing.T) {
	db := openDB(t, t.TempDir())
	w := NewWindow(db, nil)
	mock := whatsapptest.NewServer(whatsapptest.Config{EnforceWindow: true})
	defer mock.Close()
	c, _ := newTestClient(t, mock, func(c *ClientConfig) { c.Window = w })
	ctx := context.Background()
	const to = "+16505551234"

	// No user message yet: free-form refused locally, templates go through.
	if _, err := c.Send(ctx, textMsg(to, "hi")); !errors.Is(err, ErrWindowClosed) {
		t.Fatalf("got %v, want ErrWindowClosed", err)
	}
	if _, err := c.Send(ctx, Message{To: to, Buttons: &Buttons{Body: "?", Buttons: []Button{{ID: "a", Title: "A"}}}}); !errors.Is(err, ErrWindowClosed) {
		t.Fatalf("buttons: got %v, want ErrWindowClosed", err)
	}
	testutil.RequireEqual(t, len(mock.Requests()), 0, "Meta not called")
	_, err := c.Send(ctx, Message{To: to, Template: &Template{Name: "reengage", Language: "en_US"}})
	requireNoErr(t, err)

	// The user writes: the window opens on both sides.
	requireNoErr(t, w.Record(testPID, "16505551234", time.Now()))
	mock.OpenWindow(testPID, to, time.Now())
	_, err = c.Send(ctx, textMsg(to, "hi"))
	requireNoErr(t, err)

	// Meta disagrees (skew, another number): 131047 closes the local window too.
	const other = "16505550000"
	requireNoErr(t, w.Record(testPID, other, time.Now()))
	_, err = c.Send(ctx, textMsg(other, "hi"))
	if !errors.Is(err, ErrWindowClosed) {
		t.Fatalf("got %v, want 131047 as ErrWindowClosed", err)
	}
	var ae *APIError
	testutil.RequireEqual(t, errors.As(err, &ae) && ae.Code == 131047, true, "APIError 131047")
	testutil.RequireEqual(t, w.Open(testPID, other, time.Now()), false, "window closed after 131047")
	n := len(mock.Requests())
	_, err = c.Send(ctx, textMsg(other, "again"))
	testutil.RequireEqual(t, errors.Is(err, ErrWindowClosed), true, "refused locally now")
	testutil.RequireEqual(t, len(mock.Requests()), n, "Meta not called again")
}

func TestClientPairLimit(t *testing.T) {
	mock := whatsapptest.NewServer(whatsapptest.Config{})
	defer mock.Close()
	c, _ := newTestClient(t, mock, func(c *ClientConfig) { c.PairInterval = time.Hour; c.PairBurst = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tpl := &Template{Name: "hello", Language: "en"}
	for range 2 {
		_, err := c.Send(ctx, Message{To: "1", Template: tpl})
		requireNoErr(t, err)
	}
	// The third to the same recipient cannot be granted before the deadline...
	if _, err := c.Send(ctx, Message{To: "1", Template: tpl}); !errors.Is(err, ErrPairRateLimited) {
		t.Fatalf("got %v, want ErrPairRateLimited", err)
	}
	// ...while another recipient is unaffected.
	_, err := c.Send(ctx, Message{To: "2", Template: tpl})
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(mock.Requests()), 3, "requests")
}

func TestClientNumberRate(t *testing.T) {
	mock := whatsapptest.NewServer(whatsapptest.Config{})
	defer mock.Close()
	c, _ := newTestClient(t, mock, func(c *ClientConfig) { c.Rate = 20 })
	start := time.Now()
	for i := range 30 {
		_, err := c.Send(context.Background(), Message{To: string(rune('a' + i)), Template: &Template{Name: "x", Language: "en"}})
		requireNoErr(t, err)
	}
	// Burst of 20 (one second), then 10 more at 20/s: at least ~0.5 s.
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Fatalf("30 sends at 20/s took %v", el)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code, http int
		want       ErrorClass
	}{
		{130429, 429, ClassThrottle}, {130429, 400, ClassThrottle}, {4, 400, ClassThrottle}, {80007, 400, ClassThrottle},
		{131056, 400, ClassPairThrottle}, {131000, 500, ClassTransient}, {131016, 503, ClassTransient}, {2, 503, ClassTransient},
		{190, 401, ClassAuth}, {0, 401, ClassAuth}, {131026, 400, ClassPermanent}, {131047, 400, ClassWindow},
		{131050, 400, ClassOptOut}, {132001, 404, ClassTemplate}, {0, 502, ClassTransient}, {0, 0, ClassTransient},
		// The code wins over a misleading HTTP status.
		{131026, 500, ClassPermanent}, {131000, 400, ClassTransient},
	} {
		testutil.RequireEqual(t, Classify(tc.code, tc.http), tc.want, "class")
	}
	e := parseAPIError(400, []byte(`{"error":{"message":"(#132000) x","type":"OAuthException","code":132000,"error_data":"a string"}}`))
	testutil.RequireEqual(t, e.Details, "a string", "string error_data")
	e = parseAPIError(400, []byte(`not json`))
	testutil.RequireEqual(t, e.Class, ClassPermanent, "non-envelope 400")
}
