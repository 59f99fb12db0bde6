package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Report is the outcome of one run: its phases, the goals checked and the
// machine it ran on. It is written as report.json, summary.txt and
// chart.png.
type Report struct {
	Scenario string         `json:"scenario"`
	Started  time.Time      `json:"started"`
	Seconds  float64        `json:"seconds"` // wall time of the whole run
	Machine  Machine        `json:"machine"`
	Config   map[string]any `json:"config"`
	Phases   []*Phase       `json:"phases"`
	Goals    []Goal         `json:"goals,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

// Phase is one measured stretch of a run: load through one path.
type Phase struct {
	Name    string  `json:"name"` // e.g. "passthrough", "optgate", "direct", "kannel"
	Path    string  `json:"path"` // e.g. "load → optgate → simulator"
	Seconds float64 `json:"seconds"`
	// Rate is the phase's headline figure in messages a second (answered
	// submits for MT phases, acknowledged MOs for MO phases).
	Rate      float64            `json:"rate"`
	Load      *Snapshot          `json:"load,omitempty"`
	Latency   *LatencyStats      `json:"latency,omitempty"`
	MO        *MOStats           `json:"mo,omitempty"`
	Simulator *SimStats          `json:"simulator,omitempty"`
	Figures   map[string]float64 `json:"figures,omitempty"` // other named figures (msgs/s, ratios)
	Series    []Sample           `json:"series"`
}

// LatencyStats summarizes a histogram in milliseconds.
type LatencyStats struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// Stats summarizes h (recorded in microseconds).
func Stats(h *hdrhistogram.Histogram) *LatencyStats {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return &LatencyStats{Count: h.TotalCount(), Mean: h.Mean() / 1000, P50: ms(h.ValueAtQuantile(50)),
		P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())}
}

// MOStats are the MO side of a phase.
type MOStats struct {
	Sent          int64         `json:"sent"`
	Acked         int64         `json:"acked"`
	Refused       int64         `json:"refused"`
	Errors        int64         `json:"errors"`
	Confirmations int64         `json:"confirmations"` // replies the simulator received for handsets
	AckedRate     float64       `json:"acked_per_s"`
	ConfirmRate   float64       `json:"confirmations_per_s"`
	Latency       *LatencyStats `json:"deliver_sm_latency,omitempty"`
}

// SimStats are the simulator's counters over a phase.
type SimStats struct {
	Submits   int64 `json:"submits"`
	Receipts  int64 `json:"receipts_acked"`
	Throttled int64 `json:"throttled"`
}

// Sample is one second of a phase. Counts are per second.
type Sample struct {
	T             float64 `json:"t"` // seconds since the phase started
	Answered      float64 `json:"answered"`
	Accepted      float64 `json:"accepted"`
	Refused       float64 `json:"refused"`
	Errors        float64 `json:"errors"`
	Receipts      float64 `json:"receipts"`
	SimSubmits    float64 `json:"sim_submits"`
	MOAcked       float64 `json:"mo_acked"`
	Confirmations float64 `json:"confirmations"`
	P50           float64 `json:"p50_ms"`
	P99           float64 `json:"p99_ms"`
}

// Goal is one target of the issue checked against a measured figure.
type Goal struct {
	Name     string  `json:"name"`
	Target   float64 `json:"target"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	// AtMost is true for ceilings (latency) and false for floors.
	AtMost bool   `json:"at_most,omitempty"`
	Met    bool   `json:"met"`
	Detail string `json:"detail,omitempty"`
}

func newGoal(name string, target, measured float64, unit string, atMost bool) Goal {
	g := Goal{Name: name, Target: target, Measured: measured, Unit: unit, AtMost: atMost}
	if atMost {
		g.Met = measured <= target
		if !g.Met {
			g.Detail = fmt.Sprintf("missed by %s %s (%.0f%% over)", fig(unit, measured-target), unit, 100*(measured-target)/target)
		}
	} else {
		g.Met = measured >= target
		if !g.Met {
			g.Detail = fmt.Sprintf("missed by %s %s (%.0f%% of target)", fig(unit, target-measured), unit, 100*measured/target)
		}
	}
	return g
}

