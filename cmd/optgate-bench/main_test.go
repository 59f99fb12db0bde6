package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

func TestBadInput(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, exitUsage, "usage"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"run"}, exitUsage, "usage: optgate-bench run SCENARIO"},
		{[]string{"run", "nope"}, exitUsage, "unknown scenario"},
		{[]string{"run", "mt-throughput", "-duration", "banana"}, exitUsage, "invalid value"},
		{[]string{"run", "mt-throughput", "-gateway-smpp", "10.0.0.1:2775"}, exitUsage, "not on loopback"},
		{[]string{"run", "mt-throughput", "-suppress-via", "fax"}, exitUsage, "suppress-via"},
		{[]string{"smsc", "-latency", "gauss:1ms"}, exitUsage, "unknown kind"},
		{[]string{"smsc", "-listen", "0.0.0.0:2776"}, exitUsage, "not on loopback"},
		{[]string{"load", "-duration", "0"}, exitUsage, "set -duration or -count"},
		{[]string{"load", "-proto", "carrier-pigeon"}, exitUsage, "want smpp or http"},
		{[]string{"smsc", "-listen", taken.Addr().String(), "-duration", "1s"}, exitFailed, "cannot listen"},
		{[]string{"run", "mt-throughput", "-proto", "fax"}, exitUsage, "want smpp or http"},
		{[]string{"run", "passthrough", "-relay", "telepathy"}, exitUsage, "want process or inproc"},
		{[]string{"relay", "-listen", "0.0.0.0:2777"}, exitUsage, "not on loopback"},
		{[]string{"relay", "-upstream", "10.0.0.1:2776"}, exitUsage, "not on loopback"},
		{[]string{"relay", "-duration", "0"}, exitUsage, "-duration must be positive"},
		{[]string{"relay", "-listen", taken.Addr().String(), "-duration", "1s"}, exitFailed, "relay listen"},
		{[]string{"load", "-proto", "http", "-http", closed, "-duration", "1s"}, exitFailed, "cannot reach"},
		{[]string{"load", "-addr", closed, "-count", "10"}, exitFailed, "cannot connect"},
		{[]string{"run", "mt-throughput", "-gateway-smpp", closed, "-suppressed", "0", "-duration", "1s", "-results", ""}, exitFailed, "cannot connect"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			start := time.Now()
			args := tt.args
			for i, a := range args {
				if a == "-results" && i+1 < len(args) && args[i+1] == "" {
					args = append(append([]string{}, args[:i+1]...), t.TempDir())
				}
			}
			code := run(args, &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String()+errb.String(), tt.msg) {
				t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", tt.msg, out.String(), errb.String())
			}
			if el := time.Since(start); el > 15*time.Second {
				t.Fatalf("took %s", el)
			}
		})
	}
}

// `run passthrough` starts this binary (os.Executable) as its relay; in
// tests that is the test binary, which then acts as optgate-bench.
func TestMain(m *testing.M) {
	if os.Getenv("OPTGATE_BENCH_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Setenv("OPTGATE_BENCH_AS_MAIN", "1")
	lc := testutil.StartLeakCheck()
	os.Exit(lc.Exit(m.Run()))
}

// chart redraws a stored report without running anything; bad input is an
// error, not a crash.
func TestChartCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "k.png")
	var o, e bytes.Buffer
	if code := run([]string{"chart", "../../docs/benchmarks/kannel.json", "-o", out}, &o, &e); code != exitOK {
		t.Fatalf("exit %d: %s", code, e.String())
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("no PNG at %s: %v", out, err)
	}
	if code := run([]string{"chart"}, &o, &e); code != exitUsage {
		t.Fatalf("no report: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte("{not json"), 0o644)
	if code := run([]string{"chart", bad}, &o, &e); code != exitFailed {
		t.Fatalf("bad report: exit %d", code)
	}
}
