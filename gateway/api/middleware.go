package api

import (
	"bytes"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/gateway/status"
)

// caller is who made an API request.
type caller struct {
	admin  bool
	tenant *Tenant
}

// callerKey is the request's user value holding its authenticated caller,
// so that a request is authenticated (and its failure counted) once.
type callerKey struct{}

// request is what the middleware learnt of a request, for its handler.
type request struct {
	caller caller
	tenant *Tenant // set for routes with access tenant
	rest   string  // the path after the route's prefix
}

// serve is the one entry of every request. The middleware runs in this
// order, once per request: request id; panic recovery; for the
// authenticated paths, the bearer token (and the address lockout) before
// the body is read; the body, bounded; the refusal of writes while a
// store is unhealthy; the route; the route's access (admin, tenant); the
// handler.
func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	defer s.recoverPanic(ctx)
	setRequestID(ctx)
	path := string(ctx.Path())
	method := string(ctx.Method())
	var rq request
	// The API's callers authenticate before their body is read: at most
	// fasthttp's 8 KiB pre-read of it is in memory until then (webhooks
	// are authenticated by a signature over the body).
	if s.authedPath(path) {
		c, ok := s.auth(ctx)
		if !ok {
			ctx.SetConnectionClose() // the rest of the body is unread
			return
		}
		rq.caller = c
	}
	// Bodies are streamed (StreamRequestBody) so that an import can be
	// larger than memory; every other route gets its body read here, up to
	// max_body_bytes, as if it had not been streamed.
	if path != "/v1/consent/import" && !s.readBody(ctx) {
		return
	}
	if s.refuseWhileUnhealthy(ctx, method, path) {
		return
	}
	rt, rest := s.route(method, path)
	if rt.handle == nil {
		notFound(ctx, method, path)
		return
	}
	switch rt.access {
	case accessAdmin:
		if !rq.caller.admin {
			WriteError(ctx, 403, "forbidden", "", "admin token required")
			return
		}
	case accessTenant:
		t, ok := s.tenantFor(ctx, rq.caller)
		if !ok {
			return
		}
		rq.tenant = t
	}
	rq.rest = rest
	rt.handle(s, ctx, rq)
}

func (s *Server) recoverPanic(ctx *fasthttp.RequestCtx) {
	if v := recover(); v != nil {
		s.countPanic()
		s.log.Error("panic in HTTP handler", "path", string(ctx.Path()), "panic", fmt.Sprint(v), "request_id", requestID(ctx))
		WriteError(ctx, 500, "internal_error", "", "internal error")
	}
}

// recoverStream is recoverPanic for a body stream writer, which runs
// after the handler returned, outside its recover: a panic ends the
// stream with line, not the process.
func (s *Server) recoverStream(w io.Writer, what, tenant, rid, line string) {
	if v := recover(); v != nil {
		s.countPanic()
		s.log.Error("panic in "+what, "tenant", tenant, "panic", fmt.Sprint(v), "stack", string(debug.Stack()), "request_id", rid)
		_, _ = io.WriteString(w, line)
	}
}

func (s *Server) countPanic() {
	if s.cfg.Panics != nil {
		s.cfg.Panics.Inc()
	}
}

