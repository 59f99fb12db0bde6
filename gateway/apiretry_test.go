package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp/smpptest"
)

// apiResp is a raw answer of the HTTP API.
type apiResp struct {
	status int
	header http.Header
	body   string
}

// do sends one request with headers to the gateway's API and returns the
// answer as it came.
func (e *testEnv) do(method, path, token, body string, hdr ...string) apiResp {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://"+e.g.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiResp{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// A retried send with the same Idempotency-Key gets the first answer back
// and sends nothing, also after a restart; the same key with another body
// is refused; bad keys are refused.
func TestIdempotencyKeyReplaysAcrossRestart(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := configYAML(dir, smsc.Addr(), "", "")
	env := startEnv(t, y, smsc, dir)
	const to = "+15145550171"
	body := `{"to":"` + to + `","text":"Your interview is at 10:00"}`
	key := []string{"Idempotency-Key", "order-7731/attempt"}

	first := env.do("POST", "/v1/messages", acmeToken, body, key...)
	if first.status != 202 || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first send: %d %s (replayed=%q)", first.status, first.body, first.header.Get("Idempotent-Replayed"))
	}
	env.nextSubmitTo(to)
	again := env.do("POST", "/v1/messages", acmeToken, body, key...)
	if again.status != first.status || again.body != first.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %s replayed=%q; first was %d %s", again.status, again.body, again.header.Get("Idempotent-Replayed"), first.status, first.body)
	}
	other := env.do("POST", "/v1/messages", acmeToken, `{"to":"`+to+`","text":"another text"}`, key...)
	if other.status != 422 || !strings.Contains(other.body, "idempotency_key_reused") {
		t.Fatalf("same key, other body: %d %s", other.status, other.body)
	}
	// Keys are per tenant: the admin acting on acme shares acme's keys.
	admin := env.do("POST", "/v1/messages?tenant=acme", adminTok, body, key...)
	if admin.body != first.body || admin.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("admin retry for acme: %d %s", admin.status, admin.body)
	}
	for _, bad := range []string{strings.Repeat("k", 256), "clé"} {
		r := env.do("POST", "/v1/messages", acmeToken, body, "Idempotency-Key", bad)
		if r.status != 400 || !strings.Contains(r.body, "Idempotency-Key") {
			t.Fatalf("key %q: %d %s", bad, r.status, r.body)
		}
	}
	if n := smsc.Submits(); n != 1 {
		t.Fatalf("SMSC got %d submits before the restart, want 1", n)
	}

	// Restart on the same store: the key and its answer are still there.
	env.stop()
	env = startEnv(t, y, smsc, dir)
	after := env.do("POST", "/v1/messages", acmeToken, body, key...)
	if after.status != first.status || after.body != first.body || after.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after restart: %d %s; first was %d %s", after.status, after.body, first.status, first.body)
	}
	// A new key sends (and shows the SMSC is reachable, so a duplicate
	// would have come by now).
	if r := env.do("POST", "/v1/messages", acmeToken, `{"to":"+15145550172","text":"hello"}`, "Idempotency-Key", "other"); r.status != 202 {
		t.Fatalf("new key: %d %s", r.status, r.body)
	}
	env.nextSubmitTo("+15145550172")
	if n := smsc.Submits(); n != 2 {
		t.Fatalf("SMSC got %d submits, want 2 (one per key)", n)
	}
}

// A retry while the first request still waits for the carrier is 409
// with Retry-After, and sends nothing; once the first answered, the retry
// gets its answer.
func TestIdempotencyKeyInProgress(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	env := startEnv(t, configYAML(dir, smsc.Addr(), "", ""), smsc, dir)
	release := make(chan struct{})
	smsc.SetLatency(func() time.Duration {
		<-release
		return 0
	})
	const to = "+15145550173"
	body := `{"to":"` + to + `","text":"slow carrier"}`
	key := []string{"Idempotency-Key", "slow-1"}
	firstc := make(chan apiResp, 1)
	go func() { firstc <- env.do("POST", "/v1/messages", acmeToken, body, key...) }()
	env.nextSubmitTo(to) // the first is at the SMSC, unanswered
	busy := env.do("POST", "/v1/messages", acmeToken, body, key...)
	if busy.status != 409 || !strings.Contains(busy.body, "idempotency_in_progress") || busy.header.Get("Retry-After") == "" {
		t.Fatalf("retry while running: %d %s Retry-After=%q", busy.status, busy.body, busy.header.Get("Retry-After"))
	}
	close(release)
	first := <-firstc
	if first.status != 202 {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	again := env.do("POST", "/v1/messages", acmeToken, body, key...)
	if again.body != first.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after the answer: %d %s", again.status, again.body)
	}
	if n := smsc.Submits(); n != 1 {
		t.Fatalf("SMSC got %d submits, want 1", n)
	}
}