// ThisMachine describes the running machine.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// Phase returns the phase named name, or nil.
func (r *Report) Phase(name string) *Phase {
	for _, p := range r.Phases {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// GoalsMet reports whether every goal was met.
func (r *Report) GoalsMet() bool {
	for _, g := range r.Goals {
		if !g.Met {
			return false
		}
	}
	return true
}

// WriteSummary writes the human summary.
func (r *Report) WriteSummary(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "optgate-bench %s — %s, %d CPUs (%s), %s\n", r.Scenario, r.Started.Format(time.RFC3339),
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.GoVersion)
	if r.Error != "" {
		fmt.Fprintf(bw, "ERROR: %s\n", r.Error)
	}
	for _, p := range r.Phases {
		fmt.Fprintf(bw, "\n[%s] %s, %.1fs\n", p.Name, p.Path, p.Seconds)
		fmt.Fprintf(bw, "  rate            %s msgs/s\n", num(p.Rate))
		if s := p.Load; s != nil {
			fmt.Fprintf(bw, "  sent            %d\n  accepted        %d\n  refused         %d\n", s.Sent, s.Accepted, s.Refused)
			for _, k := range sortedKeys(s.Statuses) {
				fmt.Fprintf(bw, "    %-30s %d\n", k, s.Statuses[k])
			}
			fmt.Fprintf(bw, "  errors          %d\n  timeouts        %d\n", s.Errors, s.Timeouts)
			if s.Receipts > 0 || s.ReceiptsMatched > 0 {
				fmt.Fprintf(bw, "  receipts        %d (matched %d)\n", s.Receipts, s.ReceiptsMatched)
			}
			if s.MOs > 0 {
				fmt.Fprintf(bw, "  MOs received    %d\n", s.MOs)
			}
		}
		if m := p.MO; m != nil {
			fmt.Fprintf(bw, "  MO sent         %d\n  MO acked        %d (%s/s)\n  MO refused      %d\n  MO errors       %d\n  confirmations   %d (%s/s)\n",
				m.Sent, m.Acked, num(m.AckedRate), m.Refused, m.Errors, m.Confirmations, num(m.ConfirmRate))
			if m.Latency != nil {
				fmt.Fprintf(bw, "  deliver_sm rtt  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms\n", m.Latency.P50, m.Latency.P99, m.Latency.P999)
			}
		}
		if s := p.Simulator; s != nil {
			fmt.Fprintf(bw, "  simulator       %d submits, %d receipts acked, %d throttled\n", s.Submits, s.Receipts, s.Throttled)
		}
		if l := p.Latency; l != nil {
			fmt.Fprintf(bw, "  latency         p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms (n=%d)\n",
				l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
		}
		for _, k := range sortedKeys(p.Figures) {
			fmt.Fprintf(bw, "  %-15s %s\n", k, fig(k, p.Figures[k]))
		}
	}
	if len(r.Goals) > 0 {
		fmt.Fprintf(bw, "\nGoals\n")
		for _, g := range r.Goals {
			mark := "MET   "
			if !g.Met {
				mark = "MISSED"
			}
			op := "≥"
			if g.AtMost {
				op = "≤"
			}
			fmt.Fprintf(bw, "  %s %-34s %s %s (target %s %s)", mark, g.Name, fig(g.Unit, g.Measured), g.Unit, op, fig(g.Unit, g.Target))
			if g.Detail != "" {
				fmt.Fprintf(bw, " — %s", g.Detail)
			}
			fmt.Fprintln(bw)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(bw, "note: %s\n", n)
	}
	return bw.Flush()
}

// fig formats a figure named (or in a unit) ending in "ms" or "×" with
// decimals, others as num does.
func fig(name string, v float64) string {
	if strings.HasSuffix(name, "ms") || strings.HasPrefix(name, "cpu_cores") || strings.HasSuffix(name, "×") || strings.HasPrefix(name, "ratio") || strings.HasSuffix(name, "seconds") {
		return fmt.Sprintf("%.3f", v)
	}
	return num(v)
}

// num formats a figure with thousands separators, or three decimals below 10.
func num(v float64) string {
	if v != v {
		return "NaN"
	}
	if v < 10 && v > -10 && v != float64(int64(v)) {
		return fmt.Sprintf("%.3f", v)
	}
	neg := v < 0
	if neg {
		v = -v
	}
	s := thousands(fmt.Sprintf("%.0f", v))
	if neg {
		return "-" + s
	}
	return s
}

// thousands puts a comma between each group of three digits of an
// unsigned integer's digits.
func thousands(digits string) string {
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// WriteFiles writes report.json, summary.txt and chart.png into dir,
// creating it.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: results folder: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "summary.txt"))
	if err != nil {
		return err
	}
	if err := r.WriteSummary(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return r.WriteChart(filepath.Join(dir, "chart.png"))
}
