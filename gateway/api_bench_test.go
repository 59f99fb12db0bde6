package gateway

import (
	"fmt"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/smpp/smpptest"
)

// BenchmarkHTTPSend: POST /v1/messages through the HTTP server's handler
// (no network: the request is handed to the handler as fasthttp would),
// to a recipient who is accepted by the SMSC or blocked by consent. Its
// allocs/op is the HTTP path's plus the chain's.
func BenchmarkHTTPSend(b *testing.B) {
	smsc := smpptest.NewServer(smpptest.Config{NoRecord: true, Window: 1024})
	defer smsc.Close()
	y := fmt.Sprintf(`
store: {dir: %q}
http: {listen: "127.0.0.1:0"}
smpp: {listen: "127.0.0.1:0"}
tenants:
  - {id: acme, brand: Acme Recruiting, help_contact: help@acme.example, numbers: ["+15145550199"], api_token: %q}
smscs:
  - {name: carrier, address: %q, system_id: optgate, password: pw, binds: 2, window: 512}
routes:
  - {prefix: "+", smscs: [carrier]}
`, b.TempDir(), acmeToken, smsc.Addr())
	g := startBenchGateway(b, y)
	remote := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4000}
	do := func(req *fasthttp.Request) int {
		var ctx fasthttp.RequestCtx
		ctx.Init(req, remote, nil)
		g.httpSrv.Handler(&ctx)
		return ctx.Response.StatusCode()
	}
	newReq := func(path, body string) *fasthttp.Request {
		req := &fasthttp.Request{}
		req.Header.SetMethod("POST")
		req.SetRequestURI(path)
		req.Header.Set("Authorization", "Bearer "+acmeToken)
		req.Header.SetContentType("application/json")
		req.SetBodyString(body)
		return req
	}
	if st := do(newReq("/v1/consent/+15145550100/opt-out", "")); st != 200 {
		b.Fatalf("opt-out: %d", st)
	}
	for _, bc := range []struct {
		name, to string
		want     int
	}{{"accepted", "+15145550101", 202}, {"blocked", "+15145550100", 403}} {
		b.Run(bc.name, func(b *testing.B) {
			req := newReq("/v1/messages", `{"to":"`+bc.to+`","text":"hello"}`)
			b.ReportAllocs()
			for b.Loop() {
				if st := do(req); st != bc.want {
					b.Fatalf("status %d, want %d", st, bc.want)
				}
			}
		})
	}
}
