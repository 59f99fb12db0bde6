package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// lockedBuffer collects a child's stderr while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestShutdownBoundedWhenStoreVanishes runs the real binary with
// shutdown_timeout 3s, records an opt-out (so both Badger memtables have
// something to flush), removes the store directory and sends SIGTERM. It
// must exit within the bound plus slack, with status 1 and a log line
// saying why, on both paths: the store probe has not run since (probing
// once an hour), so the close is tried and hangs (Badger retries its
// memtable flush every second, forever) and is abandoned at the bound; or
// the probe saw the directory vanish (/readyz 503), so the stores are left
// open without trying.
func TestShutdownBoundedWhenStoreVanishes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "optgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	t.Run("close hangs", func(t *testing.T) {
		vanishAndStop(t, bin, "1h", false, "shutdown timed out", "closing the stores")
	})
	t.Run("probe saw it", func(t *testing.T) {
		vanishAndStop(t, bin, "50ms", true, "stores left open", "store files missing")
	})
}

func vanishAndStop(t *testing.T, bin, probe string, waitUnready bool, wantLog ...string) {
	dir := t.TempDir()
	httpAddr := freePort(t)
	data := filepath.Join(dir, "data")
	cfg := fmt.Sprintf(`
store: {dir: %q, probe_interval: %s}
shutdown_timeout: 3s
smpp: {listen: %q}
http: {listen: %q, admin_token: shutdown-admin-token}
simulator: {enabled: true, listen: %q, system_id: optgate, password: simpw}
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: acme-shutdown-token, numbers: ["+15145550199"]}
`, data, probe, freePort(t), httpAddr, freePort(t))
	cfgPath := filepath.Join(dir, "optgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "-config", cfgPath)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	call := func(method, path string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+httpAddr+path, nil)
		req.Header.Set("Authorization", "Bearer acme-shutdown-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, err := call("POST", "/v1/consent/+15145550301/opt-out")
		if err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not record an opt-out: %d %v\n%s", code, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	for waitUnready {
		if code, _ := call("GET", "/readyz"); code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 503 after the store vanished\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	const bound, slack = 3 * time.Second, 7 * time.Second
	select {
	case err := <-exited:
		took := time.Since(sent)
		exited <- err // for the cleanup
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit after %s: %v, want status 1\n%s", took, err, stderr.String())
		}
		log := stderr.String()
		for _, w := range wantLog {
			if !strings.Contains(log, w) {
				t.Fatalf("exit status 1 after %s but no log line with %q:\n%s", took, w, log)
			}
		}
		t.Logf("exited 1 after %s", took.Round(time.Millisecond))
	case <-time.After(bound + slack):
		t.Fatalf("still running %s after SIGTERM with shutdown_timeout %s\n%s", bound+slack, bound, stderr.String())
	}
}
