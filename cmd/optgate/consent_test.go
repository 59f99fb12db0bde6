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

	"github.com/optgate/optgate/gateway"
	"github.com/optgate/optgate/smpp/smpptest"
)

// The consent admin commands against a running gateway's API.
func TestConsentCommands(t *testing.T) {
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
	g, err := gateway.New(cfg, gateway.Options{Logger: quiet, SMPPListener: sl, HTTPListener: hl})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		g.Shutdown(ctx)
		cancel()
	}()
	url := "http://" + g.HTTPAddr()
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
	if code, out, e := cmd("import", csv, "-source", "previous_provider"); code != 0 || !strings.Contains(out, `"applied":2`) {
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
