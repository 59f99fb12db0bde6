package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

func newSMSC(t *testing.T) *smpptest.Server {
	s := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(s.Close)
	return s
}

// A body over http.max_body_bytes gets a JSON 413, not fasthttp's plain
// text, and the server goes on serving.
func TestHTTPBodyTooLarge(t *testing.T) {
	env := newEnv(t)
	big := `{"to":"` + handset + `","text":"` + strings.Repeat("x", 2<<20) + `"}`
	for _, path := range []string{"/v1/messages", "/v1/consent/" + handset + "/opt-out", "/nowhere"} {
		code, m := env.http("POST", path, acmeToken, big)
		if code != 413 || errCode(m) != "body_too_large" {
			t.Fatalf("POST %s with 2 MB: %d %v", path, code, m)
		}
	}
	// Chunked, so no Content-Length tells in advance.
	req, _ := http.NewRequest("POST", "http://"+env.g.HTTPAddr()+"/v1/messages", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+acmeToken)
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), `"body_too_large"`) {
		t.Fatalf("chunked 2 MB: %d %s", resp.StatusCode, b)
	}
	if code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"small"}`); code != 202 {
		t.Fatalf("after the big bodies: %d %v", code, m)
	}
}

// POST /v1/consent/import streams its CSV: a file far over
// max_body_bytes is imported whole; one over max_import_bytes gets 413.
func TestHTTPImportLargeCSV(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	y := strings.Replace(configYAML(dir, smsc.Addr(), "", ""), "http: {", "http: {max_body_bytes: 65536, max_import_bytes: 4194304, ", 1)
	env := startEnv(t, y, smsc, dir)
	var csv bytes.Buffer
	csv.WriteString("recipient,scope,class\n")
	const rows = 60000
	for i := range rows {
		fmt.Fprintf(&csv, "+1438%07d,tenant,all\n", i)
	}
	if csv.Len() <= 65536 {
		t.Fatal("the CSV is not over the body limit")
	}
	code, m := env.http("POST", "/v1/consent/import?source=previous_provider", acmeToken, csv.String())
	if code != 200 || m["applied"] != float64(rows) {
		t.Fatalf("import of %d bytes: %d %v", csv.Len(), code, m)
	}
	if _, err := env.submit("+14380059999", "x"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("the last imported row is not applied: %v", err)
	}
	// Over max_import_bytes (4 MiB here), announced or found while
	// streaming: 413. The server stops reading, so the client's write may
	// fail: the answer is read over a raw connection.
	huge := "recipient,scope,class\n" + strings.Repeat("+14389999999,tenant,all\n", 5<<20/24)
	for _, chunked := range []bool{false, true} {
		code, body := rawPost(t, env.g.HTTPAddr(), "/v1/consent/import?source=previous_provider", acmeToken, huge, chunked)
		if code != 413 || !strings.Contains(body, `"body_too_large"`) {
			t.Fatalf("import over max_import_bytes (chunked %v): %d %s", chunked, code, body)
		}
	}
}

// rawPost posts body over a connection of its own, writing on a goroutine
// (whose errors are ignored: the server may stop reading) and reading the
// answer.
func rawPost(t *testing.T, addr, path, token, body string, chunked bool) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		w := bufio.NewWriter(c)
		fmt.Fprintf(w, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: text/csv\r\n", path, token)
		if chunked {
			fmt.Fprintf(w, "Transfer-Encoding: chunked\r\n\r\n")
			for b := body; len(b) > 0; {
				n := min(len(b), 64<<10)
				fmt.Fprintf(w, "%x\r\n%s\r\n", n, b[:n])
				b = b[n:]
			}
			fmt.Fprintf(w, "0\r\n\r\n")
		} else {
			fmt.Fprintf(w, "Content-Length: %d\r\n\r\n%s", len(body), body)
		}
		w.Flush()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// A send whose carrier answer takes longer than the API waits is reported
// 202 pending with its id (the send goes on), and its state is there later.
func TestHTTPSendPendingNotTimeout(t *testing.T) {
	env := newEnv(t)
	old := sendWait
	sendWait = 200 * time.Millisecond
	defer func() { sendWait = old }()
	env.smsc.Ignore(1)
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"slow carrier"}`)
	if code != 202 || m["status"] != "pending" || m["id"] == nil {
		t.Fatalf("slow send: %d %v", code, m)
	}
	id := m["id"].(string)
	if code, m := env.http("GET", "/v1/messages/"+id, acmeToken, ""); code != 200 || m["state"] != "pending" {
		t.Fatalf("state while pending: %d %v", code, m)
	}
	// The SMSC never answers: the submit expires (3 s) and the state says so.
	testutil.CheckFor(t, 20*time.Second, func() error {
		if code, m := env.http("GET", "/v1/messages/"+id, acmeToken, ""); code != 200 || m["state"] != "failed" {
			return fmt.Errorf("%d %v", code, m)
		}
		return nil
	})
}

