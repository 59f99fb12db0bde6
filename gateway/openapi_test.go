package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/optgate/optgate/api"
	httpapi "github.com/optgate/optgate/gateway/api"
	"github.com/optgate/optgate/smpp/smpptest"
)

// dispatcherRoutes are the routes the API's routing table
// (gateway/api's Server.route) answers, in the document's path form: a
// route added there must be added here and to api/openapi.yaml.
var dispatcherRoutes = []string{
	"GET /healthz",
	"GET /readyz",
	"GET /metrics",
	"GET /webhooks/whatsapp",
	"POST /webhooks/whatsapp",
	"GET /debug/pprof/{profile}",
	"GET /v1/admin/deadletter",
	"POST /v1/admin/backup",
	"POST /v1/messages",
	"POST /v1/simulator/mo",
	"GET /v1/messages/{id}",
	"POST /v1/consent/import",
	"GET /v1/consent/export",
	"GET /v1/consent/{recipient}",
	"GET /v1/consent/{recipient}/history",
	"POST /v1/consent/{recipient}/opt-out",
	"POST /v1/consent/{recipient}/opt-in",
	"GET /v1/openapi.yaml",
}

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("loading api/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("api/openapi.yaml is not valid OpenAPI: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi: %s", doc.OpenAPI)
	}
	return doc
}

// The document lists exactly the dispatcher's routes, each answered by
// its route (not the dispatcher's 404 or 405), and it is served without
// a token.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	slices.Sort(documented)
	want := slices.Clone(dispatcherRoutes)
	slices.Sort(want)
	if !slices.Equal(documented, want) {
		t.Fatalf("documented routes:\n%s\ndispatcher routes:\n%s", strings.Join(documented, "\n"), strings.Join(want, "\n"))
	}

	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := strings.Replace(configYAML(dir, smsc.Addr(), "", ""), `http: {listen: "127.0.0.1:0", `, `http: {listen: "127.0.0.1:0", pprof: true, `, 1)
	env := startEnv(t, y, smsc, dir)
	concrete := strings.NewReplacer("{id}", "1", "{recipient}", handset, "{profile}", "heap")
	bodies := map[string]string{
		"POST /v1/messages":                    `{"to":"` + handset + `","text":"hi"}`,
		"POST /v1/admin/backup":                `{"parent":"x"}`,
		"POST /v1/simulator/mo":                `{}`,
		"POST /v1/consent/import":              "",
		"POST /v1/consent/{recipient}/opt-in":  `{"source":"test","proof_ref":"p"}`,
		"POST /v1/consent/{recipient}/opt-out": ``,
		"POST /webhooks/whatsapp":              `{}`,
	}
	for _, route := range dispatcherRoutes {
		method, path, _ := strings.Cut(route, " ")
		r := env.do(method, concrete.Replace(path), adminTok, bodies[route])
		if strings.Contains(r.body, "no such endpoint") || r.status == 405 {
			t.Errorf("%s: answered by the dispatcher: %d %s", route, r.status, r.body)
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Errorf("%s: no X-Request-Id", route)
		}
		if strings.HasPrefix(path, "/v1/") && path != "/v1/openapi.yaml" &&
			!strings.Contains(httpapi.AllowedMethods(concrete.Replace(path)), method) {
			t.Errorf("%s: AllowedMethods says %q", route, httpapi.AllowedMethods(concrete.Replace(path)))
		}
	}
	r := env.do("GET", "/v1/openapi.yaml", "", "")
	if r.status != 200 || r.body != string(api.OpenAPI) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("GET /v1/openapi.yaml without a token: %d %s", r.status, r.header.Get("Content-Type"))
	}
}

