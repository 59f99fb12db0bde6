package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/cmd/optgate/simulators"
	"github.com/optgate/optgate/gateway"
)

// syncBuffer is a bytes.Buffer safe for the gateway's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// log.format: json makes every log line of the gateway, wired as serve
// wires it, one JSON object, and no line repeats a key (component=consent
// was written twice).
func TestLogFormatJSON(t *testing.T) {
	dir := t.TempDir()
	y := fmt.Sprintf(`
store: {dir: %q}
log: {format: json, level: debug}
smpp: {listen: "127.0.0.1:0"}
http: {listen: "127.0.0.1:0"}
simulator: {enabled: true, listen: %q, system_id: optgate, password: simpw}
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: acme-log-api-token, numbers: ["+15145550199"]}
`, filepath.Join(dir, "data"), freePort(t))
	cfg, err := gateway.ParseConfig([]byte(y), "log.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	log := newLogger(cfg, &buf)
	sl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	opt := gateway.Options{Logger: log, SMPPListener: sl, HTTPListener: hl}
	simulators.Wire(&opt)
	g, err := gateway.New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	// wait (bounded) for the binds to the simulator: their records carry
	// the SMSC's name and address
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(buf.String(), `"msg":"smpp: bound"`); {
		if time.Now().After(deadline) {
			t.Fatalf("no bind logged:\n%s", buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 3 {
		t.Fatalf("too few log lines: %q", out)
	}
	sawConsent := false
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q (%v)", line, err)
		}
		if m["msg"] == nil || m["level"] == nil || m["time"] == nil {
			t.Fatalf("JSON line without msg/level/time: %q", line)
		}
		if k := duplicateKey(line); k != "" {
			t.Errorf("key %q written twice: %s", k, line)
		}
		if m["msg"] == "consent store open" {
			sawConsent = true
			if m["component"] != "consent" {
				t.Errorf("consent line without component=consent: %s", line)
			}
		}
	}
	if !sawConsent {
		t.Fatalf("no consent store line in:\n%s", out)
	}
}

// duplicateKey returns a top-level key that a JSON object line repeats.
func duplicateKey(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil { // {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := tok.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return ""
		}
	}
	return ""
}

// Durations are logged as strings ("1.5s"), not as nanosecond counts.
func TestLogDurationsAsStrings(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var buf syncBuffer
		cfg := &gateway.Config{Log: gateway.LogConfig{Level: "info", Format: format}}
		newLogger(cfg, &buf).Info("slow", "took", 1500*time.Millisecond)
		if !strings.Contains(buf.String(), "1.5s") {
			t.Errorf("%s: %s", format, buf.String())
		}
	}
}