// /readyz is 503 once a store stops answering.
func TestReadyzChecksStores(t *testing.T) {
	env := newEnv(t)
	if code, m := env.http("GET", "/readyz", "", ""); code != 200 {
		t.Fatalf("readyz: %d %v", code, m)
	}
	if err := env.g.consent.Close(); err != nil {
		t.Fatal(err)
	}
	if code, m := env.http("GET", "/readyz", "", ""); code != 503 || !strings.Contains(fmt.Sprint(m), "consent") {
		t.Fatalf("readyz with the consent store closed: %d %v", code, m)
	}
}

// An SMS MO counts in optgate_gateway_messages_total as the WhatsApp
// channel's do.
func TestMOCountedInMessagesTotal(t *testing.T) {
	env := newEnv(t)
	if err := env.mo(handset, "hello there"); err != nil {
		t.Fatal(err)
	}
	want := `optgate_gateway_messages_total{channel="sms",direction="mo",outcome="received"} 1`
	testutil.CheckFor(t, 10*time.Second, func() error {
		_, m := env.http("GET", "/metrics", "", "")
		if !strings.Contains(m["raw"].(string), want) {
			return fmt.Errorf("no %s", want)
		}
		return nil
	})
}

// A panic while handling an MO is recovered: the SMSC is asked to retry,
// the panic counted, and the next MO is handled.
func TestInboundPanicRecovered(t *testing.T) {
	env := newEnv(t)
	var calls atomic.Int32
	hook := func() {
		if calls.Add(1) == 1 {
			panic("test panic in inbound")
		}
	}
	testHookInbound.Store(&hook)
	defer testHookInbound.Store(nil)
	if err := env.mo(handset, "STOP"); smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("MO whose handling panicked: %v, want ESME_RX_T_APPN", err)
	}
	if err := env.mo(handset, "STOP"); err != nil {
		t.Fatalf("the retried MO: %v", err)
	}
	if _, err := env.submit(handset, "x"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("after the retried STOP: %v", err)
	}
	_, m := env.http("GET", "/metrics", "", "")
	if !strings.Contains(m["raw"].(string), "optgate_panics_total 1") {
		t.Fatal("the panic was not counted")
	}
}

// A panic in the export's stream writer ends the export with the failure
// line; the server goes on.
func TestExportPanicRecovered(t *testing.T) {
	env := newEnv(t)
	env.g.api.SetExportHook(func() { panic("test panic in export") })
	defer env.g.api.SetExportHook(nil)
	code, m := env.http("GET", "/v1/consent/export", acmeToken, "")
	if code != 200 || !strings.Contains(fmt.Sprint(m["raw"]), "# export failed") {
		t.Fatalf("export that panicked: %d %v", code, m)
	}
	env.g.api.SetExportHook(nil)
	if code, _ := env.http("GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("after the panic: %d", code)
	}
}
