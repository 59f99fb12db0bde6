package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashKeepsAcknowledgedSTOP: a STOP a carrier delivered over SMPP (the
// built-in simulator is the SMSC) and that got ESME_ROK survives a SIGKILL
// the moment it was acknowledged: after the restart a send to the handset,
// written in E.164 or nationally, is refused.
func TestCrashKeepsAcknowledgedSTOP(t *testing.T) {
	bin := optgateBinary(t)
	dir := t.TempDir()
	cfgPath, httpAddr := simulatorConfig(t, dir, "acme-crash-token")
	call := func(method, path, body string) (int, string) {
		return apiCall(t, httpAddr, "acme-crash-token", method, path, body)
	}
	const rounds = 3
	for i := 0; i < rounds; i++ {
		cmd := startOptgate(t, bin, cfgPath, httpAddr)
		var code int
		var body string
		deadline := time.Now().Add(20 * time.Second)
		for { // the simulator's bind comes up after /healthz
			code, body = call("POST", "/v1/simulator/mo", fmt.Sprintf(`{"from":"+1514555030%d","to":"+15145550199","text":"STOP"}`, i))
			if code == 200 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if code != 200 || !strings.Contains(body, "ESME_ROK") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("STOP: %d %s", code, body)
		}
		cmd.Process.Signal(syscall.SIGKILL) // the moment the SMSC had ESME_ROK
		cmd.Wait()
	}
	cmd := startOptgate(t, bin, cfgPath, httpAddr)
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	for i := 0; i < rounds; i++ {
		for _, to := range []string{fmt.Sprintf("+1514555030%d", i), fmt.Sprintf("514555030%d", i)} {
			code, body := call("POST", "/v1/messages", `{"to":"`+to+`","text":"after the crash"}`)
			if code == 202 || !strings.Contains(body, "recipient_opted_out") {
				t.Fatalf("send to %s after SIGKILL: %d %s, want recipient_opted_out", to, code, body)
			}
		}
	}
}

// apiCall makes one HTTP API request to the binary with a bearer token and
// returns the status and body.
func apiCall(t *testing.T, httpAddr, token, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+httpAddr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
