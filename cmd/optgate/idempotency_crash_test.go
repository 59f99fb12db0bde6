package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/optgate/optgate/smpp/smpptest"
)

// TestCrashDoesNotSendTwiceWithIdempotencyKey runs the real binary
// against an SMSC in this test, SIGKILLs it while a send with an
// Idempotency-Key waits for the carrier's answer (the submit is at the
// SMSC, so the key's reservation is on disk), restarts it on the same
// store and retries: the retry is told the outcome is unknown, with the
// message id, and nothing is sent again.
func TestCrashDoesNotSendTwiceWithIdempotencyKey(t *testing.T) {
	bin := optgateBinary(t)
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	release := make(chan struct{})
	smsc.SetLatency(func() time.Duration {
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
		return 0
	})
	dir := t.TempDir()
	httpAddr := freePort(t)
	const token = "acme-idem-crash-token"
	cfg := fmt.Sprintf(`
store: {dir: %q}
smpp: {listen: %q}
http: {listen: %q}
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: %s, numbers: ["+15145550199"]}
smscs:
  - {name: carrier, address: %q, system_id: optgate, password: pw, binds: 1, window: 16, timeout: 60s}
routes:
  - {prefix: "+", smscs: [carrier]}
`, filepath.Join(dir, "data"), freePort(t), httpAddr, token, smsc.Addr())
	cfgPath := filepath.Join(dir, "optgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	send := func(key, to string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+httpAddr+"/v1/messages", strings.NewReader(`{"to":"`+to+`","text":"Your interview is at 10:00"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Idempotency-Key", key)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	ready := func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if resp, err := http.Get("http://" + httpAddr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("gateway not ready")
	}
	cmd := startOptgate(t, bin, cfgPath, httpAddr)
	ready()
	go send("crash-key", "+15145550301") // its answer dies with the process
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := smsc.NextSubmit(ctx); err != nil {
		cmd.Process.Kill()
		t.Fatalf("the send did not reach the SMSC: %v", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(release)

	cmd = startOptgate(t, bin, cfgPath, httpAddr)
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	ready()
	code, body := send("crash-key", "+15145550301")
	if code != 409 || !strings.Contains(body, "idempotency_interrupted") || !strings.Contains(body, `"id":"`) {
		t.Fatalf("retry after the crash: %d %s", code, body)
	}
	// A new key sends: the next submit at the SMSC is that one, not a
	// second copy of the first.
	if code, body := send("next-key", "+15145550302"); code != 202 {
		t.Fatalf("new key: %d %s", code, body)
	}
	s, err := smsc.NextSubmit(ctx)
	if err != nil || string(s.PDU.Dest.Addr) != "15145550302" {
		t.Fatalf("next submit at the SMSC: %v %s, want the new key's", err, s.PDU.Dest.Addr)
	}
	if n := smsc.Submits(); n != 2 {
		t.Fatalf("SMSC got %d submits, want 2", n)
	}
}
