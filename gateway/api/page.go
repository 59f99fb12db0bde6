package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/consent"
)

// Pagination and filters of GET /v1/consent/{recipient}/history and GET
// /v1/consent/export: ?limit=, ?cursor= (a page's next_cursor, opaque),
// ?since= and ?until= (RFC 3339, [since, until)), ?channel=.

// exportPageMax bounds a page of GET /v1/consent/export (a page is built
// in memory so that its next cursor can go in a header); a cursor without
// a limit gets this many.
const exportPageMax = 10000

// pageQuery is the paging part of a listing request.
type pageQuery struct {
	limit        int
	cursor       []byte
	since, until time.Time
}

// parsePage reads limit, cursor, since and until, answering 400 for a bad
// one; limit is 0 when absent, else 1 to maxLimit.
func parsePage(ctx *fasthttp.RequestCtx, maxLimit int) (pageQuery, bool) {
	var q pageQuery
	args := ctx.QueryArgs()
	if v := args.Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > maxLimit {
			WriteError(ctx, 400, "invalid_request", "limit", "limit must be 1 to "+strconv.Itoa(maxLimit))
			return q, false
		}
		q.limit = n
	}
	if v := args.Peek("cursor"); len(v) > 0 {
		c, err := base64.RawURLEncoding.DecodeString(string(v))
		if err != nil || len(c) == 0 {
			WriteError(ctx, 400, "invalid_request", "cursor", "cursor must be a next_cursor from a previous page")
			return q, false
		}
		q.cursor = c
	}
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"since", &q.since}, {"until", &q.until}} {
		if v := args.Peek(f.name); len(v) > 0 {
			t, err := time.Parse(time.RFC3339Nano, string(v))
			if err != nil {
				WriteError(ctx, 400, "invalid_request", f.name, f.name+" must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
				return q, false
			}
			*f.t = t
		}
	}
	return q, true
}

func encodeCursor(c []byte) string { return base64.RawURLEncoding.EncodeToString(c) }

// pageErr answers a consent error of a listing: a cursor that is not from
// this listing is a 400 on the cursor.
func (s *Server) pageErr(ctx *fasthttp.RequestCtx, q pageQuery, err error) {
	if q.cursor != nil && errors.Is(err, consent.ErrInvalidInput) {
		WriteError(ctx, 400, "invalid_request", "cursor", err.Error())
		return
	}
	s.consentErr(ctx, err)
}

// consentHistory serves GET /v1/consent/{recipient}/history.
func (s *Server) consentHistory(ctx *fasthttp.RequestCtx, rq request) {
	rcpt, channel := consentTarget(ctx, rq)
	q, ok := parsePage(ctx, 1000)
	if !ok {
		return
	}
	if q.limit == 0 {
		q.limit = 100
	}
	h, next, err := s.cfg.Consents.HistoryPage(rq.tenant.ID, channel, rcpt, consent.HistoryQuery{Limit: q.limit, Since: q.since, Until: q.until, Cursor: q.cursor})
	if err != nil {
		s.pageErr(ctx, q, err)
		return
	}
	if h == nil {
		h = []consent.Evidence{}
	}
	body := map[string]any{"recipient": rcpt, "channel": channel, "evidence": h}
	if next != nil {
		body["next_cursor"] = encodeCursor(next)
	}
	writeJSON(ctx, 200, body)
}

// exportPage answers a paged GET /v1/consent/export (a limit or a cursor
// given): the page is built in memory, the next page's cursor is the
// X-Next-Cursor header (absent on the last page).
func (s *Server) exportPage(ctx *fasthttp.RequestCtx, opt consent.ExportOptions, evidence bool) {
	var buf bytes.Buffer
	var next []byte
	var err error
	if evidence {
		_, next, err = s.cfg.Consents.ExportEvidencePage(context.Background(), &buf, opt)
	} else {
		_, next, err = s.cfg.Consents.ExportPage(context.Background(), &buf, opt)
	}
	if err != nil {
		s.pageErr(ctx, pageQuery{cursor: opt.Cursor}, err)
		return
	}
	if next != nil {
		ctx.Response.Header.Set("X-Next-Cursor", encodeCursor(next))
	}
	ctx.SetContentType("text/csv; charset=utf-8")
	ctx.SetStatusCode(200)
	ctx.SetBody(buf.Bytes())
}
