package api

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"

	"github.com/optgate/optgate/gateway/status"
)

// A refused token is answered before the body is read: a client that
// sends its headers and only part of a large body gets its 401 (and the
// connection closes), and nothing reaches the core.
func TestAuthBeforeBody(t *testing.T) {
	core := &testCore{}
	addr := startServer(t, core, false, nil)
	for _, tc := range []struct{ name, auth string }{
		{"wrong token", "Authorization: Bearer wrong-token-0123456789\r\n"},
		{"no token", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			// 10 MB announced (over max_body_bytes), 16 KiB sent: past
			// fasthttp's pre-read, far from the end.
			fmt.Fprintf(c, "POST /v1/messages HTTP/1.1\r\nHost: x\r\n%sContent-Length: 10000000\r\n\r\n%s",
				tc.auth, strings.Repeat("x", 16<<10))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer before the body was sent: %v", err)
			}
			resp.Body.Close()
			testutil.RequireEqual(t, resp.StatusCode, 401)
			testutil.RequireEqual(t, resp.Header.Get("WWW-Authenticate"), `Bearer realm="optgate"`)
			testutil.RequireEqual(t, resp.Close, true)
		})
	}
	testutil.RequireEqual(t, len(core.sendsTo()), 0)

	// With Expect: 100-continue the refusal comes instead of the 100.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope-nope-nope-nope\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	testutil.RequireEqual(t, resp.StatusCode, 401)
}

// After http.auth_failures refused tokens an address is locked out, good
// token or not, with a Retry-After; the routes without a token are not.
func TestAuthLockout(t *testing.T) {
	core := &testCore{sent: Sent{ID: "m1", Outcome: status.Outcome{Kind: status.Accepted}}}
	addr := startServer(t, core, false, func(c *Config) { c.AuthFailures, c.AuthLockout = 3, time.Minute })
	for i := range 3 {
		a := do(t, addr, "GET", "/v1/admin/deadletter", "wrong-token-0123456789", "")
		if a.status != 401 || a.errCode() != "unauthorized" {
			t.Fatalf("failure %d: %d %v", i+1, a.status, a.body)
		}
	}
	a := do(t, addr, "POST", "/v1/messages", acmeToken, `{"to":"+15145550100","text":"hi"}`)
	if a.status != 429 || a.errCode() != "auth_locked" || a.header.Get("Retry-After") != "60" {
		t.Fatalf("good token from a locked address: %d Retry-After=%q %v", a.status, a.header.Get("Retry-After"), a.body)
	}
	testutil.RequireEqual(t, len(core.sendsTo()), 0)
	testutil.RequireEqual(t, do(t, addr, "GET", "/healthz", "", "").status, 200)
}

// The tenant a request acts on is resolved once, before the handler: a
// tenant token's own (naming another is 403), the admin's ?tenant=, or
// the only tenant.
func TestTenantResolution(t *testing.T) {
	const body = `{"to":"+15145550100","text":"hi"}`
	for _, tc := range []struct {
		name, token, query string
		one                bool
		status             int
		code, field        string
		tenant             string // the tenant Send got
	}{
		{"tenant token", acmeToken, "", false, 202, "", "", "acme"},
		{"tenant token naming itself", betaToken, "?tenant=beta", false, 202, "", "", "beta"},
		{"tenant token naming another", acmeToken, "?tenant=beta", false, 403, "forbidden", "tenant", ""},
		{"admin naming a tenant", adminToken, "?tenant=beta", false, 202, "", "", "beta"},
		{"admin naming none of two", adminToken, "", false, 400, "invalid_request", "tenant", ""},
		{"admin naming an unknown one", adminToken, "?tenant=gamma", false, 400, "invalid_request", "tenant", ""},
		{"admin with one tenant", adminToken, "", true, 202, "", "", "acme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core := &testCore{sent: Sent{ID: "m1", Outcome: status.Outcome{Kind: status.Accepted}}}
			addr := startServer(t, core, tc.one, nil)
			a := do(t, addr, "POST", "/v1/messages"+tc.query, tc.token, body)
			if a.status != tc.status || a.errCode() != tc.code || a.errField() != tc.field {
				t.Fatalf("%d %v, want %d %s on %q", a.status, a.body, tc.status, tc.code, tc.field)
			}
			var want []string
			if tc.tenant != "" {
				want = []string{tc.tenant}
			}
			if got := core.sendsTo(); !slices.Equal(got, want) {
				t.Fatalf("Send got tenants %v, want %v", got, want)
			}
		})
	}
}

