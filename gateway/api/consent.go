package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/consent"
)

// consentTarget is the recipient and channel of a /v1/consent/{recipient}
// request (?channel=, default sms).
func consentTarget(ctx *fasthttp.RequestCtx, rq request) (rcpt, channel string) {
	rcpt, _, _ = strings.Cut(rq.rest, "/")
	channel = string(ctx.QueryArgs().Peek("channel"))
	if channel == "" {
		channel = "sms"
	}
	return rcpt, channel
}

// operator is who a consent change or import is recorded as when the
// request names no one.
func operator(c caller) string {
	if c.admin {
		return "admin"
	}
	return "api"
}

// consentStatus is GET /v1/consent/{recipient}.
func (s *Server) consentStatus(ctx *fasthttp.RequestCtx, rq request) {
	rcpt, channel := consentTarget(ctx, rq)
	st, err := s.cfg.Consents.Get(rq.tenant.ID, channel, rcpt)
	if err != nil {
		s.consentErr(ctx, err)
		return
	}
	writeJSON(ctx, 200, statusJSON(st, channel))
}

// consentChangeBody is the body of POST /v1/consent/{recipient}/opt-out
// and /opt-in (optional).
type consentChangeBody struct {
	Sender    string `json:"sender"`
	Operator  string `json:"operator"`
	Source    string `json:"source"`
	ProofRef  string `json:"proof_ref"`
	Note      string `json:"note"`
	Marketing bool   `json:"marketing"`
	Channel   string `json:"channel"`
}

