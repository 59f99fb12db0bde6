package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's quick start, as serve prints it, run twice against the
// real binary on the shipped dev config: each run shows 202, then 403 after
// the STOP. Then the README's way to send to a number again (consent
// opt-in with -config) works.
func TestQuickStartLoop(t *testing.T) {
	bin := optgateBinary(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	readme := string(mustRead(t, "../../README.md"))
	if !strings.Contains(readme, tryLoop("127.0.0.1:8080")) {
		t.Fatalf("README's quick start differs from what serve prints:\n%s", tryLoop("127.0.0.1:8080"))
	}
	// the shipped config, on free ports and a fresh store
	dir := t.TempDir()
	httpAddr := freePort(t)
	cfg := string(mustRead(t, "../../configs/optgate.yaml"))
	for old, repl := range map[string]string{"127.0.0.1:8080": httpAddr, "127.0.0.1:2775": freePort(t), "127.0.0.1:2776": freePort(t), "dir: ../data": "dir: ./data"} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("configs/optgate.yaml has no %q", old)
		}
		cfg = strings.ReplaceAll(cfg, old, repl)
	}
	cfgPath := filepath.Join(dir, "optgate.yaml")
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPTGATE_") && !strings.HasPrefix(kv, "ACME_") {
			env = append(env, kv)
		}
	}
	serve := exec.Command(bin, "serve", cfgPath)
	serve.Env = env
	stdout, _ := serve.StdoutPipe()
	serve.Stderr = nil
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { serve.Process.Signal(syscall.SIGTERM); serve.Wait() }()
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Stop with Ctrl-C") {
				banner <- b.String()
				return
			}
		}
		banner <- b.String()
	}()
	var out string
	select {
	case out = <-banner:
	case <-time.After(30 * time.Second):
		t.Fatal("serve printed no banner")
	}
	loop := tryLoop(httpAddr)
	if !strings.Contains(out, loop) {
		t.Fatalf("banner without the loop:\n%s", out)
	}
	code := regexp.MustCompile(`(?m) (\d{3})$`)
	var n string
	for run := 0; run < 2; run++ {
		res, err := exec.Command("bash", "-c", loop+"\necho N=$N").CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, res)
		}
		var codes []string
		for _, m := range code.FindAllStringSubmatch(string(res), -1) {
			codes = append(codes, m[1])
		}
		if len(codes) != 3 || codes[0] != "202" || codes[2] != "403" || !strings.Contains(string(res), "recipient_opted_out") {
			t.Fatalf("run %d: want 202 ... 403, got %v:\n%s", run, codes, res)
		}
		n = regexp.MustCompile(`N=(\+\d+)`).FindStringSubmatch(string(res))[1]
	}
	opt := exec.Command(bin, "consent", "opt-in", "-config", cfgPath, n, "-source", "demo", "-proof", "readme")
	opt.Env = env
	if res, err := opt.CombinedOutput(); err != nil {
		t.Fatalf("consent opt-in: %v\n%s", err, res)
	}
	res, _ := exec.Command("curl", "-s", "-w", " %{http_code}\n", "-XPOST", "http://"+httpAddr+"/v1/messages",
		"-H", "Authorization: Bearer acme-dev-api-token", "-d", `{"to":"`+n+`","text":"Welcome back"}`).CombinedOutput()
	if !strings.HasSuffix(strings.TrimSpace(string(res)), " 202") {
		t.Fatalf("after opt-in: %s", res)
	}
}