// A reservation left by a gateway that stopped before storing the answer
// (a crash between the durable reservation and the answer) is never sent
// again: the retry is told the outcome is unknown, with the message id.
func TestIdempotencyKeyInterrupted(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := configYAML(dir, smsc.Addr(), "", "")
	env := startEnv(t, y, smsc, dir)
	body := `{"to":"+15145550174","text":"hello"}`
	if err := env.g.api.ReserveIdempotencyKey("acme", "crash-1", []byte(body), "feedbeef"); err != nil {
		t.Fatal(err)
	}
	env.stop()
	env = startEnv(t, y, smsc, dir)
	r := env.do("POST", "/v1/messages", acmeToken, body, "Idempotency-Key", "crash-1")
	if r.status != 409 || !strings.Contains(r.body, "idempotency_interrupted") || !strings.Contains(r.body, "feedbeef") {
		t.Fatalf("retry of an interrupted request: %d %s", r.status, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if s, err := smsc.NextSubmit(ctx); err == nil {
		t.Fatalf("an interrupted request was sent: %+v", s)
	}
}

// Every answer has an X-Request-Id (the caller's when sane); a wrong
// method on a known path is 405 with Allow; a 401 says how to
// authenticate.
func TestHTTPRequestIDAllowAuthenticate(t *testing.T) {
	env := newEnv(t)
	r := env.do("GET", "/v1/messages/1", acmeToken, "", "X-Request-Id", "trace-abc.123")
	if got := r.header.Get("X-Request-Id"); got != "trace-abc.123" {
		t.Fatalf("X-Request-Id %q, want the caller's", got)
	}
	seen := map[string]bool{}
	for _, in := range []string{"", strings.Repeat("x", 129), "has space"} {
		r := env.do("GET", "/healthz", "", "", "X-Request-Id", in)
		got := r.header.Get("X-Request-Id")
		if got == "" || got == in || seen[got] {
			t.Fatalf("X-Request-Id for %q: %q (want a new, unique id)", in, got)
		}
		seen[got] = true
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"GET", "/v1/messages", "POST"},
		{"DELETE", "/v1/messages/12ab", "GET"},
		{"POST", "/v1/consent/+15145550100", "GET"},
		{"GET", "/v1/consent/+15145550100/opt-out", "POST"},
		{"PUT", "/v1/consent/export", "GET"},
		{"POST", "/v1/openapi.yaml", "GET"},
	} {
		r := env.do(tc.method, tc.path, acmeToken, "")
		if r.status != 405 || r.header.Get("Allow") != tc.allow || !strings.Contains(r.body, "method_not_allowed") {
			t.Fatalf("%s %s: %d Allow=%q %s", tc.method, tc.path, r.status, r.header.Get("Allow"), r.body)
		}
	}
	if r := env.do("GET", "/v1/nothing", acmeToken, ""); r.status != 404 {
		t.Fatalf("unknown path: %d", r.status)
	}
	r = env.do("GET", "/v1/messages/1", "wrong-token-123456", "")
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="optgate"` || r.header.Get("X-Request-Id") == "" {
		t.Fatalf("401: %d WWW-Authenticate=%q X-Request-Id=%q", r.status, r.header.Get("WWW-Authenticate"), r.header.Get("X-Request-Id"))
	}
}

// An error line logged for a request carries its X-Request-Id.
func TestHTTPErrorLogHasRequestID(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	var logs syncBuf
	env := startEnvOpt(t, configYAML(dir, smsc.Addr(), "", ""), smsc, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	env.g.api.SetExportHook(func() { panic("test panic in export") })
	defer env.g.api.SetExportHook(nil)
	r := env.do("GET", "/v1/consent/export", acmeToken, "", "X-Request-Id", "export-req-42")
	if r.header.Get("X-Request-Id") != "export-req-42" {
		t.Fatalf("X-Request-Id %q", r.header.Get("X-Request-Id"))
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if !strings.Contains(logs.String(), "request_id=export-req-42") {
			return fmt.Errorf("no request_id in the log: %s", logs.String())
		}
		return nil
	})
}
