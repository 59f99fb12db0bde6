// Package whatsapptest is a local mock of the WhatsApp Cloud API (Graph) for tests and the
// bench: a fasthttp server on 127.0.0.1 that speaks whatsapp.md's wire formats, answers
// /v{N}.{M}/{phone-number-id}/messages with success bodies or scripted error envelopes, tracks
// customer service windows, records what it received, and drives webhooks (statuses, inbound
// messages, user_preferences) signed with X-Hub-Signature-256 to a configured URL.
//
// It does not import package whatsapp, so that package's own tests can use it.
package whatsapptest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Config configures a Server. Zero fields take the documented defaults.
type Config struct {
	// Token is the accepted bearer token (header or ?access_token=). Default "test-token".
	Token string
	// AppSecret signs the webhooks the server posts. Default "test_app_secret".
	AppSecret string
	// WebhookURL receives status and inbound webhooks; empty disables posting.
	WebhookURL string
	// Meta identifies the business in posted webhooks (the phone-number id of the send is used
	// when it differs).
	Meta Meta
	// AutoStatuses are posted, in order, for every accepted message, e.g.
	// {"sent", "delivered", "read"}. Empty posts none.
	AutoStatuses []string
	// EnforceWindow answers free-form messages to a recipient without an open window (see
	// OpenWindow and Inbound) with 131047.
	EnforceWindow bool
	// PhoneNumberIDs are the business numbers registered with the mock, besides
	// Meta.PhoneNumberID. A send from any other id gets Graph's answer for an object that does
	// not exist: HTTP 400, code 100, subcode 33, "Unsupported post request".
	PhoneNumberIDs []string
	// Templates are the approved template names. A template send naming another gets 132001
	// ("template name does not exist in the translation", HTTP 404). Nil approves every name.
	Templates []string
	// Addr is the listen address. Default "127.0.0.1:0" (a random port).
	Addr string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Failure scripts one answer of the messages endpoint.
type Failure struct {
	Code       int    // error.code, e.g. 130429, 131056, 131000, 190
	HTTPStatus int    // default 400 (500 for 131000/131016/133004, 401 for 0/190)
	Subcode    int    // error_subcode, optional
	Message    string // title; a default "(#code) ..." message is used when empty
	Recipient  string // applies only to this recipient ("to", with or without "+"); "" any
	// Delay holds the answer back, to provoke client timeouts. The connection is answered
	// after Delay or when the server closes.
	Delay time.Duration
	// Async accepts the message (200 with a wamid) and then posts a failed status with Code,
	// the way Meta reports 131047, 131049 and 131050.
	Async bool
	// RawStatus and RawBody, if set, are sent verbatim instead of an error envelope (e.g. a
	// 502 with an HTML body).
	RawStatus int
	RawBody   string
}

// Request is one request the server received on the messages endpoint.
type Request struct {
	Version       string
	PhoneNumberID string
	Authorization string
	Body          []byte
	To            string
	Type          string // text, template, interactive, or "" for mark-as-read
	TemplateName  string
	Status        int    // HTTP status answered
	Code          int    // error code answered, 0 on success
	WamID         string // id answered on success
}

// Server is the mock Graph API.
type Server struct {
	cfg   Config
	ln    net.Listener
	srv   *fasthttp.Server
	hc    *fasthttp.Client
	url   string
	hooks chan []byte   // bodies to post to WebhookURL
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup

	numbers   map[string]bool // registered phone-number ids; read-only after NewServer
	templates map[string]bool // approved template names, nil: any; read-only after NewServer

	mu       sync.Mutex
	token    string               // guarded by mu
	failures []Failure            // guarded by mu
	windows  map[string]time.Time // phone-number-id/wa_id → last inbound; guarded by mu
	requests []Request            // guarded by mu
	seq      int                  // guarded by mu
	posted   int                  // webhooks posted with 200; guarded by mu
}

// NewServer starts a mock on cfg.Addr (default 127.0.0.1 with a random port). It panics if it
// cannot listen, like httptest.NewServer; Listen returns the error instead.
func NewServer(cfg Config) *Server {
	s, err := Listen(cfg)
	if err != nil {
		panic(err.Error())
	}
	return s
}

// Listen starts a mock on cfg.Addr (default 127.0.0.1 with a random port).
func Listen(cfg Config) (*Server, error) {
	if cfg.Token == "" {
		cfg.Token = "test-token"
	}
	if cfg.AppSecret == "" {
		cfg.AppSecret = "test_app_secret"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Meta = cfg.Meta.withDefaults()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("whatsapptest: listen: %v", err)
	}
	s := &Server{
		cfg: cfg, ln: ln, url: "http://" + ln.Addr().String(),
		hooks:   make(chan []byte, 4096),
		done:    make(chan struct{}),
		token:   cfg.Token,
		windows: make(map[string]time.Time),
		hc:      &fasthttp.Client{ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second},
		numbers: map[string]bool{cfg.Meta.PhoneNumberID: true},
	}
	for _, id := range cfg.PhoneNumberIDs {
		s.numbers[id] = true
	}
	if cfg.Templates != nil {
		s.templates = make(map[string]bool, len(cfg.Templates))
		for _, n := range cfg.Templates {
			s.templates[n] = true
		}
	}
	s.srv = &fasthttp.Server{Handler: s.handle, Name: "whatsapptest", ReadTimeout: 30 * time.Second, IdleTimeout: 10 * time.Second}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = s.srv.Serve(ln) }()
	go s.poster()
	return s, nil
}