// The answers of the main routes validate against the document (status,
// headers, body), and so do the requests that made them.
func TestOpenAPIAnswersValidate(t *testing.T) {
	doc := loadOpenAPI(t)
	env := newEnv(t)
	doc.Servers = openapi3.Servers{{URL: "http://" + env.g.HTTPAddr()}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	check := func(method, path, token, body string, wantStatus int, hdr ...string) apiResp {
		t.Helper()
		r := env.do(method, path, token, body, hdr...)
		if r.status != wantStatus {
			t.Fatalf("%s %s: %d %s, want %d", method, path, r.status, r.body, wantStatus)
		}
		req, _ := http.NewRequest(method, "http://"+env.g.HTTPAddr()+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatalf("%s %s: not in the document: %v", method, path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if wantStatus < 400 || wantStatus == 403 {
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Fatalf("%s %s: the request does not validate: %v", method, path, err)
			}
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.status, Header: r.header,
			Body: io.NopCloser(bytes.NewReader([]byte(r.body))), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Fatalf("%s %s: the answer %d %s does not validate: %v", method, path, r.status, r.body, err)
		}
		return r
	}
	// The validator itself: answers that break the document fail.
	notValid := func(method, path string, status int, header http.Header, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+env.g.HTTPAddr()+path, nil)
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatal(err)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req,
			PathParams: params, Route: route}, Status: status, Header: header, Body: io.NopCloser(strings.NewReader(body)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if openapi3filter.ValidateResponse(context.Background(), out) == nil {
			t.Fatalf("a %d %s to %s %s validates", status, body, method, path)
		}
	}
	jsonHdr := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r1"}}
	notValid("POST", "/v1/messages", 202, jsonHdr, `{"id":"1"}`)
	notValid("POST", "/v1/messages", 418, jsonHdr, `{}`)
	notValid("GET", "/v1/messages/1", 401, jsonHdr, `{"error":{"code":"unauthorized","message":"no"}}`) // no WWW-Authenticate
	notValid("GET", "/v1/messages/1", 404, jsonHdr, `{"error":{"code":"no_such_code","message":"no"}}`)
	notValid("GET", "/v1/messages/1", 404, http.Header{"Content-Type": {"application/json"}}, `{"error":{"code":"not_found","message":"no"}}`)

	const to = "+15145550161"
	sent := check("POST", "/v1/messages", acmeToken, `{"to":"`+to+`","text":"Your interview is at 10:00"}`, 202,
		"Idempotency-Key", "doc-1")
	check("POST", "/v1/messages", acmeToken, `{"to":"`+to+`","text":"Your interview is at 10:00"}`, 202, "Idempotency-Key", "doc-1")
	check("POST", "/v1/messages", acmeToken, `{"to":"`+to+`","text":"other"}`, 422, "Idempotency-Key", "doc-1")
	check("POST", "/v1/messages", acmeToken, `{"text":"no recipient"}`, 400)
	id := strings.Split(strings.Split(sent.body, `"id":"`)[1], `"`)[0]
	check("GET", "/v1/messages/"+id, acmeToken, "", 200)
	check("GET", "/v1/messages/ffff", acmeToken, "", 404)
	check("GET", "/v1/consent/"+to, acmeToken, "", 200)
	check("POST", "/v1/consent/"+to+"/opt-out", acmeToken, `{"note":"asked by phone"}`, 200)
	check("POST", "/v1/messages", acmeToken, `{"to":"`+to+`","text":"blocked"}`, 403)
	check("POST", "/v1/consent/"+to+"/opt-in", acmeToken, `{"source":"web form","proof_ref":"form-77"}`, 200)
	check("POST", "/v1/consent/"+to+"/opt-out", acmeToken, ``, 200)
	h := check("GET", "/v1/consent/"+to+"/history?limit=1", acmeToken, "", 200)
	if !strings.Contains(h.body, "next_cursor") {
		t.Fatalf("history of several entries with limit=1 has no next_cursor: %s", h.body)
	}
	check("GET", "/v1/consent/"+to+"/history?since=yesterday", acmeToken, "", 400)
	check("GET", "/v1/consent/export?limit=1", acmeToken, "", 200)
	check("GET", "/v1/messages/"+id, "wrong-token-123456", "", 401)
	check("GET", "/healthz", "", "", 200)
}