// auth authenticates a request by its bearer token, once per request (the
// caller is kept as a user value), and answers the refusals: 429
// auth_locked to an address locked out after repeated failures, whatever
// its token, and 401 to a missing or unknown token (which counts towards
// the lock, see httpSec).
func (s *Server) auth(ctx *fasthttp.RequestCtx) (caller, bool) {
	c, status, msg, wait := s.authHTTP(ctx)
	switch status {
	case 0:
		return c, true
	case 429:
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		WriteError(ctx, 429, "auth_locked", "", msg)
	default:
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="optgate"`)
		WriteError(ctx, 401, "unauthorized", "", msg)
	}
	return caller{}, false
}

// authHTTP checks a request's bearer token without answering: status
// 0 and the caller (kept as a user value) when it is good, else 401 or 429
// with a message and, for 429, how long the address stays locked.
func (s *Server) authHTTP(ctx *fasthttp.RequestCtx) (c caller, status int, msg string, wait time.Duration) {
	if c, ok := ctx.UserValue(callerKey{}).(*caller); ok {
		return *c, 0, "", 0
	}
	addr := "" // computed only when needed: most requests are from addresses with no failures
	if s.sec.anyTracked() {
		addr = s.sec.clientAddr(ctx)
		if wait := s.sec.lockedFor(addr, time.Now()); wait > 0 {
			s.sec.authFailed.WithLabelValues("locked").Inc()
			return caller{}, 429, "too many failed authentications from this address; retry later", wait
		}
	}
	failed := func(msg string) (caller, int, string, time.Duration) {
		if addr == "" {
			addr = s.sec.clientAddr(ctx)
		}
		s.authFailedFrom(addr)
		return caller{}, 401, msg, 0
	}
	h := ctx.Request.Header.Peek("Authorization")
	tok, ok := bytes.CutPrefix(h, []byte("Bearer "))
	if !ok || len(tok) == 0 {
		return failed("missing bearer token")
	}
	var found *caller
	if s.cfg.AdminToken != "" && constantTimeEqual(string(tok), s.cfg.AdminToken) {
		found = s.sec.admin
	}
	for token, tc := range s.sec.callers {
		if found == nil && constantTimeEqual(string(tok), token) {
			found = tc
		}
	}
	if found == nil {
		return failed("unknown token")
	}
	ctx.SetUserValue(callerKey{}, found)
	return *found, 0, "", 0
}

// authFailedFrom counts a 401 for addr and locks the address out after
// http.auth_failures of them. The token is never logged.
func (s *Server) authFailedFrom(addr string) {
	s.sec.authFailed.WithLabelValues("unauthorized").Inc()
	if lock, n := s.sec.failed(addr, time.Now()); lock > 0 {
		s.sec.lockouts.Inc()
		s.log.Warn("HTTP authentication failures: address locked out", "addr", addr, "failures", n, "lock", lock.String())
	}
}

// authedPath reports whether a path's callers authenticate with a bearer
// token (before their body is read).
func (s *Server) authedPath(path string) bool {
	return strings.HasPrefix(path, "/v1/") && path != "/v1/openapi.yaml" || s.cfg.Pprof && strings.HasPrefix(path, "/debug/pprof")
}

// expect answers "Expect: 100-continue": a client that waits for it sends
// no body at all when its token is refused (the answer then has the
// status only; the connection closes).
func (s *Server) expect(ctx *fasthttp.RequestCtx) int {
	if !s.authedPath(string(ctx.Path())) {
		return fasthttp.StatusContinue
	}
	if _, status, _, _ := s.authHTTP(ctx); status != 0 {
		return status
	}
	return fasthttp.StatusContinue
}

// tenantFor picks the tenant a request acts on: a tenant token's own, or
// the admin's ?tenant= choice.
func (s *Server) tenantFor(ctx *fasthttp.RequestCtx, c caller) (*Tenant, bool) {
	if c.tenant != nil {
		if q := string(ctx.QueryArgs().Peek("tenant")); q != "" && q != c.tenant.ID {
			WriteError(ctx, 403, "forbidden", "tenant", "a tenant token acts on its own tenant only")
			return nil, false
		}
		return c.tenant, true
	}
	id := string(ctx.QueryArgs().Peek("tenant"))
	if id == "" && s.one != nil {
		return s.one, true
	}
	t := s.tenants[id]
	if t == nil {
		WriteError(ctx, 400, "invalid_request", "tenant", "unknown or missing tenant (admin requests name ?tenant=)")
		return nil, false
	}
	return t, true
}

// refuseWhileUnhealthy answers 503 to a request that would write while a
// store is unhealthy, and reports whether it did.
func (s *Server) refuseWhileUnhealthy(ctx *fasthttp.RequestCtx, method, path string) bool {
	if s.cfg.Core.StoresOK() || method == "GET" || method == "HEAD" ||
		!(strings.HasPrefix(path, "/v1/") || strings.HasPrefix(path, "/webhooks/")) {
		return false
	}
	ctx.Response.Header.Set("Retry-After", "30")
	WriteError(ctx, 503, status.ReasonStoreUnavailable.String(), "", "the store cannot take writes right now ("+s.cfg.Core.StoreProblem()+
		"); nothing was changed or sent, retry later")
	return true
}
