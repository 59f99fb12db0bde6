package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestCheckConfigReportsEveryProblemWithLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	os.WriteFile(path, []byte(`log:
  level: loud
smpp:
  listen: nowhere
tenants:
  - id: acme
    scope: planet
    numbers: ["5551234"]
accounts:
  - system_id: acme
    password: waytoolongpassword
    tenant: nobody
smscs:
  - name: a
    address: 127.0.0.1:1
    system_id: x
routes:
  - prefix: "1"
    smscs: [b]
`), 0o644)
	var out, errb bytes.Buffer
	code := run([]string{"check-config", "-config", path}, &out, &errb)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errb.String())
	}
	want := []string{
		path + ":2: log.level",
		path + ":4: smpp.listen",
		path + ":7: tenants[0].scope",
		path + ":8: tenants[0].numbers[0]",
		path + ":11: accounts[0].password",
		path + ":12: accounts[0].tenant",
		path + ":18: routes[0].prefix",
		path + ":19: routes[0].smscs[0]",
	}
	for _, w := range want {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("missing %q in:\n%s", w, errb.String())
		}
	}
}

func TestCheckConfigDefaultIsValid(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", "-config", "../../configs/optgate.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("default config: exit %d\n%s", code, errb.String())
	}
	if !strings.Contains(out.String(), "tenant acme") {
		t.Fatalf("digest: %s", out.String())
	}
}

func TestCheckConfigUnknownKeyAndMissingEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(path, []byte("tenants:\n  - id: acme\n    api_token: ${OPTGATE_TEST_UNSET_VAR}\n    colour: blue\nsimulator: {enabled: true}\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", "-config", path}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{path + ":3: environment variable OPTGATE_TEST_UNSET_VAR is not set", path + ":4: tenants[0].colour: unknown key colour"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("missing %q in:\n%s", w, errb.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 {
		t.Fatalf("no args: %d", code)
	}
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command: %d", code)
	}
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "optgate ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run([]string{"consent", "opt-in", "+15145550100", "-token", "x"}, &out, &errb); code != 2 {
		t.Fatalf("opt-in without evidence: %d", code)
	}
}

// handedOut holds every address freePort returned in this process.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freePort returns a 127.0.0.1 address free a moment ago, for a child
// process to listen on. It never returns one it returned before: the
// addresses of one config are picked before the child listens on any, and
// a port closed by the test can come back from the kernel at once.
func freePort(t *testing.T) string {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
	t.Fatal("no port not handed out before in 100 tries")
	return ""
}

// startOptgate runs bin serve on cfgPath and returns once /healthz at
// httpAddr answers; the caller stops the process.
func startOptgate(t *testing.T, bin, cfgPath, httpAddr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "-config", cfgPath)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return cmd
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatal("gateway did not come up")
	return nil
}

// simulatorConfig writes a config for the binary into dir: the store in
// dir, the simulator as SMSC, free loopback ports and tenant acme with
// apiToken; it returns the file and the HTTP address.
func simulatorConfig(t *testing.T, dir, apiToken string) (cfgPath, httpAddr string) {
	t.Helper()
	httpAddr = freePort(t)
	cfg := fmt.Sprintf(`
store: {dir: %q}
smpp: {listen: %q}
http: {listen: %q, admin_token: binary-admin-token}
simulator: {enabled: true, listen: %q, system_id: optgate, password: simpw}
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: %s, numbers: ["+15145550199"]}
`, filepath.Join(dir, "data"), freePort(t), httpAddr, freePort(t), apiToken)
	cfgPath = filepath.Join(dir, "optgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, httpAddr
}

// TestCrashKeepsAcknowledgedOptOut runs the real binary, records an
// opt-out through the API, SIGKILLs the process as soon as the API said
// "stored", restarts it on the same store and finds the opt-out there.
func TestCrashKeepsAcknowledgedOptOut(t *testing.T) {
	bin := optgateBinary(t)
	dir := t.TempDir()
	cfgPath, httpAddr := simulatorConfig(t, dir, "acme-crash-token")
	start := func() *exec.Cmd { return startOptgate(t, bin, cfgPath, httpAddr) }
	call := func(method, path string) (int, string) {
		return apiCall(t, httpAddr, "acme-crash-token", method, path, "")
	}
	const rounds = 3
	for i := 0; i < rounds; i++ {
		cmd := start()
		rcpt := fmt.Sprintf("+1514555020%d", i)
		code, body := call("POST", "/v1/consent/"+rcpt+"/opt-out")
		if code != 200 || !strings.Contains(body, `"stored":true`) {
			cmd.Process.Kill()
			t.Fatalf("opt-out: %d %s", code, body)
		}
		cmd.Process.Signal(syscall.SIGKILL) // the moment it said stored
		cmd.Wait()
	}
	cmd := start()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	for i := 0; i < rounds; i++ {
		code, body := call("GET", fmt.Sprintf("/v1/consent/+1514555020%d", i))
		if code != 200 || !strings.Contains(body, `"state":"opted_out"`) {
			t.Fatalf("after SIGKILL, opt-out %d lost: %d %s", i, code, body)
		}
	}
}
