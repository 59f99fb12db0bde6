package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestRunUnreachableGateway(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	rep, err := Run(context.Background(), RunConfig{Scenario: "mt-throughput", Duration: 2 * time.Second,
		GatewaySMPP: addr, NoSuppressed: true, Progress: io.Discard, Results: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "cannot connect") {
		t.Fatalf("want a cannot-connect error, got %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %s to fail", el)
	}
	if rep == nil || rep.Error == "" {
		t.Fatal("report does not carry the error")
	}
}

func TestRunUnreachableGatewayHTTP(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err := Run(context.Background(), RunConfig{Scenario: "mo-storm", Duration: 2 * time.Second,
		GatewaySMPP: addr, GatewayHTTP: addr, Progress: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("want an unreachable error, got %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %s to fail", el)
	}
}

func TestRunMissingOptgateBinary(t *testing.T) {
	_, err := Run(context.Background(), RunConfig{Scenario: "mt-throughput", Duration: time.Second, Baseline: false,
		Optgate: "/nonexistent/optgate", NoSuppressed: true, Progress: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/optgate") {
		t.Fatalf("want an error naming the binary, got %v", err)
	}
}

func TestRunOptgateExitsAtOnce(t *testing.T) {
	// /bin/false stands in for an optgate that cannot start (port taken,
	// bad config): the run must fail fast with its output, not hang.
	start := time.Now()
	_, err := Run(context.Background(), RunConfig{Scenario: "mt-throughput", Duration: time.Second,
		Optgate: "/bin/false", NoSuppressed: true, Progress: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("want an exited-early error, got %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("took %s to fail", el)
	}
}

func TestRunBadConfig(t *testing.T) {
	for _, c := range []RunConfig{
		{Scenario: "nope"},
		{Scenario: "mt-throughput", SuppressVia: "carrier-pigeon"},
		{Scenario: "mt-throughput", Gateway: "jasmin"},
		{Scenario: "mt-throughput", SimLatency: "gauss:1ms"},
		{Scenario: "mt-throughput", Suppressed: MaxSuppressed + 1},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	_, err := Run(context.Background(), RunConfig{Scenario: "nope"})
	if !errors.Is(err, ErrUnknownScenario) {
		t.Fatalf("want ErrUnknownScenario, got %v", err)
	}
}

// TestRunPassthroughStub runs mt-throughput and mo-storm with the relay
// standing in for optgate: the scenario machinery without the gateway.
func TestRunPassthroughStub(t *testing.T) {
	for _, sc := range []string{"mt-throughput", "mo-storm", "mixed"} {
		t.Run(sc, func(t *testing.T) {
			dir := t.TempDir()
			rep, err := Run(context.Background(), RunConfig{Scenario: sc, Duration: time.Second, Gateway: "passthrough",
				Baseline: true, NoSuppressed: true, Rate: 2000, MORate: 200, Binds: 2, Window: 32, Progress: io.Discard,
				Results: dir, Timeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteFiles(dir); err != nil {
				t.Fatal(err)
			}
			ph := rep.Phase("passthrough")
			if ph == nil || ph.Rate <= 0 {
				t.Fatalf("no passthrough phase with a rate: %+v", rep.Phases)
			}
			if sc == "mt-throughput" && len(rep.Phases) != 2 {
				t.Fatalf("want a baseline and a gateway phase, got %d", len(rep.Phases))
			}
			if sc != "mt-throughput" && (ph.MO == nil || ph.MO.Acked == 0) {
				t.Fatalf("no MO acked: %+v", ph.MO)
			}
		})
	}
}
