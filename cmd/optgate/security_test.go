package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// peakRSS reads a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestImportSingleLineMemory runs the real binary and posts a 64 MiB
// import that is one line without a newline (issue 13 item 4: it took the
// process from 25 to 568 MiB): the import is refused with the line number
// and the gateway's peak RSS stays bounded.
func TestImportSingleLineMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := optgateBinary(t)
	cfgPath, httpAddr := simulatorConfig(t, dir, "acme-memory-api-token")
	cmd := startOptgate(t, bin, cfgPath, httpAddr)
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	before := peakRSS(t, cmd.Process.Pid)
	{
		req, _ := http.NewRequest("POST", "http://"+httpAddr+"/v1/consent/import?source=crm", strings.NewReader("recipient\n+15145550100\n"))
		req.Header.Set("Authorization", "Bearer acme-memory-api-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		t.Logf("after a small import: %d MiB (status %d)", peakRSS(t, cmd.Process.Pid)>>20, resp.StatusCode)
	}

	const size = 64 << 20
	c, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	go func() { // the server stops reading: write errors are expected
		w := bufio.NewWriterSize(c, 64<<10)
		fmt.Fprintf(w, "POST /v1/consent/import?source=crm HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer acme-memory-api-token\r\n"+
			"Content-Type: text/csv\r\nContent-Length: %d\r\n\r\n", size)
		chunk := bytes.Repeat([]byte("recipient"), 64<<10/9)
		for n := 0; n < size; n += len(chunk) {
			if _, err := w.Write(chunk[:min(len(chunk), size-n)]); err != nil {
				return
			}
		}
		w.Flush()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to the 64 MiB line: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	peak := peakRSS(t, cmd.Process.Pid)
	t.Logf("peak RSS: %d MiB before, %d MiB after the 64 MiB line", before>>20, peak>>20)
	if resp.StatusCode != 400 || !strings.Contains(string(body), `"line_too_long"`) || !strings.Contains(string(body), `"line":1`) {
		t.Fatalf("64 MiB single line: %d %s", resp.StatusCode, body)
	}
	if peak > 150<<20 {
		t.Fatalf("peak RSS %d MiB after a 64 MiB single-line import, want under 150 MiB", peak>>20)
	}
}

// TestCheckConfigRefusesPublicDevDefaults: the default config on a public
// listener is refused, each dev secret and mock named with its line,
// unless allow_insecure_defaults.
func TestCheckConfigRefusesPublicDevDefaults(t *testing.T) {
	src, err := os.ReadFile("../../configs/optgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(src), "  listen: 127.0.0.1:8080", "  listen: 0.0.0.0:8080", 1)
	if text == string(src) {
		t.Fatal("the default config's http.listen moved: update the test")
	}
	path := filepath.Join(t.TempDir(), "public.yaml")
	os.WriteFile(path, []byte(text), 0o644)
	lineOf := func(s string) int {
		for i, l := range strings.Split(text, "\n") {
			if strings.Contains(l, s) {
				return i + 1
			}
		}
		t.Fatalf("no %q in the default config", s)
		return 0
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check-config", "-config", path}, &out, &errb); code != 1 {
		t.Fatalf("public listener with dev defaults: exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, w := range []string{
		fmt.Sprintf("%s:%d: http.admin_token", path, lineOf("admin_token:")),
		fmt.Sprintf("%s:%d: tenants[0].api_token", path, lineOf("api_token:")),
		fmt.Sprintf("%s:%d: accounts[0].password", path, lineOf("acmepw")),
		fmt.Sprintf("%s:%d: simulator.enabled", path, lineOf("enabled: true")),
		"whatsapp_simulator.enabled",
		"0.0.0.0:8080",
		"allow_insecure_defaults",
	} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("missing %q in:\n%s", w, errb.String())
		}
	}
	os.WriteFile(path, []byte(text+"\nallow_insecure_defaults: true\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"check-config", "-config", path}, &out, &errb); code != 0 {
		t.Fatalf("with allow_insecure_defaults: exit %d\n%s", code, errb.String())
	}
}
