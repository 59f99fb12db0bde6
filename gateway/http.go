package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/pprof"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/optgate/optgate/api"
	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
)

// apiError is the JSON error body.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	ID      string `json:"id,omitempty"`
}

func writeJSON(ctx *fasthttp.RequestCtx, code int, v any) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	b, err := json.Marshal(v)
	if err != nil {
		ctx.SetStatusCode(500)
		b = []byte(`{"error":{"code":"internal_error","message":"cannot encode response"}}`)
	}
	ctx.SetBody(b)
}

func writeErr(ctx *fasthttp.RequestCtx, code int, errCode, field, msg string) {
	writeJSON(ctx, code, apiError{Error: apiErrorBody{Code: errCode, Message: msg, Field: field}})
}

// caller is who made an API request.
type caller struct {
	admin  bool
	tenant *Tenant
}

// authAdmin is auth for the admin-only routes: it answers 401 (no or a
// wrong token) or 403 (a tenant's token) itself and reports whether the
// caller is the admin.
func (g *Gateway) authAdmin(ctx *fasthttp.RequestCtx) bool {
	c, ok := g.auth(ctx)
	if ok && !c.admin {
		writeErr(ctx, 403, "forbidden", "", "admin token required")
	}
	return ok && c.admin
}

// auth authenticates a request by its bearer token, once per request (the
// caller is kept as a user value), and answers the refusals: 429
// auth_locked to an address locked out after repeated failures, whatever
// its token, and 401 to a missing or unknown token (which counts towards
// the lock, see httpSec).
func (g *Gateway) auth(ctx *fasthttp.RequestCtx) (caller, bool) {
	c, status, msg, wait := g.authHTTP(ctx)
	switch status {
	case 0:
		return c, true
	case 429:
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		writeErr(ctx, 429, "auth_locked", "", msg)
	default:
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="optgate"`)
		writeErr(ctx, 401, "unauthorized", "", msg)
	}
	return caller{}, false
}

// authHTTP checks a request's bearer token without answering: status
// 0 and the caller (kept as a user value) when it is good, else 401 or 429
// with a message and, for 429, how long the address stays locked.
func (g *Gateway) authHTTP(ctx *fasthttp.RequestCtx) (c caller, status int, msg string, wait time.Duration) {
	if c, ok := ctx.UserValue(callerKey{}).(*caller); ok {
		return *c, 0, "", 0
	}
	addr := "" // computed only when needed: most requests are from addresses with no failures
	if g.sec.anyTracked() {
		addr = g.clientAddr(ctx)
		if wait := g.sec.lockedFor(addr, time.Now()); wait > 0 {
			g.sec.authFailed.WithLabelValues("locked").Inc()
			return caller{}, 429, "too many failed authentications from this address; retry later", wait
		}
	}
	failed := func(msg string) (caller, int, string, time.Duration) {
		if addr == "" {
			addr = g.clientAddr(ctx)
		}
		g.authFailedFrom(addr)
		return caller{}, 401, msg, 0
	}
	h := ctx.Request.Header.Peek("Authorization")
	tok, ok := bytes.CutPrefix(h, []byte("Bearer "))
	if !ok || len(tok) == 0 {
		return failed("missing bearer token")
	}
	var found *caller
	if g.cfg.HTTP.AdminToken != "" && constantTimeEqual(string(tok), g.cfg.HTTP.AdminToken) {
		found = g.sec.admin
	}
	for token, tc := range g.sec.callers {
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

// authedPath reports whether a path's callers authenticate with a bearer
// token (before their body is read).
func (g *Gateway) authedPath(path string) bool {
	return strings.HasPrefix(path, "/v1/") && path != "/v1/openapi.yaml" || g.cfg.HTTP.Pprof && strings.HasPrefix(path, "/debug/pprof")
}

// expect answers "Expect: 100-continue": a client that waits for it sends
// no body at all when its token is refused (the answer then has the
// status only; the connection closes).
func (g *Gateway) expect(ctx *fasthttp.RequestCtx) int {
	if !g.authedPath(string(ctx.Path())) {
		return fasthttp.StatusContinue
	}
	if _, status, _, _ := g.authHTTP(ctx); status != 0 {
		return status
	}
	return fasthttp.StatusContinue
}

// tenantFor picks the tenant a request acts on: a tenant token's own, or
// the admin's ?tenant= choice.
func (g *Gateway) tenantFor(ctx *fasthttp.RequestCtx, c caller) (*Tenant, bool) {
	if c.tenant != nil {
		if q := string(ctx.QueryArgs().Peek("tenant")); q != "" && q != c.tenant.ID {
			writeErr(ctx, 403, "forbidden", "tenant", "a tenant token acts on its own tenant only")
			return nil, false
		}
		return c.tenant, true
	}
	id := string(ctx.QueryArgs().Peek("tenant"))
	if id == "" && len(g.tenants) == 1 {
		for _, t := range g.tenants {
			return t, true
		}
	}
	t := g.tenants[id]
	if t == nil {
		writeErr(ctx, 400, "invalid_request", "tenant", "unknown or missing tenant (admin requests name ?tenant=)")
		return nil, false
	}
	return t, true
}

func (g *Gateway) newHTTPServer() *fasthttp.Server {
	var pprofH fasthttp.RequestHandler
	if g.cfg.HTTP.Pprof {
		pprofH = fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Index)
	}
	metricsH := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(g.gatherer, promhttp.HandlerOpts{}))
	h := func(ctx *fasthttp.RequestCtx) {
		defer func() {
			if v := recover(); v != nil {
				g.metrics.panics.Inc()
				g.log.Error("panic in HTTP handler", "path", string(ctx.Path()), "panic", fmt.Sprint(v), "request_id", requestID(ctx))
				writeErr(ctx, 500, "internal_error", "", "internal error")
			}
		}()
		setRequestID(ctx)
		path := string(ctx.Path())
		method := string(ctx.Method())
		// The API's callers authenticate before their body is read: at
		// most fasthttp's 8 KiB pre-read of it is in memory until then
		// (webhooks are authenticated by a signature over the body).
		if g.authedPath(path) {
			if _, ok := g.auth(ctx); !ok {
				ctx.SetConnectionClose() // the rest of the body is unread
				return
			}
		}
		// Bodies are streamed (StreamRequestBody) so that an import can be
		// larger than memory; every other route gets its body read here,
		// up to max_body_bytes, as if it had not been streamed.
		if path != "/v1/consent/import" && !g.readBody(ctx) {
			return
		}
		if g.refuseHTTPWhileUnhealthy(ctx, method, path) {
			return
		}
		switch {
		case path == "/healthz":
			ctx.SetStatusCode(200)
			ctx.SetBodyString("ok\n")
		case path == "/readyz":
			g.readyz(ctx)
		case path == "/metrics" && g.cfg.Metrics.Listen == "": // else on the metrics listener only
			metricsH(ctx)
		case strings.HasPrefix(path, "/webhooks/whatsapp"):
			g.waWebhook(ctx)
		case strings.HasPrefix(path, "/debug/pprof") && pprofH != nil:
			if g.authAdmin(ctx) {
				switch path {
				case "/debug/pprof/profile":
					fasthttpadaptor.NewFastHTTPHandlerFunc(pprof.Profile)(ctx)
				default:
					pprofH(ctx)
				}
			}
		case path == "/v1/admin/deadletter" && method == "GET":
			g.apiDeadLetters(ctx)
		case path == "/v1/admin/backup" && method == "POST":
			g.apiBackup(ctx)
		case path == "/v1/messages" && method == "POST":
			g.apiSend(ctx)
		case path == "/v1/simulator/mo" && method == "POST":
			// A fake handset MO is for trying the loop on this machine:
			// refused unless the simulator runs and the API is on loopback.
			if g.sim == nil || !g.listenerLoopback() {
				writeErr(ctx, 404, "not_found", "", "POST /v1/simulator/mo exists only with simulator.enabled and a loopback http.listen")
				return
			}
			g.apiSimulatorMO(ctx)
		case strings.HasPrefix(path, "/v1/messages/") && method == "GET":
			g.apiMessage(ctx, strings.TrimPrefix(path, "/v1/messages/"))
		case path == "/v1/consent/import" && method == "POST":
			g.apiImport(ctx)
		case path == "/v1/consent/export" && method == "GET":
			g.apiExport(ctx)
		case strings.HasPrefix(path, "/v1/consent/"):
			g.apiConsent(ctx, method, strings.TrimPrefix(path, "/v1/consent/"))
		case path == "/v1/openapi.yaml" && method == "GET":
			ctx.SetContentType("application/yaml")
			ctx.SetBody(api.OpenAPI)
		default:
			notFound(ctx, method, path)
		}
	}
	return &fasthttp.Server{
		Handler:            h,
		Name:               "optgate",
		MaxRequestBodySize: g.cfg.HTTP.MaxBodyBytes,
		// ReadTimeout runs from the connection's accept to its first
		// request's headers and body (so a half-open connection is closed
		// after it), and from the first byte of each later request.
		ReadTimeout:   g.cfg.HTTP.ReadTimeout,
		WriteTimeout:  5 * time.Minute, // exports stream
		IdleTimeout:   2 * time.Minute,
		Concurrency:   g.cfg.HTTP.MaxConnections,
		MaxConnsPerIP: g.cfg.HTTP.MaxConnsPerIP,
		Logger:        fasthttpLogger{g},
		// fasthttp's errors would otherwise quote the request's headers,
		// bearer token included, into the log.
		SecureErrorLogMessage: true,
		// Bodies above MaxRequestBodySize reach the handler as a stream:
		// readBody bounds them (413 body_too_large) and the import route
		// streams its CSV into the store.
		StreamRequestBody:            true,
		ExpectHandler:                g.expect,
		DisablePreParseMultipartForm: true,
		ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
			if errors.Is(err, fasthttp.ErrBodyTooLarge) {
				writeErr(ctx, 413, "body_too_large", "", fmt.Sprintf("request body over %d bytes", g.cfg.HTTP.MaxBodyBytes))
				return
			}
			writeErr(ctx, 400, "bad_request", "", "cannot parse the HTTP request")
		},
	}
}

// readBody reads a streamed request body of at most max_body_bytes into
// the request, so handlers use ctx.PostBody; past the limit it answers 413
// body_too_large, closes the connection (the rest is unread) and returns
// false.
func (g *Gateway) readBody(ctx *fasthttp.RequestCtx) bool {
	if !ctx.Request.IsBodyStream() {
		return true
	}
	limit := g.cfg.HTTP.MaxBodyBytes
	if cl := ctx.Request.Header.ContentLength(); cl > limit {
		g.tooLarge(ctx, int64(limit))
		return false
	}
	b, err := io.ReadAll(io.LimitReader(ctx.RequestBodyStream(), int64(limit)+1))
	if err != nil {
		ctx.SetConnectionClose()
		writeErr(ctx, 400, "bad_request", "", "cannot read the request body")
		return false
	}
	if len(b) > limit {
		g.tooLarge(ctx, int64(limit))
		return false
	}
	ctx.Request.SetBody(b)
	return true
}

// tooLargeDrain bounds what tooLarge reads of a refused body.
const tooLargeDrain = 16 << 20

func (g *Gateway) tooLarge(ctx *fasthttp.RequestCtx, limit int64) {
	// Read and discard a bounded part of the rest first: a client still
	// writing its body when the connection closes gets a reset instead of
	// this answer. Past the bound (or the read timeout) it closes anyway.
	if ctx.Request.IsBodyStream() {
		_, _ = io.CopyN(io.Discard, ctx.RequestBodyStream(), tooLargeDrain)
	}
	ctx.SetConnectionClose()
	writeErr(ctx, 413, "body_too_large", "", fmt.Sprintf("request body over %d bytes", limit))
}

// limitedBody reads at most n bytes of a body and then fails with
// errBodyTooLarge, noting it in over.
type limitedBody struct {
	r    io.Reader
	n    int64
	over bool
}

var errBodyTooLarge = errors.New("gateway: request body too large")

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// One byte more says whether the body goes on.
		var one [1]byte
		if k, _ := l.r.Read(one[:]); k > 0 {
			l.over = true
			return 0, errBodyTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}

type fasthttpLogger struct{ g *Gateway }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.g.log.Debug("fasthttp: " + fmt.Sprintf(format, args...))
}

func (g *Gateway) readyz(ctx *fasthttp.RequestCtx) {
	if !g.ready.Load() {
		writeErr(ctx, 503, "not_ready", "", "starting or stopping")
		return
	}
	if ok, why := g.linksReady(); !ok {
		writeErr(ctx, 503, "not_ready", "", why)
		return
	}
	if why := g.storeProblem(); why != "" {
		writeErr(ctx, 503, "not_ready", "", why)
		return
	}
	if err := g.storesAnswer(); err != nil {
		writeErr(ctx, 503, "not_ready", "", err.Error())
		return
	}
	ctx.SetStatusCode(200)
	ctx.SetBodyString("ready\n")
}

// sendRequest is the body of POST /v1/messages.
type sendRequest struct {
	To        string     `json:"to"`
	From      string     `json:"from"`
	Text      string     `json:"text"`
	Channel   string     `json:"channel"`  // sms | whatsapp | "" (choose)
	Category  string     `json:"category"` // transactional (default) | marketing
	Bulk      bool       `json:"bulk"`
	Receipt   *bool      `json:"receipt"` // ask for delivery receipts (default true when the tenant has a webhook)
	Template  *WAContent `json:"template"`
	Reference string     `json:"reference"`
	// Interactive is a WhatsApp reply-buttons message, instead of text or
	// template; free-form, so only inside the 24-hour window.
	Interactive *WAInteractive `json:"interactive"`
}

// WAInteractive is the "interactive" object of POST /v1/messages: a
// WhatsApp reply-buttons message (whatsapp.md §2).
type WAInteractive struct {
	Body    string          `json:"body"`    // 1 to 1024 characters
	Buttons []WAReplyButton `json:"buttons"` // 1 to 3
}

// WAReplyButton is one reply button; the id comes back in the tap's
// webhook.
type WAReplyButton struct {
	ID    string `json:"id"`    // 1 to 256 characters, unique in the message
	Title string `json:"title"` // 1 to 20 characters, unique in the message
}

// validateInteractive checks in against Meta's limits for reply buttons
// (whatsapp.md §2) and names the offending field, so that the caller gets
// a 400 for what Meta would refuse.
func validateInteractive(in *WAInteractive) (field, msg string) {
	switch n := utf8.RuneCountInString(in.Body); {
	case n == 0:
		return "interactive.body", "interactive.body is required"
	case n > 1024:
		return "interactive.body", fmt.Sprintf("interactive.body has %d characters, at most 1024 allowed", n)
	}
	if n := len(in.Buttons); n < 1 || n > 3 {
		return "interactive.buttons", fmt.Sprintf("interactive.buttons must hold 1 to 3 buttons, got %d", n)
	}
	ids := make(map[string]bool, len(in.Buttons))
	titles := make(map[string]bool, len(in.Buttons))
	for i, b := range in.Buttons {
		f := fmt.Sprintf("interactive.buttons[%d]", i)
		if b.ID == "" || len(b.ID) > 256 {
			return f + ".id", f + ".id must have 1 to 256 characters"
		}
		if ids[b.ID] {
			return f + ".id", fmt.Sprintf("%s.id %q is used by another button", f, b.ID)
		}
		ids[b.ID] = true
		if n := utf8.RuneCountInString(b.Title); n == 0 || n > 20 {
			return f + ".title", fmt.Sprintf("%s.title must have 1 to 20 characters, got %d", f, n)
		}
		if titles[b.Title] {
			return f + ".title", fmt.Sprintf("%s.title %q is used by another button", f, b.Title)
		}
		titles[b.Title] = true
	}
	return "", ""
}

func decodeStrict(body []byte, v any) (field string, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return ute.Field, fmt.Errorf("field %s: expected %s", ute.Field, ute.Type)
		}
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return f, fmt.Errorf("unknown field %q", f)
		}
		return "", fmt.Errorf("invalid JSON: %v", err)
	}
	if dec.More() {
		return "", errors.New("invalid JSON: trailing data")
	}
	return "", nil
}

// testHookExport, if set, runs as an export starts writing (tests).
var testHookExport atomic.Pointer[func()]

// sendWait is how long POST /v1/messages waits for the carrier's answer
// before it answers 202 with status "pending".
var sendWait = 60 * time.Second

func (g *Gateway) apiSend(ctx *fasthttp.RequestCtx) {
	c, ok := g.auth(ctx)
	if !ok {
		return
	}
	t, ok := g.tenantFor(ctx, c)
	if !ok {
		return
	}
	ik, ok := g.idemBegin(ctx, t)
	if !ok {
		return
	}
	if ik != nil {
		defer g.idemFinish(ctx, ik)
	}
	var req sendRequest
	if field, err := decodeStrict(ctx.PostBody(), &req); err != nil {
		writeErr(ctx, 400, "invalid_request", field, err.Error())
		return
	}
	if req.To == "" {
		writeErr(ctx, 400, "invalid_request", "to", "to is required")
		return
	}
	// The same reading as SMPP destinations (TON 0: national numbers in the
	// tenant's region must be valid there; ambiguous ones are refused).
	to, _, err := consent.NormalizeAddress(req.To, consent.TONUnknown, 0, t.cfg.DefaultRegion)
	if err != nil {
		writeErr(ctx, 400, "invalid_number", "to", fmt.Sprintf("not a valid phone number: %v", err))
		return
	}
	explicit := req.Channel
	if in := req.Interactive; in != nil {
		if req.Text != "" || req.Template != nil {
			writeErr(ctx, 400, "invalid_request", "interactive", "interactive cannot be combined with text or template")
			return
		}
		if explicit == ChannelSMS {
			writeErr(ctx, 400, "invalid_request", "interactive", "interactive messages exist on channel whatsapp only")
			return
		}
		if field, msg := validateInteractive(in); field != "" {
			writeErr(ctx, 400, "invalid_request", field, msg)
			return
		}
		// Reply buttons exist on WhatsApp only: no channel means WhatsApp.
		explicit = ChannelWhatsApp
	} else if req.Text == "" && req.Template == nil {
		writeErr(ctx, 400, "invalid_request", "text", "text (or template, or interactive) is required")
		return
	}
	cat := consent.CategoryTransactional
	switch req.Category {
	case "", "transactional", "utility", "authentication":
	case "marketing":
		cat = consent.CategoryMarketing
	default:
		writeErr(ctx, 400, "invalid_request", "category", "category must be transactional or marketing")
		return
	}
	channel, err := g.chooseChannel(t, explicit, to)
	if err != nil {
		writeErr(ctx, 400, "invalid_request", "channel", err.Error())
		return
	}
	if req.Interactive != nil && channel != ChannelWhatsApp {
		writeErr(ctx, 400, "invalid_request", "interactive", "interactive messages exist on channel whatsapp only")
		return
	}
	from := req.From
	if from == "" {
		from = g.defaultSender(t, channel)
	}
	if from == "" {
		writeErr(ctx, 400, "invalid_request", "from", "from is required (the tenant has no default number)")
		return
	}
	if channel == ChannelSMS {
		f, err := g.senderFor(t, from, httpSenderTON(from), 0)
		switch {
		case errors.Is(err, ErrSenderNotOwned):
			writeErr(ctx, 403, "sender_not_allowed", "from", err.Error())
			return
		case err != nil:
			writeErr(ctx, 400, "invalid_sender", "from", err.Error())
			return
		}
		from = f
	}
	m := &Message{ID: g.ids.next(), Tenant: t, Origin: OriginHTTP, Channel: channel, From: from, To: to, Text: req.Text,
		Category: cat, Bulk: req.Bulk, Received: time.Now(), WA: req.Template, Template: req.Template != nil}
	if req.Interactive != nil {
		m.WA = &WAContent{Interactive: req.Interactive}
	}
	if ik != nil {
		if err := g.idemReserve(ik, m.ID); err != nil {
			g.log.Error("idempotency key not stored", "err", err, "request_id", requestID(ctx))
			writeErr(ctx, 503, "store_unavailable", "", "the Idempotency-Key could not be stored; nothing was sent")
			return
		}
	}
	if req.Receipt == nil && t.cfg.Webhook.URL != "" || req.Receipt != nil && *req.Receipt {
		m.RegisteredDelivery = 1
	}
	res := make(chan Outcome, 1)
	m.done = func(m *Message, o Outcome) { g.record(m, o); res <- o }
	g.mt.Handle(context.Background(), m)
	var o Outcome
	select {
	case o = <-res:
	case <-time.After(sendWait):
		// The send goes on (a submit written to the SMSC cannot be called
		// back), so the honest answer is "accepted, outcome pending" with
		// the id to ask GET /v1/messages/{id} about, not an error the
		// platform would retry into a duplicate. Stamped like record's, so
		// the real outcome replaces it.
		g.statuses.Put(MessageStatus{ID: m.ID, Tenant: t.ID, Channel: channel, To: to, State: status.StatePending, Updated: m.Received})
		writeJSON(ctx, 202, map[string]any{"id": m.ID, "status": "pending", "channel": channel, "to": to,
			"message": "the carrier has not answered yet; GET /v1/messages/" + m.ID + " tells the outcome"})
		return
	}
	body := map[string]any{"id": m.ID, "status": o.Kind.String(), "channel": channel, "to": to}
	if o.Parts > 1 {
		body["parts"] = o.Parts
	}
	switch o.Kind {
	case Accepted, Queued:
		writeJSON(ctx, 202, body)
	case Held:
		body["reason"] = "attestation_pending"
		writeJSON(ctx, 202, body)
	case Blocked:
		code := APICode(o.Reason)
		writeJSON(ctx, 403, apiError{Error: apiErrorBody{Code: code, ID: m.ID, Message: blockMessage(code)}})
	case Rejected:
		field := "text"
		switch o.Reason {
		case ReasonInvalidNumber, ReasonNoRoute:
			field = "to"
		case ReasonInvalidSender:
			field = "from"
		case ReasonInvalidTemplate:
			if req.Interactive != nil {
				field = "interactive"
			}
		}
		writeErr(ctx, 400, o.Reason.String(), field, errString(o.Err))
	default:
		writeJSON(ctx, 502, apiError{Error: apiErrorBody{Code: "carrier_error", ID: m.ID, Message: errString(o.Err)}})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func blockMessage(code string) string {
	switch code {
	case "recipient_opted_out":
		return "The recipient opted out (replied STOP or was opted out by an operator); nothing was sent."
	case "marketing_opt_out":
		return "The recipient opted out of marketing messages; send a transactional message or nothing."
	case "no_consent":
		return "The recipient has not given consent yet (attestation pending or required); nothing was sent."
	case ReasonWindowClosed.String():
		return "The WhatsApp 24-hour customer service window is closed; send an approved template."
	}
	return "blocked"
}

func (g *Gateway) apiMessage(ctx *fasthttp.RequestCtx, id string) {
	c, ok := g.auth(ctx)
	if !ok {
		return
	}
	st, found := g.statuses.Get(id)
	if !found || (!c.admin && st.Tenant != c.tenant.ID) {
		writeErr(ctx, 404, "not_found", "id", "no such message (or no longer remembered)")
		return
	}
	writeJSON(ctx, 200, st)
}

// apiConsent serves /v1/consent/{recipient}[/history|/opt-out|/opt-in].
func (g *Gateway) apiConsent(ctx *fasthttp.RequestCtx, method, rest string) {
	c, ok := g.auth(ctx)
	if !ok {
		return
	}
	t, ok := g.tenantFor(ctx, c)
	if !ok {
		return
	}
	rcpt, action, _ := strings.Cut(rest, "/")
	channel := string(ctx.QueryArgs().Peek("channel"))
	if channel == "" {
		channel = ChannelSMS
	}
	operator := "api"
	if c.admin {
		operator = "admin"
	}
	switch {
	case action == "" && method == "GET":
		st, err := g.consent.Get(t.ID, channel, rcpt)
		if err != nil {
			g.consentErr(ctx, err)
			return
		}
		writeJSON(ctx, 200, statusJSON(st, channel))
	case action == "history" && method == "GET":
		g.apiHistory(ctx, t, channel, rcpt)
	case (action == "opt-out" || action == "opt-in") && method == "POST":
		var body struct {
			Sender    string `json:"sender"`
			Operator  string `json:"operator"`
			Source    string `json:"source"`
			ProofRef  string `json:"proof_ref"`
			Note      string `json:"note"`
			Marketing bool   `json:"marketing"`
			Channel   string `json:"channel"`
		}
		if len(ctx.PostBody()) > 0 {
			if field, err := decodeStrict(ctx.PostBody(), &body); err != nil {
				writeErr(ctx, 400, "invalid_request", field, err.Error())
				return
			}
		}
		if body.Channel != "" {
			channel = body.Channel
		}
		if body.Sender != "" {
			// The confirmation goes out from the sender: it must be the
			// tenant's own.
			n, code, msg := g.ownSender(t, channel, body.Sender)
			if code != "" {
				status := 403
				if code == "invalid_sender" {
					status = 422
				}
				writeErr(ctx, status, code, "sender", msg)
				return
			}
			body.Sender = n
		}
		if body.Operator == "" {
			body.Operator = operator
		}
		oc := consent.OperatorChange{Tenant: t.ID, Channel: channel, Recipient: rcpt, Sender: body.Sender, Operator: body.Operator,
			Source: body.Source, ProofRef: body.ProofRef, Note: body.Note, Marketing: body.Marketing, API: !c.admin}
		var res consent.Result
		var err error
		if action == "opt-out" {
			res, err = g.consent.OptOut(context.Background(), oc)
		} else {
			res, err = g.consent.OptIn(context.Background(), oc)
		}
		if err != nil {
			g.consentErr(ctx, err)
			return
		}
		for _, rep := range res.Replies {
			g.sendReply(t, rep)
		}
		for _, ev := range res.Events {
			_ = g.emit(t, ev.Type, map[string]any{"channel": ev.Channel, "recipient": ev.Recipient, "sender": ev.Sender, "event_id": ev.ID})
		}
		writeJSON(ctx, 200, map[string]any{"recipient": res.Recipient, "channel": channel, "old": res.Old.String(),
			"new": res.New.String(), "changed": res.Changed, "stored": true})
	default:
		notFound(ctx, method, "/v1/consent/"+rest)
	}
}

func statusJSON(st consent.Status, channel string) map[string]any {
	rec := func(r consent.Record) map[string]any {
		m := map[string]any{"state": r.State.String(), "opted_out": r.OptedOut, "marketing_opt_out": r.Marketing || r.MarketingWA}
		if !r.Updated.IsZero() {
			m["updated"] = r.Updated
		}
		if r.OptedOutAll {
			m["opted_out_all"] = true
		}
		return m
	}
	senders := map[string]any{}
	for s, r := range st.Senders {
		senders[s] = rec(r)
	}
	return map[string]any{"recipient": st.Recipient, "channel": channel, "tenant_wide": rec(st.Tenant), "senders": senders}
}

func (g *Gateway) consentErr(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, consent.ErrInvalidNumber):
		writeErr(ctx, 400, "invalid_number", "recipient", err.Error())
	case errors.Is(err, consent.ErrEvidenceRequired):
		writeErr(ctx, 400, "evidence_required", "proof_ref", err.Error())
	case errors.Is(err, consent.ErrUnknownChannel):
		writeErr(ctx, 400, "invalid_request", "channel", err.Error())
	case errors.Is(err, consent.ErrInvalidInput), errors.Is(err, consent.ErrInvalidSender):
		writeErr(ctx, 400, "invalid_request", "", err.Error())
	case errors.Is(err, consent.ErrUnknownTenant):
		writeErr(ctx, 404, "not_found", "tenant", err.Error())
	default:
		g.log.Error("consent store error", "err", err, "request_id", requestID(ctx))
		writeErr(ctx, 503, "store_unavailable", "", "the consent store could not complete the request; nothing was changed")
	}
}

func (g *Gateway) apiImport(ctx *fasthttp.RequestCtx) {
	c, ok := g.auth(ctx)
	if !ok {
		return
	}
	t, ok := g.tenantFor(ctx, c)
	if !ok {
		return
	}
	q := ctx.QueryArgs()
	opt := consent.ImportOptions{Tenant: t.ID, Source: string(q.Peek("source")), ProofRef: string(q.Peek("proof_ref")),
		Operator: string(q.Peek("operator"))}
	if opt.Operator == "" {
		opt.Operator = "api"
		if c.admin {
			opt.Operator = "admin"
		}
	}
	opt.Strict = string(q.Peek("strict")) == "true"
	if !g.sec.startImport(t.ID) {
		g.sec.busy.Inc()
		ctx.SetConnectionClose() // the body is unread
		ctx.Response.Header.Set("Retry-After", "10")
		writeErr(ctx, 429, "import_busy", "", fmt.Sprintf("too many imports running (at most %d per tenant, %d in all); retry later",
			g.cfg.HTTP.MaxImportsPerTenant, g.cfg.HTTP.MaxImports))
		return
	}
	defer g.sec.endImport(t.ID)
	// The CSV is streamed into the store (millions of rows need not fit
	// in memory), up to max_import_bytes, with time to read it all.
	limit := g.cfg.HTTP.MaxImportBytes
	if cl := ctx.Request.Header.ContentLength(); cl > 0 && int64(cl) > limit {
		g.tooLarge(ctx, limit)
		return
	}
	// PostBody would read a streamed body whole into memory: only the
	// stream is read.
	var src io.Reader
	if ctx.Request.IsBodyStream() {
		src = ctx.RequestBodyStream()
		if c := ctx.Conn(); c != nil {
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Minute))
		}
	} else {
		src = bytes.NewReader(ctx.PostBody())
	}
	body := &limitedBody{r: src, n: limit}
	rep, err := g.consent.Import(context.Background(), body, opt)
	if body.over {
		// Rows before the limit may be applied (an import is idempotent:
		// sending the file again in parts is safe).
		g.tooLarge(ctx, limit)
		return
	}
	if err != nil {
		var lerr *consent.LineTooLongError
		switch {
		case errors.As(err, &lerr):
			// Rows before the line may be applied, as past max_import_bytes.
			ctx.SetConnectionClose() // the rest of the body is unread
			writeJSON(ctx, 400, map[string]any{"error": apiErrorBody{Code: "line_too_long", Field: "body", Message: lerr.Error()},
				"line": lerr.Line, "report": importJSON(rep)})
		case errors.Is(err, consent.ErrEvidenceRequired), errors.Is(err, consent.ErrInvalidInput):
			writeErr(ctx, 400, "invalid_request", "source", err.Error())
		case errors.Is(err, consent.ErrImportRejected):
			writeJSON(ctx, 422, map[string]any{"error": apiErrorBody{Code: "invalid_rows", Message: err.Error()}, "report": importJSON(rep)})
		default:
			g.consentErr(ctx, err)
		}
		return
	}
	writeJSON(ctx, 200, importJSON(rep))
}

func (g *Gateway) apiExport(ctx *fasthttp.RequestCtx) {
	c, ok := g.auth(ctx)
	if !ok {
		return
	}
	t, ok := g.tenantFor(ctx, c)
	if !ok {
		return
	}
	evidence := string(ctx.QueryArgs().Peek("what")) == "evidence"
	q, ok := parsePage(ctx, exportPageMax)
	if !ok {
		return
	}
	opt := consent.ExportOptions{Tenant: t.ID, Channel: string(ctx.QueryArgs().Peek("channel")), Since: q.since, Until: q.until,
		Limit: q.limit, Cursor: q.cursor}
	if opt.Channel != "" && opt.Channel != ChannelSMS && opt.Channel != ChannelWhatsApp {
		writeErr(ctx, 400, "invalid_request", "channel", "channel must be sms or whatsapp")
		return
	}
	if q.limit > 0 || q.cursor != nil {
		if opt.Limit == 0 {
			opt.Limit = exportPageMax
		}
		g.exportPage(ctx, opt, evidence)
		return
	}
	rid := requestID(ctx) // the writer runs after the handler: ctx is not to be used there
	ctx.SetContentType("text/csv; charset=utf-8")
	ctx.SetStatusCode(200)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		// The writer runs after the handler returned, outside its recover:
		// a panic ends the export with the failure line, not the process.
		defer func() {
			if v := recover(); v != nil {
				g.metrics.panics.Inc()
				g.log.Error("panic in export", "tenant", t.ID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()), "request_id", rid)
				io.WriteString(w, "\n# export failed: see server log\n")
			}
		}()
		if h := testHookExport.Load(); h != nil {
			(*h)()
		}
		var err error
		if evidence {
			_, err = g.consent.ExportEvidence(context.Background(), w, opt)
		} else {
			_, err = g.consent.Export(context.Background(), w, opt)
		}
		if err != nil {
			g.log.Error("export failed", "tenant", t.ID, "err", err, "request_id", rid)
			io.WriteString(w, "\n# export failed: see server log\n")
		}
	})
}

func importJSON(r consent.ImportReport) map[string]any {
	errs := make([]map[string]any, 0, len(r.Errors))
	for _, e := range r.Errors {
		errs = append(errs, map[string]any{"line": e.Line, "error": e.Err.Error()})
	}
	return map[string]any{"rows": r.Rows, "applied": r.Applied, "unchanged": r.Unchanged, "error_count": r.ErrorCount, "errors": errs}
}

// apiSimulatorMO makes the built-in SMSC simulator deliver a handset's
// message, as if a carrier had: {"from":"+1514…","to":"+1514…","text":"STOP"}.
// It exists only when simulator.enabled, for trying the loop by hand.
func (g *Gateway) apiSimulatorMO(ctx *fasthttp.RequestCtx) {
	c, ok := g.auth(ctx)
	if !ok {
		return
	}
	var req struct {
		From string `json:"from"`
		To   string `json:"to"`
		Text string `json:"text"`
	}
	if field, err := decodeStrict(ctx.PostBody(), &req); err != nil {
		writeErr(ctx, 400, "invalid_request", field, err.Error())
		return
	}
	if !consent.ValidE164(req.From) {
		writeErr(ctx, 400, "invalid_number", "from", "from must be an E.164 number")
		return
	}
	owner := g.byNumber[req.To]
	if owner == nil {
		writeErr(ctx, 400, "invalid_request", "to", "to must be one of the tenants' numbers")
		return
	}
	if !c.admin && owner != c.tenant {
		writeErr(ctx, 403, "forbidden", "to", "the number does not belong to this tenant")
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.sim.SendMO(cctx, g.cfg.Simulator.SystemID, req.From, req.To, req.Text); err != nil {
		writeErr(ctx, 502, "simulator_error", "", err.Error())
		return
	}
	writeJSON(ctx, 200, map[string]any{"delivered": true, "acknowledged": "ESME_ROK"})
}

// storesAnswer checks that the consent store and the gateway store are
// open and answer a read (for /readyz).
func (g *Gateway) storesAnswer() error {
	if g.db == nil || g.db.IsClosed() {
		return errors.New("gateway store closed")
	}
	if _, err := readKey(g.db, []byte("readyz/probe"), nil); err != nil {
		return fmt.Errorf("gateway store: %w", err)
	}
	if len(g.tenantList) == 0 {
		return nil
	}
	t := g.tenantList[0]
	const probe = "+15005550006"
	if _, err := g.consent.Check(t.ID, ChannelSMS, "optgate", probe, consent.CategoryTransactional); err != nil {
		return fmt.Errorf("consent store: %w", err)
	}
	if _, err := g.consent.History(t.ID, ChannelSMS, probe, 1); err != nil {
		return fmt.Errorf("consent store: %w", err)
	}
	return nil
}
