package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// requestIDMaxLen bounds an X-Request-Id taken from a request.
const requestIDMaxLen = 128

// requestIDs makes the X-Request-Id of requests that bring none: a
// random per-process prefix and a counter, unique across restarts.
var requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func init() {
	var b [6]byte
	_, _ = rand.Read(b[:])
	requestIDs.prefix = hex.EncodeToString(b[:]) + "-"
}

// validRequestID reports whether a client's X-Request-Id is kept: 1 to
// 128 printable ASCII characters (no spaces, so it reads as one token in
// the log).
func validRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > requestIDMaxLen {
		return false
	}
	for _, c := range b {
		if c <= 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// setRequestID gives the response its X-Request-Id: the request's own
// when it is sane, else a new one.
func setRequestID(ctx *fasthttp.RequestCtx) {
	if id := ctx.Request.Header.Peek("X-Request-Id"); validRequestID(id) {
		ctx.Response.Header.SetBytesV("X-Request-Id", id)
		return
	}
	ctx.Response.Header.Set("X-Request-Id", requestIDs.prefix+strconv.FormatUint(requestIDs.n.Add(1), 16))
}

// requestID is the X-Request-Id of the response being made, for logs.
func requestID(ctx *fasthttp.RequestCtx) string {
	return string(ctx.Response.Header.Peek("X-Request-Id"))
}

// allowedMethods returns the methods the API answers on path, "" for a
// path it does not know (so a wrong method is 405, an unknown path 404).
// It follows newHTTPServer's dispatcher.
func allowedMethods(path string) string {
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
	if allow := allowedMethods(path); allow != "" {
		ctx.Response.Header.Set("Allow", allow)
		writeErr(ctx, 405, "method_not_allowed", "", method+" is not allowed on "+path+"; allowed: "+allow)
		return
	}
	writeErr(ctx, 404, "not_found", "", "no such endpoint: "+method+" "+path)
}