// The admin-only routes take the admin token only; the check is the
// route's, before its handler.
func TestAdminOnly(t *testing.T) {
	core := &testCore{}
	addr := startServer(t, core, false, func(c *Config) { c.Pprof = true })
	for _, path := range []string{"/v1/admin/deadletter", "/debug/pprof/"} {
		a := do(t, addr, "GET", path, acmeToken, "")
		if a.status != 403 || a.errCode() != "forbidden" {
			t.Fatalf("%s with a tenant token: %d %v", path, a.status, a.body)
		}
		testutil.RequireEqual(t, do(t, addr, "GET", path, adminToken, "").status, 200)
		testutil.RequireEqual(t, do(t, addr, "GET", path, "", "").status, 401)
	}
	a := do(t, addr, "POST", "/v1/admin/backup", betaToken, "")
	testutil.RequireEqual(t, a.status, 403)
}

// Every answer carries an X-Request-Id, the caller's when sane, and a
// wrong method on a known route is 405 with Allow.
func TestRequestIDAndRouting(t *testing.T) {
	addr := startServer(t, &testCore{}, false, nil)
	req, _ := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
	req.Header.Set("X-Request-Id", "trace-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	testutil.RequireEqual(t, resp.Header.Get("X-Request-Id"), "trace-1")
	a := do(t, addr, "GET", "/v1/messages", acmeToken, "")
	if a.status != 405 || a.header.Get("Allow") != "POST" || a.header.Get("X-Request-Id") == "" {
		t.Fatalf("GET /v1/messages: %d Allow=%q", a.status, a.header.Get("Allow"))
	}
	testutil.RequireEqual(t, do(t, addr, "GET", "/v1/nothing", acmeToken, "").status, 404)
	// Without a simulator the route does not exist.
	testutil.RequireEqual(t, do(t, addr, "POST", "/v1/simulator/mo", adminToken, "{}").status, 404)
}

// While a store refuses writes, a request that would write is 503 with
// Retry-After before it reaches the core; reads go on.
func TestRefuseWritesWhileUnhealthy(t *testing.T) {
	core := &testCore{problem: "consent store: disk full"}
	addr := startServer(t, core, false, nil)
	a := do(t, addr, "POST", "/v1/messages", acmeToken, `{"to":"+15145550100","text":"hi"}`)
	if a.status != 503 || a.errCode() != "store_unavailable" || a.header.Get("Retry-After") != "30" {
		t.Fatalf("send while unhealthy: %d Retry-After=%q %v", a.status, a.header.Get("Retry-After"), a.body)
	}
	testutil.RequireEqual(t, len(core.sendsTo()), 0)
	testutil.RequireEqual(t, do(t, addr, "GET", "/v1/admin/deadletter", adminToken, "").status, 200)
}

// A body over max_body_bytes is 413 before any handler runs.
func TestBodyLimit(t *testing.T) {
	core := &testCore{}
	addr := startServer(t, core, false, func(c *Config) { c.MaxBodyBytes = 64 })
	a := do(t, addr, "POST", "/v1/messages", acmeToken, `{"to":"+15145550100","text":"`+strings.Repeat("x", 100)+`"}`)
	testutil.RequireEqual(t, a.status, 413)
	testutil.RequireEqual(t, a.errCode(), "body_too_large")
	testutil.RequireEqual(t, len(core.sendsTo()), 0)
}
