package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
)

func TestTickLabel(t *testing.T) {
	for _, c := range []struct {
		v, step float64
		want    string
	}{
		{1200000, 200000, "1,200,000"}, {0, 0.5, "0"}, {0, 200000, "0"}, {1e-17, 0.1, "0"}, {0.5, 0.5, "0.5"},
		{2.5, 0.5, "2.5"}, {0.05, 0.05, "0.05"}, {0.2, 0.1, "0.2"}, {300, 100, "300"}, {-1500, 500, "-1,500"},
		{999, 1, "999"}, {1000, 1000, "1,000"},
	} {
		if got := tickLabel(c.v, c.step); got != c.want {
			t.Errorf("tickLabel(%v, %v) = %q, want %q", c.v, c.step, got, c.want)
		}
	}
}

// badLabel is what the issue saw: a long number without separators, or
// zero with decimals.
var badLabel = regexp.MustCompile(`^-?\d{4,}|^0\.0+$`)

func labels(ticks []plot.Tick) []string {
	var out []string
	for _, tk := range ticks {
		if tk.Label != "" {
			out = append(out, tk.Label)
		}
	}
	return out
}

func TestNiceTicks(t *testing.T) {
	for _, c := range []struct {
		min, max float64
		want     string
	}{
		{0, 1500000, "0 500,000 1,000,000 1,500,000"},
		{0, 2.5, "0 0.5 1.0 1.5 2.0 2.5"},
		{0, 10, "0 2 4 6 8 10"},
		{0, 30000, "0 10,000 20,000 30,000"},
		{0, 0.02, "0 0.005 0.010 0.015 0.020"},
	} {
		got := strings.Join(labels(niceTicks{}.Ticks(c.min, c.max)), " ")
		if got != c.want {
			t.Errorf("ticks(%v, %v) = %q, want %q", c.min, c.max, got, c.want)
		}
	}
	for _, max := range []float64{0.003, 0.7, 13, 999, 1234, 87654, 1.2e6, 4.4e8} {
		ls := labels(niceTicks{}.Ticks(0, max))
		if len(ls) < 3 || len(ls) > 8 {
			t.Errorf("0..%v: %d labels %v", max, len(ls), ls)
		}
		for _, l := range ls {
			if badLabel.MatchString(l) {
				t.Errorf("0..%v: label %q", max, l)
			}
		}
	}
}

func TestLogTicks(t *testing.T) {
	got := strings.Join(labels(logTicks{}.Ticks(0.1, 10)), " ")
	if got != "0.1 0.2 0.5 1 2 5 10" {
		t.Errorf("two decades: %q", got)
	}
	got = strings.Join(labels(logTicks{}.Ticks(1000, 1e6)), " ")
	if got != "1,000 10,000 100,000 1,000,000" {
		t.Errorf("three decades: %q", got)
	}
	got = strings.Join(labels(logTicks{}.Ticks(0.1, 1e6)), " ")
	if got != "0.1 1 10 100 1,000 10,000 100,000 1,000,000" {
		t.Errorf("seven decades: %q", got)
	}
	if n := len(logTicks{}.Ticks(0.1, 1e6)); n != 7*9+1 {
		t.Errorf("seven decades: %d ticks, want a tick at every multiple", n)
	}
}

func TestNiceCeil(t *testing.T) {
	for v, want := range map[float64]float64{383470: 500000, 100000: 100000, 101000: 200000, 6.4: 10, 0.17: 0.2} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}

func xy(ys ...float64) plotter.XYs {
	out := make(plotter.XYs, len(ys))
	for i, y := range ys {
		out[i] = plotter.XY{X: float64(i + 1), Y: y}
	}
	return out
}

// A panel goes logarithmic when typical values differ by more than 20×
// (Kannel's 7k/s next to 300k/s), not for one spike.
func TestWantLog(t *testing.T) {
	if !wantLog([]series{{xy: xy(300000, 310000, 305000)}, {xy: xy(7000, 6800, 7100)}}) {
		t.Error("300k/s and 7k/s on a linear axis")
	}
	if wantLog([]series{{xy: xy(400000, 410000)}, {xy: xy(158000, 158000)}}) {
		t.Error("2.6× apart on a log axis")
	}
	if wantLog([]series{{xy: xy(10, 10, 5000, 10, 10)}, {xy: xy(20, 20, 20)}}) {
		t.Error("a spike made the axis logarithmic")
	}
	if wantLog([]series{{xy: xy(0, 0, 0)}, {xy: xy(5, 5)}}) {
		t.Error("an all-zero series made the axis logarithmic")
	}
}

// The second in which the load ended is not drawn; phases are grouped by
// length.
func TestFullSecondsAndGroups(t *testing.T) {
	s := []Sample{{T: 1, Answered: 300000}, {T: 2, Answered: 310000}, {T: 3, Answered: 1024}}
	if got := fullSeconds(s); len(got) != 2 || got[1].T != 2 {
		t.Fatalf("fullSeconds: %v", got)
	}
	mk := func(name string, n int) *Phase {
		ph := &Phase{Name: name}
		for i := 1; i <= n; i++ {
			ph.Series = append(ph.Series, Sample{T: float64(i), Answered: 1})
		}
		return ph
	}
	g := phaseGroups([]*Phase{mk("passthrough", 6), mk("optgate", 11), mk("direct", 11), mk("empty", 0)})
	if len(g) != 2 || len(g[0]) != 1 || len(g[1]) != 2 || g[1][1].Name != "direct" {
		t.Fatalf("groups: %v", g)
	}
}

// A run that ended before a whole second still gets a chart.
func TestChartWithoutSamples(t *testing.T) {
	r := &Report{Scenario: "mt-throughput", Phases: []*Phase{{Name: "optgate", Series: []Sample{{T: 0.4, Answered: 10}}}}}
	out := filepath.Join(t.TempDir(), "c.png")
	if err := r.WriteChart(out); err != nil {
		t.Fatal(err)
	}
}

// The committed report files redraw without running anything.
func TestChartFromStoredReports(t *testing.T) {
	files, _ := filepath.Glob("../docs/benchmarks/*.json")
	if len(files) == 0 {
		t.Skip("no stored reports")
	}
	out := filepath.Join(t.TempDir(), "c.png")
	for _, f := range files {
		if err := ChartFromFile(f, out); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		b, _ := os.ReadFile(out)
		if !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Fatalf("%s: not a PNG", f)
		}
	}
}
