package api

import (
	"errors"
	"fmt"
	"io"

	"github.com/valyala/fasthttp"
)

// readBody reads a streamed request body of at most max_body_bytes into
// the request, so handlers use ctx.PostBody; past the limit it answers 413
// body_too_large, closes the connection (the rest is unread) and returns
// false.
func (s *Server) readBody(ctx *fasthttp.RequestCtx) bool {
	if !ctx.Request.IsBodyStream() {
		return true
	}
	limit := s.cfg.MaxBodyBytes
	if cl := ctx.Request.Header.ContentLength(); cl > limit {
		tooLarge(ctx, int64(limit))
		return false
	}
	b, err := io.ReadAll(io.LimitReader(ctx.RequestBodyStream(), int64(limit)+1))
	if err != nil {
		ctx.SetConnectionClose()
		WriteError(ctx, 400, "bad_request", "", "cannot read the request body")
		return false
	}
	if len(b) > limit {
		tooLarge(ctx, int64(limit))
		return false
	}
	ctx.Request.SetBody(b)
	return true
}

// tooLargeDrain bounds what tooLarge reads of a refused body.
const tooLargeDrain = 16 << 20

// tooLarge answers 413 body_too_large.
func tooLarge(ctx *fasthttp.RequestCtx, limit int64) {
	// Read and discard a bounded part of the rest first: a client still
	// writing its body when the connection closes gets a reset instead of
	// this answer. Past the bound (or the read timeout) it closes anyway.
	if ctx.Request.IsBodyStream() {
		_, _ = io.CopyN(io.Discard, ctx.RequestBodyStream(), tooLargeDrain)
	}
	ctx.SetConnectionClose()
	WriteError(ctx, 413, "body_too_large", "", fmt.Sprintf("request body over %d bytes", limit))
}

// limitedBody reads at most n bytes of a body and then fails with
// errBodyTooLarge, noting it in over.
type limitedBody struct {
	r    io.Reader
	n    int64
	over bool
}

var errBodyTooLarge = errors.New("api: request body too large")

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
