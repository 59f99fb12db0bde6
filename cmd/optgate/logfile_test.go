package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pollFor polls fn until it is true or total has passed.
func pollFor(t *testing.T, total time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(total)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", total, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileHas(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(b), s)
}

// SIGHUP reopens log.file: after logrotate-style renaming, new lines land
// in a new file at the configured path and none in the renamed one. A
// gateway logging to stderr survives SIGHUP (Go's default would end it).
func TestSIGHUPReopensLogFile(t *testing.T) {
	bin := buildOptgate(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "optgate.log")
	g := startChild(t, bin, filepath.Join(dir, "data"), fmt.Sprintf("log: {file: %q}\n", logPath))
	pollFor(t, 10*time.Second, "no start-up line in the log file", func() bool { return fileHas(logPath, "optgate started") })
	if g.stderr.String() != "" {
		t.Fatalf("logs went to stderr too: %s", g.stderr.String())
	}
	rotated := logPath + ".1"
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	g.cmd.Process.Signal(syscall.SIGHUP)
	pollFor(t, 10*time.Second, "no new log file after SIGHUP", func() bool { return fileHas(logPath, "log file reopened") })
	before, _ := os.ReadFile(rotated)
	g.stop()
	if g.cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("exit %d", g.cmd.ProcessState.ExitCode())
	}
	if !fileHas(logPath, "shutting down") {
		t.Fatal("the shutdown lines are not in the new file")
	}
	after, _ := os.ReadFile(rotated)
	if string(after) != string(before) || strings.Contains(string(after), "shutting down") {
		t.Fatalf("the rotated file got lines after SIGHUP:\n%s", after[len(before):])
	}

	// stderr logging: SIGHUP is logged and the gateway keeps serving.
	g2 := startChild(t, bin, filepath.Join(dir, "data2"), "")
	g2.cmd.Process.Signal(syscall.SIGHUP)
	pollFor(t, 10*time.Second, "SIGHUP not acknowledged", func() bool { return strings.Contains(g2.stderr.String(), "nothing to reopen") })
	if code, _ := g2.call("GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("after SIGHUP: /healthz %d", code)
	}
}
