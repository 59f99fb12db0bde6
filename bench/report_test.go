package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

func TestReportFiles(t *testing.T) {
	h := newHist()
	for i := int64(1); i <= 1000; i++ {
		h.RecordValue(i)
	}
	rep := &Report{Scenario: "mt-throughput", Started: time.Now(), Machine: ThisMachine(), Config: map[string]any{"x": 1}}
	ph := &Phase{Name: "optgate", Path: "load → optgate → simulator", Seconds: 3, Rate: 12345,
		Load:    &Snapshot{Sent: 10, Accepted: 9, Refused: 1, Statuses: map[string]int64{statusName(0x401): 1}},
		Latency: Stats(h), Figures: map[string]float64{"ratio_to_passthrough": 0.5}}
	for i := 1; i <= 3; i++ {
		ph.Series = append(ph.Series, Sample{T: float64(i), Answered: 1000 * float64(i), P50: 0.5, P99: 1})
	}
	rep.Phases = append(rep.Phases, ph)
	rep.Goals = append(rep.Goals, newGoal("mt-throughput msgs/s", GoalMTThroughput, ph.Rate, "msgs/s", false),
		newGoal("p99", 2, 1, "ms", true))
	dir := filepath.Join(t.TempDir(), "res")
	if err := rep.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	testutil.RequireEqual(t, back.Phases[0].Rate, 12345.0, "rate in JSON")
	testutil.RequireEqual(t, back.Phases[0].Latency.Count, int64(1000), "latency count")
	testutil.RequireEqual(t, back.Goals[0].Met, false, "goal missed")
	testutil.RequireEqual(t, back.Goals[1].Met, true, "ceiling met")
	png, err := os.ReadFile(filepath.Join(dir, "chart.png"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
		t.Fatalf("chart.png is not a PNG (%d bytes)", len(png))
	}
	sum, _ := os.ReadFile(filepath.Join(dir, "summary.txt"))
	for _, want := range []string{"12,345 msgs/s", "MISSED", "0x00000401", "p99"} {
		if !strings.Contains(string(sum), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
}

func TestNum(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 3: "3", 0.25: "0.250", 1234567: "1,234,567", -1500: "-1,500", 999: "999"} {
		testutil.RequireEqual(t, num(v), want, "num")
	}
}
