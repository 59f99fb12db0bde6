package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The smoke tests run the real thing for a few seconds: cmd/optgate and
// cmd/optgate-bench built into a temp folder, then `optgate-bench run
// SCENARIO` as a child process, checked through its report.json.

var (
	buildOnce            sync.Once
	buildDir             string
	optgateBin, benchBin string
	optgateErr, benchErr string
)

func buildBinaries(t *testing.T) (optgate, bench string) {
	t.Helper()
	buildOnce.Do(func() {
		var err error
		buildDir, err = os.MkdirTemp("", "optgate-bench-smoke-")
		if err != nil {
			benchErr = err.Error()
			return
		}
		build := func(out, pkg string) string {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
			cmd.Dir = ".."
			if b, err := cmd.CombinedOutput(); err != nil {
				return strings.TrimSpace(err.Error() + "\n" + string(b))
			}
			return ""
		}
		optgateBin, benchBin = filepath.Join(buildDir, "optgate"), filepath.Join(buildDir, "optgate-bench")
		benchErr = build(benchBin, "./cmd/optgate-bench")
		optgateErr = build(optgateBin, "./cmd/optgate")
	})
	if benchErr != "" {
		t.Fatalf("cmd/optgate-bench does not build: %s", benchErr)
	}
	if optgateErr != "" {
		t.Skipf("skipping: cmd/optgate does not build yet: %s", optgateErr)
	}
	return optgateBin, benchBin
}

// runScenario runs optgate-bench run SCENARIO and returns its report.
func runScenario(t *testing.T, scenario string, extra ...string) *Report {
	t.Helper()
	optgate, bench := buildBinaries(t)
	dur := "3s"
	if testing.Short() {
		dur = "2s"
	}
	res := filepath.Join(t.TempDir(), "results")
	args := append([]string{"run", scenario, "-duration", dur, "-suppressed", "10000", "-optgate", optgate,
		"-results", res, "-timeout", "2m"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bench, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("optgate-bench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("optgate-bench %s:\n%s", strings.Join(args, " "), out)
	b, err := os.ReadFile(filepath.Join(res, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"summary.txt", "chart.png"} {
		if _, err := os.Stat(filepath.Join(res, f)); err != nil {
			t.Error(err)
		}
	}
	return &rep
}

func TestSmokeMTThroughput(t *testing.T) {
	rep := runScenario(t, "mt-throughput")
	ph := rep.Phase("optgate")
	if ph == nil || ph.Load == nil {
		t.Fatalf("no optgate phase: %+v", rep.Phases)
	}
	if ph.Load.Accepted == 0 || ph.Rate <= 0 {
		t.Fatalf("nothing accepted through optgate: %+v", ph.Load)
	}
	// 10% of the traffic goes to the 10,000 preloaded opt-outs.
	if ph.Load.Statuses[statusName(0x401)] == 0 {
		t.Fatalf("no submit refused as opted out: %+v", ph.Load.Statuses)
	}
	if ph.Load.Errors != 0 || ph.Load.Timeouts != 0 {
		t.Fatalf("errors %d, timeouts %d", ph.Load.Errors, ph.Load.Timeouts)
	}
	base := rep.Phase("passthrough")
	if base == nil {
		t.Fatal("no passthrough baseline")
	}
	// The relay runs in its own process, measured like optgate.
	if !strings.Contains(base.Path, "its own process") || base.Figures["cpu_cores_relay"] <= 0 {
		t.Fatalf("passthrough not through a relay process: path %q, figures %v", base.Path, base.Figures)
	}
	if base.Load == nil || base.Load.Accepted == 0 || base.Load.Errors != 0 {
		t.Fatalf("passthrough load: %+v", base.Load)
	}
}

func TestSmokeMOStorm(t *testing.T) {
	rep := runScenario(t, "mo-storm")
	ph := rep.Phase("optgate")
	if ph == nil || ph.MO == nil {
		t.Fatalf("no optgate MO phase: %+v", rep.Phases)
	}
	if ph.MO.Acked == 0 || ph.MO.Confirmations == 0 {
		t.Fatalf("acked %d, confirmations %d", ph.MO.Acked, ph.MO.Confirmations)
	}
	if ph.MO.Errors != 0 {
		t.Fatalf("MO errors %d", ph.MO.Errors)
	}
}
