package api

import (
	"net/http/pprof"
	"strings"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	apidoc "github.com/optgate/optgate/api"
)

// access is what a route asks of its caller, checked by serve before the
// handler runs.
type access uint8

const (
	accessPublic access = iota // no token (or a signature the handler checks)
	accessCaller               // any good token
	accessAdmin                // the admin token (403 for a tenant's)
	accessTenant               // any good token, and the tenant it acts on resolved
)

// route is an endpoint: its access and its handler.
type route struct {
	access access
	handle func(s *Server, ctx *fasthttp.RequestCtx, rq request)
}

// Handlers that do not need the server's state.
var (
	pprofIndex   = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index)
	pprofProfile = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Profile)
)

// route is the API's routing table: the route answering method on path
// and the rest of the path after the route's prefix (a zero route: none,
// 404 or 405). allowedMethods must agree with it, and so must
// api/openapi.yaml (TestOpenAPIDocumentsEveryRoute).
func (s *Server) route(method, path string) (route, string) {
	switch {
	case path == "/healthz":
		return route{accessPublic, healthz}, ""
	case path == "/readyz":
		return route{accessPublic, (*Server).readyz}, ""
	case path == "/metrics" && s.cfg.Handlers.Metrics != nil:
		return route{accessPublic, func(s *Server, ctx *fasthttp.RequestCtx, _ request) { s.cfg.Handlers.Metrics(ctx) }}, ""
	case strings.HasPrefix(path, "/webhooks/whatsapp") && s.cfg.Handlers.WhatsApp != nil:
		return route{accessPublic, func(s *Server, ctx *fasthttp.RequestCtx, _ request) { s.cfg.Handlers.WhatsApp(ctx) }}, ""
	case strings.HasPrefix(path, "/debug/pprof") && s.cfg.Pprof:
		return route{accessAdmin, servePprof}, path
	case path == "/v1/admin/deadletter" && method == "GET":
		return route{accessAdmin, (*Server).deadLetters}, ""
	case path == "/v1/admin/backup" && method == "POST":
		return route{accessAdmin, (*Server).backup}, ""
	case path == "/v1/messages" && method == "POST":
		return route{accessTenant, (*Server).send}, ""
	case path == "/v1/simulator/mo" && method == "POST":
		return route{accessCaller, (*Server).simulatorMO}, ""
	case strings.HasPrefix(path, "/v1/messages/") && method == "GET":
		return route{accessCaller, (*Server).message}, path[len("/v1/messages/"):]
	case path == "/v1/consent/import" && method == "POST":
		return route{accessTenant, (*Server).consentImport}, ""
	case path == "/v1/consent/export" && method == "GET":
		return route{accessTenant, (*Server).consentExport}, ""
	case strings.HasPrefix(path, "/v1/consent/"):
		return s.consentRoute(method, path[len("/v1/consent/"):])
	case path == "/v1/openapi.yaml" && method == "GET":
		return route{accessPublic, openapiDoc}, ""
	}
	return route{}, ""
}

// consentRoute routes /v1/consent/{recipient}[/history|/opt-out|/opt-in];
// rest is the path after /v1/consent/. A method or action it does not
// know is still resolved for its tenant before its 404 or 405, as it
// always was.
func (s *Server) consentRoute(method, rest string) (route, string) {
	_, action, _ := strings.Cut(rest, "/")
	switch {
	case action == "" && method == "GET":
		return route{accessTenant, (*Server).consentStatus}, rest
	case action == "history" && method == "GET":
		return route{accessTenant, (*Server).consentHistory}, rest
	case (action == "opt-out" || action == "opt-in") && method == "POST":
		return route{accessTenant, (*Server).consentChange}, rest
	}
	return route{accessTenant, func(_ *Server, ctx *fasthttp.RequestCtx, rq request) {
		notFound(ctx, string(ctx.Method()), "/v1/consent/"+rq.rest)
	}}, rest
}

func healthz(_ *Server, ctx *fasthttp.RequestCtx, _ request) {
	ctx.SetStatusCode(200)
	ctx.SetBodyString("ok\n")
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx, _ request) {
	if ok, why := s.cfg.Core.Ready(); !ok {
		WriteError(ctx, 503, "not_ready", "", why)
		return
	}
	ctx.SetStatusCode(200)
	ctx.SetBodyString("ready\n")
}

func openapiDoc(_ *Server, ctx *fasthttp.RequestCtx, _ request) {
	ctx.SetContentType("application/yaml")
	ctx.SetBody(apidoc.OpenAPI)
}

func servePprof(_ *Server, ctx *fasthttp.RequestCtx, rq request) {
	if rq.rest == "/debug/pprof/profile" {
		pprofProfile(ctx)
		return
	}
	pprofIndex(ctx)
}

// AllowedMethods returns the methods the API answers on path, "" for a
// path it does not know (so a wrong method is 405, an unknown path 404).
// It follows the routing table (Server.route).
func AllowedMethods(path string) string {
	switch path {
	case "/v1/messages", "/v1/admin/backup", "/v1/simulator/mo", "/v1/consent/import":
		return "POST"
	case "/v1/admin/deadletter", "/v1/consent/export", "/v1/openapi.yaml":
		return "GET"
	}
	if id, ok := strings.CutPrefix(path, "/v1/messages/"); ok && id != "" && !strings.Contains(id, "/") {
		return "GET"
	}
	if rest, ok := strings.CutPrefix(path, "/v1/consent/"); ok {
		rcpt, action, _ := strings.Cut(rest, "/")
		if rcpt == "" {
			return ""
		}
		switch action {
		case "", "history":
			return "GET"
		case "opt-out", "opt-in":
			return "POST"
		}
	}
	return ""
}

// notFound answers a request the dispatcher has no route for: 405 with
// Allow for a known path, else 404.
func notFound(ctx *fasthttp.RequestCtx, method, path string) {
	if allow := AllowedMethods(path); allow != "" {
		ctx.Response.Header.Set("Allow", allow)
		WriteError(ctx, 405, "method_not_allowed", "", method+" is not allowed on "+path+"; allowed: "+allow)
		return
	}
	WriteError(ctx, 404, "not_found", "", "no such endpoint: "+method+" "+path)
}
