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
// something to flush), removes the store directory and sends SIGTERM:
// Badger's close retries its memtable flush forever, and optgate must still
// exit within the bound plus slack, with status 1 and a log line saying why.
func TestShutdownBoundedWhenStoreVanishes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "optgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	httpAddr := freePort(t)
	data := filepath.Join(dir, "data")
	cfg := fmt.Sprintf(`
store: {dir: %q}
shutdown_timeout: 3s
smpp: {listen: %q}
http: {listen: %q, admin_token: shutdown-admin-token}
simulator: {enabled: true, listen: %q, system_id: optgate, password: simpw}
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: acme-shutdown-token, numbers: ["+15145550199"]}
`, data, freePort(t), httpAddr, freePort(t))
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
	post := func(path string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+httpAddr+path, nil)
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
		code, err := post("/v1/consent/+15145550301/opt-out")
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
		if log := stderr.String(); !strings.Contains(log, "shutdown timed out") || !strings.Contains(log, "closing the stores") {
			t.Fatalf("exit status 1 after %s but no log line naming the reason:\n%s", took, log)
		}
		t.Logf("exited 1 after %s", took.Round(time.Millisecond))
	case <-time.After(bound + slack):
		t.Fatalf("still running %s after SIGTERM with shutdown_timeout %s\n%s", bound+slack, bound, stderr.String())
	}
}
