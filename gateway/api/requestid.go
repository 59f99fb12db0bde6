package api

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
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