// URL is the base URL to use as the client's Graph URL, "http://127.0.0.1:port".
func (s *Server) URL() string { return s.url }

// Close stops the server and the webhook poster; undelivered webhooks are dropped.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.ShutdownWithContext(ctx)
	_ = s.ln.Close() // a Shutdown that ran before Serve started leaves Serve accepting
	s.wg.Wait()
	s.hc.CloseIdleConnections()
}

// FailNext scripts f for the next n matching calls (in order, after earlier scripts).
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, f)
	}
}

// ExpireToken makes every later call fail with 401 / 190, as an expired token does.
func (s *Server) ExpireToken() { s.SetToken("") }

// SetToken changes the accepted token ("" accepts none).
func (s *Server) SetToken(tok string) {
	s.mu.Lock()
	s.token = tok
	s.mu.Unlock()
}

// OpenWindow records a user message from waID to phoneNumberID at t.
func (s *Server) OpenWindow(phoneNumberID, waID string, t time.Time) {
	s.mu.Lock()
	s.windows[phoneNumberID+"/"+strings.TrimPrefix(waID, "+")] = t
	s.mu.Unlock()
}

func (s *Server) windowOpen(phoneNumberID, waID string) bool {
	s.mu.Lock()
	t, ok := s.windows[phoneNumberID+"/"+strings.TrimPrefix(waID, "+")]
	s.mu.Unlock()
	return ok && s.cfg.Now().Sub(t) < 24*time.Hour
}

// Requests returns a copy of the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Posted returns how many webhooks the receiver answered with 200.
func (s *Server) Posted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posted
}

var pathRE = regexp.MustCompile(`^/(v\d+\.\d+)/([^/]+)/messages$`)

