package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/cmd/optgate/simulators"
	"github.com/optgate/optgate/gateway"
	"github.com/optgate/optgate/smpp/smpptest"
)

// startAPIGateway runs a gateway for the consent commands; it returns the
// HTTP address and the store directory (admin token admin-cmd-token).
func startAPIGateway(t *testing.T) (string, string) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	smsc := smpptest.NewServer(smpptest.Config{Logger: quiet})
	defer smsc.Close()
	dir := t.TempDir()
	y := fmt.Sprintf(`
store: {dir: %q}
http: {admin_token: admin-cmd-token}
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: acme-cmd-api-token, numbers: ["+15145550199"]}
smscs:
  - {name: c, address: %q, system_id: optgate, password: pw}
routes:
  - {prefix: "+", smscs: [c]}
`, dir, smsc.Addr())
	cfg, err := gateway.ParseConfig([]byte(y), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	sl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	opt := gateway.Options{Logger: quiet, SMPPListener: sl, HTTPListener: hl}
	simulators.Wire(&opt)
	g, err := gateway.New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		g.Shutdown(ctx)
		cancel()
	})
	return g.HTTPAddr(), dir
}

// The consent admin commands against a running gateway's API.
func TestConsentCommands(t *testing.T) {
	addr, dir := startAPIGateway(t)
	url := "http://" + addr
	cmd := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append(append([]string{"consent"}, args...), "-url", url, "-token", "admin-cmd-token", "-tenant", "acme"), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, e := cmd("opt-out", "+15145550100", "-operator", "jane", "-note", "asked by phone"); code != 0 {
		t.Fatalf("opt-out: %d %s", code, e)
	}
	if code, out, _ := cmd("get", "+15145550100"); code != 0 || !strings.Contains(out, `"state":"opted_out"`) {
		t.Fatalf("get: %d %s", code, out)
	}
	if code, out, _ := cmd("history", "+15145550100"); code != 0 || !strings.Contains(out, `"operator":"jane"`) {
		t.Fatalf("history: %d %s", code, out)
	}
	if code, _, e := cmd("opt-in", "+15145550100", "-operator", "jane"); code != 2 || !strings.Contains(e, "-source and -proof") {
		t.Fatalf("opt-in without evidence: %d %s", code, e)
	}
	if code, _, e := cmd("opt-in", "+15145550100", "-operator", "jane", "-source", "signed_form", "-proof", "doc-9"); code != 0 {
		t.Fatalf("opt-in: %d %s", code, e)
	}
	csv := filepath.Join(dir, "list.csv")
	os.WriteFile(csv, []byte("recipient\n+15145550111\n+15145550112\nbogus\n"), 0o644)
	// a partly failed import applies the good rows and exits 1
	if code, out, e := cmd("import", csv, "-source", "previous_provider"); code != 1 || !strings.Contains(out, `"applied":2`) ||
		!strings.Contains(e, "1 row(s) refused") {
		t.Fatalf("import: %d %s %s", code, out, e)
	}
	if code, out, _ := cmd("export"); code != 0 || !strings.Contains(out, "+15145550111") || !strings.Contains(out, "+15145550112") {
		t.Fatalf("export: %d %s", code, out)
	}
	if code, out, _ := cmd("export", "-evidence"); code != 0 || !strings.Contains(out, "previous_provider") {
		t.Fatalf("export evidence: %d %s", code, out)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"consent", "get", "+15145550100", "-url", url, "-token", "wrong-token"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "401") {
		t.Fatalf("wrong token: %d %s", code, errb.String())
	}
}

// The server comes from -url (scheme optional), $OPTGATE_URL or -config;
// the token from -token, $OPTGATE_TOKEN or -config; JSON output ends with
// a newline; a refused connection says which URL was tried and how to
// change it.
func TestConsentTargetAndOutput(t *testing.T) {
	addr, _ := startAPIGateway(t)
	t.Setenv("OPTGATE_URL", "")
	t.Setenv("OPTGATE_TOKEN", "")
	t.Setenv("OPTGATE_ADMIN_TOKEN", "")
	get := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"consent", "get", "+15145550100", "-tenant", "acme"}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, e := get("-url", addr, "-token", "admin-cmd-token"); code != 0 || !strings.HasSuffix(out, "}\n") {
		t.Fatalf("-url without scheme: %d %q %s", code, out, e)
	}
	t.Setenv("OPTGATE_URL", addr)
	t.Setenv("OPTGATE_TOKEN", "admin-cmd-token")
	if code, _, e := get(); code != 0 {
		t.Fatalf("from the environment: %d %s", code, e)
	}
	t.Setenv("OPTGATE_URL", "")
	t.Setenv("OPTGATE_TOKEN", "")
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("http: {listen: %q, admin_token: admin-cmd-token}\ntenants: [{id: acme, brand: Acme, help_contact: h}]\nsimulator: {enabled: true}\n", addr)), 0o644)
	if code, _, e := get("-config", cfg); code != 0 {
		t.Fatalf("from -config: %d %s", code, e)
	}
	if code, _, e := get(); code != 2 || !strings.Contains(e, "no token") {
		t.Fatalf("no token: %d %s", code, e)
	}
	dead := freePort(t)
	code, _, e := get("-url", dead, "-token", "x")
	if code != 1 || !strings.Contains(e, "http://"+dead) || !strings.Contains(e, "-url") || !strings.Contains(e, "OPTGATE_URL") {
		t.Fatalf("refused: %d %s", code, e)
	}
}
