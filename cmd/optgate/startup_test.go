package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

	"github.com/optgate/optgate/internal/testutil"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// optgateBinary builds ./cmd/optgate once per test run and returns its path.
func optgateBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "optgate-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "optgate")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	lc := testutil.StartLeakCheck()
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(lc.Exit(code))
}

// instance is a configuration for a child optgate on free ports.
type instance struct {
	dir, cfgPath, httpAddr string
}

// newInstance writes a config (extra YAML appended under the tenant) in a
// fresh directory.
func newInstance(t *testing.T, dataDir, tenant, extra string) *instance {
	t.Helper()
	dir := t.TempDir()
	if dataDir == "" {
		dataDir = filepath.Join(dir, "data")
	}
	if tenant == "" {
		tenant = `{id: acme, brand: Acme, help_contact: help@acme.example, api_token: acme-start-token, numbers: ["+15145550199"]}`
	}
	in := &instance{dir: dir, cfgPath: filepath.Join(dir, "optgate.yaml"), httpAddr: freePort(t)}
	cfg := fmt.Sprintf(`
store: {dir: %q}
smpp: {listen: %q}
http: {listen: %q, admin_token: start-admin-token}
simulator: {enabled: true, listen: %q, system_id: optgate, password: simpw}
tenants:
  - %s
%s`, dataDir, freePort(t), in.httpAddr, freePort(t), tenant, extra)
	if err := os.WriteFile(in.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

// start runs `optgate serve` on the instance and returns the command and
// its combined output.
func (in *instance) start(t *testing.T) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(optgateBinary(t), "serve", "-config", in.cfgPath)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
	return cmd, out
}

// up polls /healthz until the instance answers or the process exits.
func (in *instance) up(t *testing.T, cmd *exec.Cmd, out *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + in.httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway did not come up:\n%s", out.String())
}

// runToExit runs `optgate serve` and waits (bounded) for it to exit,
// returning the exit status and output.
func (in *instance) runToExit(t *testing.T) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, optgateBinary(t), "serve", "-config", in.cfgPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("run: %v\n%s", err, out.String())
	return 0, ""
}

func requireNoPanic(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
		t.Fatalf("start-up panicked:\n%s", out)
	}
}

// A second optgate on a data directory in use fails with exit 1 and a line
// naming the directory and the process holding it, never a panic.
func TestServeDataDirLocked(t *testing.T) {
	first := newInstance(t, "", "", "")
	cmd, out := first.start(t)
	first.up(t, cmd, out)
	data := filepath.Join(first.dir, "data")
	second := newInstance(t, data, "", "")
	setLockWait(t, second, "300ms")
	code, msg := second.runToExit(t)
	requireNoPanic(t, msg)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, msg)
	}
	i := strings.Index(msg, "cannot start")
	if i < 0 {
		t.Fatalf("no error line:\n%s", msg)
	}
	for _, want := range []string{data, fmt.Sprintf("held by pid %d", cmd.Process.Pid), "in use"} {
		if !strings.Contains(msg[i:], want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
}

// A restart right after a SIGKILL of the first instance (what a supervisor
// does) takes the store once the dying process lets it go.
func TestServeRestartRightAfterSIGKILL(t *testing.T) {
	in := newInstance(t, "", "", "")
	for i := 0; i < 3; i++ {
		cmd, out := in.start(t)
		in.up(t, cmd, out)
		cmd.Process.Signal(syscall.SIGKILL)
		// no Wait: the next instance starts while this one may still be exiting
		next, nout := in.start(t)
		in.up(t, next, nout)
		requireNoPanic(t, nout.String())
		cmd.Wait()
		next.Process.Signal(syscall.SIGTERM)
		if err := next.Wait(); err != nil {
			t.Fatalf("restart %d: %v\n%s", i, err, nout.String())
		}
	}
}

// Consent-level configuration errors found when the stores open (a tenant
// without a brand, a reply template longer than one segment) end serve with
// exit 1 and the cause, never a panic.
func TestServeBadConsentConfig(t *testing.T) {
	for name, tc := range map[string]struct{ tenant, want string }{
		"no brand": {`{id: acme, help_contact: help@acme.example, api_token: acme-start-token}`, "tenants[0].brand"},
		"long template": {`{id: acme, brand: Acme, help_contact: help@acme.example, api_token: acme-start-token, templates: {en: {help: "` +
			strings.Repeat("Help text that goes on. ", 10) + `"}}}`, "tenants[0].templates.en.help"},
	} {
		t.Run(name, func(t *testing.T) {
			in := newInstance(t, "", tc.tenant, "")
			code, msg := in.runToExit(t)
			requireNoPanic(t, msg)
			if code != 1 || !strings.Contains(msg, tc.want) {
				t.Fatalf("exit %d, want 1 and %q:\n%s", code, tc.want, msg)
			}
		})
	}
}

// A port in use ends serve with exit 1 naming the address; the stores it
// opened are closed (a second try on the same directory starts).
func TestServePortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, "", "", "")
	cfg := strings.Replace(string(mustRead(t, in.cfgPath)), in.httpAddr, ln.Addr().String(), 1)
	os.WriteFile(in.cfgPath, []byte(cfg), 0o644)
	code, msg := in.runToExit(t)
	requireNoPanic(t, msg)
	if code != 1 || !strings.Contains(msg, ln.Addr().String()) || !strings.Contains(msg, "address already in use") {
		t.Fatalf("exit %d, want 1 naming %s:\n%s", code, ln.Addr(), msg)
	}
	ln.Close()
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setLockWait sets store.lock_wait in an instance's config.
func setLockWait(t *testing.T, in *instance, d string) {
	t.Helper()
	cfg := strings.Replace(string(mustRead(t, in.cfgPath)), "store: {dir: ", "store: {lock_wait: "+d+", dir: ", 1)
	os.WriteFile(in.cfgPath, []byte(cfg), 0o644)
}