// consentChange is POST /v1/consent/{recipient}/opt-out and /opt-in.
func (s *Server) consentChange(ctx *fasthttp.RequestCtx, rq request) {
	rcpt, channel := consentTarget(ctx, rq)
	t := rq.tenant
	var body consentChangeBody
	if len(ctx.PostBody()) > 0 {
		if field, err := decodeStrict(ctx.PostBody(), &body); err != nil {
			WriteError(ctx, 400, "invalid_request", field, err.Error())
			return
		}
	}
	if body.Channel != "" {
		channel = body.Channel
	}
	if body.Sender != "" {
		// The confirmation goes out from the sender: it must be the
		// tenant's own.
		n, r := s.cfg.Core.OwnSender(t, channel, body.Sender)
		if r != nil {
			status := statusOf(r.Code)
			if r.Code == "invalid_sender" {
				status = 422 // here the sender is the body's field, not a send's
			}
			WriteError(ctx, status, r.Code, "sender", r.Message)
			return
		}
		body.Sender = n
	}
	if body.Operator == "" {
		body.Operator = operator(rq.caller)
	}
	oc := consent.OperatorChange{Tenant: t.ID, Channel: channel, Recipient: rcpt, Sender: body.Sender, Operator: body.Operator,
		Source: body.Source, ProofRef: body.ProofRef, Note: body.Note, Marketing: body.Marketing, API: !rq.caller.admin}
	res, err := s.cfg.Core.ChangeConsent(context.Background(), t, oc, strings.HasSuffix(rq.rest, "/opt-in"))
	if err != nil {
		s.consentErr(ctx, err)
		return
	}
	writeJSON(ctx, 200, map[string]any{"recipient": res.Recipient, "channel": channel, "old": res.Old.String(),
		"new": res.New.String(), "changed": res.Changed, "stored": true})
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

// consentImport is POST /v1/consent/import: a CSV streamed into the store.
func (s *Server) consentImport(ctx *fasthttp.RequestCtx, rq request) {
	t := rq.tenant
	q := ctx.QueryArgs()
	opt := consent.ImportOptions{Tenant: t.ID, Source: string(q.Peek("source")), ProofRef: string(q.Peek("proof_ref")),
		Operator: string(q.Peek("operator"))}
	if opt.Operator == "" {
		opt.Operator = operator(rq.caller)
	}
	opt.Strict = string(q.Peek("strict")) == "true"
	if !s.sec.startImport(t.ID) {
		s.sec.busy.Inc()
		ctx.SetConnectionClose() // the body is unread
		ctx.Response.Header.Set("Retry-After", "10")
		WriteError(ctx, 429, "import_busy", "", fmt.Sprintf("too many imports running (at most %d per tenant, %d in all); retry later",
			s.cfg.MaxImportsPerTenant, s.cfg.MaxImports))
		return
	}
	defer s.sec.endImport(t.ID)
	// The CSV is streamed into the store (millions of rows need not fit
	// in memory), up to max_import_bytes, with time to read it all.
	limit := s.cfg.MaxImportBytes
	if cl := ctx.Request.Header.ContentLength(); cl > 0 && int64(cl) > limit {
		tooLarge(ctx, limit)
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
	rep, err := s.cfg.Consents.Import(context.Background(), body, opt)
	if body.over {
		// Rows before the limit may be applied (an import is idempotent:
		// sending the file again in parts is safe).
		tooLarge(ctx, limit)
		return
	}
	if err != nil {
		s.importErr(ctx, rep, err)
		return
	}
	writeJSON(ctx, 200, importJSON(rep))
}

// importErr answers an import that failed (some rows may be applied).
func (s *Server) importErr(ctx *fasthttp.RequestCtx, rep consent.ImportReport, err error) {
	var lerr *consent.LineTooLongError
	switch {
	case errors.As(err, &lerr):
		// Rows before the line may be applied, as past max_import_bytes.
		ctx.SetConnectionClose() // the rest of the body is unread
		writeJSON(ctx, 400, map[string]any{"error": apiErrorBody{Code: "line_too_long", Field: "body", Message: lerr.Error()},
			"line": lerr.Line, "report": importJSON(rep)})
	case errors.Is(err, consent.ErrEvidenceRequired), errors.Is(err, consent.ErrInvalidInput):
		WriteError(ctx, 400, "invalid_request", "source", err.Error())
	case errors.Is(err, consent.ErrImportRejected):
		writeJSON(ctx, statusOf("invalid_rows"), map[string]any{"error": apiErrorBody{Code: "invalid_rows", Message: err.Error()},
			"report": importJSON(rep)})
	default:
		s.consentErr(ctx, err)
	}
}

func importJSON(r consent.ImportReport) map[string]any {
	errs := make([]map[string]any, 0, len(r.Errors))
	for _, e := range r.Errors {
		errs = append(errs, map[string]any{"line": e.Line, "error": e.Err.Error()})
	}
	return map[string]any{"rows": r.Rows, "applied": r.Applied, "unchanged": r.Unchanged, "error_count": r.ErrorCount, "errors": errs}
}

// consentExport is GET /v1/consent/export: the tenant's consent records
// (or ?what=evidence) as CSV, streamed, or a page of them.
func (s *Server) consentExport(ctx *fasthttp.RequestCtx, rq request) {
	t := rq.tenant
	evidence := string(ctx.QueryArgs().Peek("what")) == "evidence"
	q, ok := parsePage(ctx, exportPageMax)
	if !ok {
		return
	}
	opt := consent.ExportOptions{Tenant: t.ID, Channel: string(ctx.QueryArgs().Peek("channel")), Since: q.since, Until: q.until,
		Limit: q.limit, Cursor: q.cursor}
	if opt.Channel != "" && opt.Channel != "sms" && opt.Channel != "whatsapp" {
		WriteError(ctx, 400, "invalid_request", "channel", "channel must be sms or whatsapp")
		return
	}
	if q.limit > 0 || q.cursor != nil {
		if opt.Limit == 0 {
			opt.Limit = exportPageMax
		}
		s.exportPage(ctx, opt, evidence)
		return
	}
	rid := requestID(ctx) // the writer runs after the handler: ctx is not to be used there
	ctx.SetContentType("text/csv; charset=utf-8")
	ctx.SetStatusCode(200)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		const failed = "\n# export failed: see server log\n"
		defer s.recoverStream(w, "export", t.ID, rid, failed)
		if h := s.exportHook.Load(); h != nil {
			(*h)()
		}
		var err error
		if evidence {
			_, err = s.cfg.Consents.ExportEvidence(context.Background(), w, opt)
		} else {
			_, err = s.cfg.Consents.Export(context.Background(), w, opt)
		}
		if err != nil {
			s.log.Error("export failed", "tenant", t.ID, "err", err, "request_id", rid)
			_, _ = io.WriteString(w, failed)
		}
	})
}
