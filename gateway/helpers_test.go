package gateway

// The gateway tests' shared helpers: TestMain, the test environment (a
// gateway wired like cmd/optgate against a smpptest SMSC), and the ways the
// tests talk to it (SMPP submits, extra binds, HTTP).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
	"github.com/optgate/optgate/smpp/smpptest"
)

func TestMain(m *testing.M) {
	if os.Getenv("GATEWAY_TEST_LOG") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	leaks = testutil.StartLeakCheck()
	os.Exit(leaks.Exit(m.Run()))
}

// leaks is the package's goroutine leak check, run after the tests.
var leaks *testutil.Leaks

const (
	ourNumber = "+15145550199"
	handset   = "+15145550100"
	acmeToken = "acme-test-api-token"
	adminTok  = "admin-test-token"
)

// testEnv is a gateway wired like cmd/optgate does, against a smpptest
// SMSC, with an upstream ESME bound to it.
type testEnv struct {
	t    *testing.T
	g    *Gateway
	smsc *smpptest.Server
	esme *smpptest.ESME
	dir  string
	yaml string
}

func configYAML(dir, smscAddr, extraTenant, extraAccount string) string {
	return fmt.Sprintf(`
store: {dir: %q}
http: {listen: "127.0.0.1:0", admin_token: %q}
smpp: {listen: "127.0.0.1:0"}
tenants:
  - id: acme
    brand: Acme Recruiting
    help_contact: help@acme.example
    api_token: %q
    numbers: [%q]
%s
accounts:
  - {system_id: acme, password: acmepw, tenant: acme, window: 256}
%s
smscs:
  - {name: carrier, address: %q, system_id: optgate, password: pw, binds: 2, window: 128, timeout: 3s}
routes:
  - {prefix: "+", smscs: [carrier]}
`, dir, adminTok, acmeToken, ourNumber, extraTenant, extraAccount, smscAddr)
}

func startEnv(t *testing.T, yamlText string, smsc *smpptest.Server, dir string) *testEnv {
	t.Helper()
	return startEnvOpt(t, yamlText, smsc, dir, Options{})
}

// startEnvOpt is startEnv with gateway options (a logger, a listener of
// the test's own); listeners not given are on 127.0.0.1:0.
func startEnvOpt(t *testing.T, yamlText string, smsc *smpptest.Server, dir string, opt Options) *testEnv {
	t.Helper()
	cfg, err := ParseConfig([]byte(yamlText), "test.yaml", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if opt.SMPPListener == nil {
		opt.SMPPListener, _ = net.Listen("tcp", "127.0.0.1:0")
	}
	if opt.HTTPListener == nil {
		opt.HTTPListener, _ = net.Listen("tcp", "127.0.0.1:0")
	}
	if opt.StartSMSCSimulator == nil {
		withSimulators(&opt)
	}
	g, err := New(cfg, opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := g.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	env := &testEnv{t: t, g: g, smsc: smsc, dir: dir, yaml: yamlText}
	t.Cleanup(func() { env.stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	testutil.CheckFor(t, 10*time.Second, func() error {
		if ok, why := g.linksReady(); !ok {
			return errors.New(why)
		}
		return nil
	})
	env.esme, err = smpptest.NewESME(ctx, smpp.ClientConfig{Addr: g.SMPPAddr(), SystemID: "acme", Password: "acmepw"})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func newEnv(t *testing.T) *testEnv {
	smsc := smpptest.NewServer(smpptest.Config{Receipts: true})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	return startEnv(t, configYAML(dir, smsc.Addr(), "", ""), smsc, dir)
}

func (e *testEnv) stop() {
	if e.esme != nil {
		e.esme.Close()
		e.esme = nil
	}
	if e.g != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		e.g.Shutdown(ctx)
		cancel()
		e.g = nil
	}
}

func (e *testEnv) submit(to, text string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	enc, dc := encodeText(text)
	return e.esme.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{
		Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])}, Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(to[1:])},
		DataCoding: dc, ShortMessage: enc, RegisteredDelivery: 1}})
}

// nextSubmitTo waits for the SMSC to receive a submit to a number and
// returns its decoded text.
func (e *testEnv) nextSubmitTo(to string) (smpptest.Submit, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		s, err := e.smsc.NextSubmit(ctx)
		if err != nil {
			e.t.Fatalf("no submit to %s at the SMSC: %v", to, err)
		}
		if "+"+string(s.PDU.Dest.Addr) == to {
			text, _ := coding.Decode(coding.DataCoding(s.PDU.DataCoding), s.PDU.ShortMessage)
			return s, text
		}
	}
}

func (e *testEnv) mo(from, text string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return e.smsc.SendMO(ctx, "optgate", from, ourNumber, text)
}

func (e *testEnv) http(method, path, token, body string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, "http://"+e.g.HTTPAddr()+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// bindAs binds an extra upstream ESME to the gateway as account sys; mods
// adjust its client config (a window, a dialer) before the bind. A bind
// that fails ends the test; the ESME is closed at cleanup.
func (e *testEnv) bindAs(sys, pw string, mods ...func(*smpp.ClientConfig)) *smpptest.ESME {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := smpp.ClientConfig{Addr: e.g.SMPPAddr(), SystemID: sys, Password: pw}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := smpptest.NewESME(ctx, cfg)
	if err != nil {
		e.t.Fatalf("bind as %s: %v", sys, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

func submitVia(c *smpptest.ESME, to, text string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{
		Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])}, Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(to[1:])},
		ShortMessage: []byte(text)}})
}