type wireIn struct {
	MessagingProduct string `json:"messaging_product"`
	To               string `json:"to"`
	Type             string `json:"type"`
	Status           string `json:"status"`
	MessageID        string `json:"message_id"`
	BizOpaque        string `json:"biz_opaque_callback_data"`
	Template         *struct {
		Name     string `json:"name"`
		Language struct {
			Code string `json:"code"`
		} `json:"language"`
	} `json:"template"`
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	req := Request{Authorization: string(ctx.Request.Header.Peek("Authorization")), Body: append([]byte(nil), ctx.PostBody()...)}
	defer func() {
		req.Status = ctx.Response.StatusCode()
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
	}()
	sm := pathRE.FindStringSubmatch(string(ctx.Path()))
	if !ctx.IsPost() || sm == nil {
		s.fail(ctx, &req, 400, 100, 0, "Unsupported request - method type: "+strings.ToLower(string(ctx.Method())))
		return
	}
	req.Version, req.PhoneNumberID = sm[1], sm[2]
	s.mu.Lock()
	token := s.token
	s.mu.Unlock()
	got := strings.TrimPrefix(req.Authorization, "Bearer ")
	if req.Authorization == "" {
		got = string(ctx.QueryArgs().Peek("access_token"))
	}
	if token == "" || got != token {
		s.fail(ctx, &req, 401, 190, 463, "Error validating access token: Session has expired.")
		return
	}
	if !s.numbers[req.PhoneNumberID] {
		// Graph's answer for an id that names no object the token can see.
		s.failType(ctx, &req, 400, 100, 33, "GraphMethodException", "Unsupported post request. Object with ID '"+req.PhoneNumberID+
			"' does not exist, cannot be loaded due to missing permissions, or does not support this operation.", "")
		return
	}
	var in wireIn
	if err := json.Unmarshal(req.Body, &in); err != nil {
		s.fail(ctx, &req, 400, 100, 0, "Invalid parameter")
		return
	}
	req.To, req.Type = in.To, in.Type
	if in.Template != nil {
		req.TemplateName = in.Template.Name
	}
	if in.MessagingProduct != "whatsapp" {
		s.fail(ctx, &req, 400, 100, 0, "The parameter messaging_product is required.")
		return
	}
	if in.Status == "read" && in.MessageID != "" {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"success":true}`)
		return
	}
	if in.To == "" || in.Type == "" {
		s.fail(ctx, &req, 400, 131008, 0, "Required parameter is missing")
		return
	}
	if f, ok := s.nextFailure(in.To); ok {
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-s.done:
			}
			t.Stop()
		}
		switch {
		case f.RawStatus != 0:
			req.Code = 0
			ctx.SetStatusCode(f.RawStatus)
			ctx.SetBodyString(f.RawBody)
			return
		case f.Async:
			id := s.accept(ctx, &req, in)
			s.postStatuses(req.PhoneNumberID, Status{ID: id, Status: "failed", RecipientID: strings.TrimPrefix(in.To, "+"), ErrorCode: f.Code, BizOpaque: in.BizOpaque})
			return
		case f.Code != 0:
			status := f.HTTPStatus
			if status == 0 {
				status = defaultStatus(f.Code)
			}
			s.fail(ctx, &req, status, f.Code, f.Subcode, f.Message)
			return
		}
	}
	if in.Type == "template" && in.Template != nil && s.templates != nil && !s.templates[in.Template.Name] {
		s.failType(ctx, &req, 404, 132001, 2494073, "OAuthException", "Template name does not exist in the translation",
			fmt.Sprintf("template name (%s) does not exist in %s", in.Template.Name, in.Template.Language.Code))
		return
	}
	if s.cfg.EnforceWindow && in.Type != "template" && !s.windowOpen(req.PhoneNumberID, in.To) {
		s.fail(ctx, &req, 400, 131047, 2494010, "Re-engagement message")
		return
	}
	id := s.accept(ctx, &req, in)
	if len(s.cfg.AutoStatuses) > 0 {
		sts := make([]Status, len(s.cfg.AutoStatuses))
		for i, st := range s.cfg.AutoStatuses {
			sts[i] = Status{ID: id, Status: st, RecipientID: strings.TrimPrefix(in.To, "+"), Timestamp: s.cfg.Now(), BizOpaque: in.BizOpaque}
		}
		for _, st := range sts {
			s.postStatuses(req.PhoneNumberID, st) // one webhook per status, as Meta sends them
		}
	}
}

func defaultStatus(code int) int {
	switch code {
	case 0, 190:
		return 401
	case 131000, 131016, 133004:
		return 500
	case 2:
		return 503
	}
	return 400
}

func (s *Server) nextFailure(to string) (Failure, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.failures {
		if f.Recipient == "" || strings.TrimPrefix(f.Recipient, "+") == strings.TrimPrefix(to, "+") {
			s.failures = append(s.failures[:i], s.failures[i+1:]...)
			return f, true
		}
	}
	return Failure{}, false
}

// accept answers the §3 success body with a fresh wamid.
func (s *Server) accept(ctx *fasthttp.RequestCtx, req *Request, in wireIn) string {
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("wamid.MOCK%010d", s.seq)
	s.mu.Unlock()
	req.WamID = id
	out := map[string]any{
		"messaging_product": "whatsapp",
		"contacts":          []any{map[string]any{"input": in.To, "wa_id": strings.TrimPrefix(in.To, "+")}},
	}
	msg := map[string]any{"id": id}
	if in.Type == "template" {
		msg["message_status"] = "accepted"
	}
	out["messages"] = []any{msg}
	b, _ := json.Marshal(out)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
	return id
}

// fail answers Meta's error envelope (whatsapp.md §3).
func (s *Server) fail(ctx *fasthttp.RequestCtx, req *Request, status, code, subcode int, title string) {
	s.failType(ctx, req, status, code, subcode, "OAuthException", title, "")
}

// failType answers an error envelope of the given type; details defaults to the title.
func (s *Server) failType(ctx *fasthttp.RequestCtx, req *Request, status, code, subcode int, typ, title, details string) {
	req.Code = code
	if title == "" {
		title = fmt.Sprintf("Error %d", code)
	}
	if details == "" {
		details = title
	}
	msg := fmt.Sprintf("(#%d) %s", code, title)
	if typ == "GraphMethodException" {
		msg = title // Graph's object errors carry no "(#code)" prefix
	}
	e := map[string]any{
		"message": msg, "type": typ, "code": code,
		"error_data": map[string]any{"messaging_product": "whatsapp", "details": details},
		"fbtrace_id": fmt.Sprintf("AmockTrace%d", code),
	}
	if subcode != 0 {
		e["error_subcode"] = subcode
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func (s *Server) postStatuses(phoneNumberID string, sts ...Status) {
	meta := s.cfg.Meta
	meta.PhoneNumberID = phoneNumberID
	s.enqueue(StatusWebhook(meta, sts...))
}

func (s *Server) enqueue(body []byte) {
	if s.cfg.WebhookURL == "" {
		return
	}
	select {
	case s.hooks <- body:
	case <-s.done:
	}
}

// poster delivers queued webhooks in order, retrying a failed post a few times.
func (s *Server) poster() {
	defer s.wg.Done()
	for {
		select {
		case body := <-s.hooks:
			for attempt := 0; attempt < 3; attempt++ {
				status, err := s.post(body)
				if err == nil && status == 200 {
					s.mu.Lock()
					s.posted++
					s.mu.Unlock()
					break
				}
				select {
				case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
				case <-s.done:
					return
				}
			}
		case <-s.done:
			return
		}
	}
}

func (s *Server) post(body []byte) (int, error) {
	return Post(s.hc, s.cfg.WebhookURL, s.cfg.AppSecret, body)
}

// PostWebhook signs body and posts it to the configured webhook URL now, returning the
// receiver's status code.
func (s *Server) PostWebhook(body []byte) (int, error) {
	return s.post(body)
}

// Inbound records a user message (opening the mock's window) and posts its signed webhook,
// returning the wamid used and the receiver's status code.
func (s *Server) Inbound(phoneNumberID, from, text string) (string, int, error) {
	now := s.cfg.Now()
	s.OpenWindow(phoneNumberID, from, now)
	s.mu.Lock()
	s.seq++
	id := fmt.Sprintf("wamid.MOCKIN%010d", s.seq)
	s.mu.Unlock()
	meta := s.cfg.Meta
	meta.PhoneNumberID = phoneNumberID
	status, err := s.post(InboundText(meta, strings.TrimPrefix(from, "+"), id, text, now))
	return id, status, err
}

// Post signs body with appSecret and posts it to url with client c (nil: a default client),
// returning the status code.
func Post(c *fasthttp.Client, url, appSecret string, body []byte) (int, error) {
	if c == nil {
		c = defaultClient
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("X-Hub-Signature-256", Sign(appSecret, body))
	req.SetBody(body)
	if err := c.DoTimeout(req, resp, 10*time.Second); err != nil {
		return 0, err
	}
	return resp.StatusCode(), nil
}

var defaultClient = &fasthttp.Client{ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
