package bench

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var chartColors = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 255}, {R: 0xd6, G: 0x27, B: 0x28, A: 255}, {R: 0x2c, G: 0xa0, B: 0x2c, A: 255},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 255}, {R: 0x94, G: 0x67, B: 0xbd, A: 255}, {R: 0x8c, G: 0x56, B: 0x4b, A: 255},
}

// logRatio is the spread of the series' typical values above which a
// panel uses a logarithmic axis: on a linear one the smaller series would
// lie flat on zero.
const logRatio = 20

// fullSeconds returns the samples of whole loaded seconds: the series
// without its last sample, the second in which the load ended (or the
// tail after it), which would show as a drop to near zero.
func fullSeconds(s []Sample) []Sample {
	if len(s) <= 1 {
		return s
	}
	return s[:len(s)-1]
}

// niceStep returns a step of 1, 2 or 5 times a power of ten that cuts
// [min, max] into about n intervals.
func niceStep(min, max float64, n int) float64 {
	span := max - min
	if span <= 0 || math.IsNaN(span) || math.IsInf(span, 0) {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// tickLabel formats a tick value: thousands separators, and as many
// decimals as the step needs (none for steps of 1 or more), so ticks read
// "1,200,000" and "0.5", never "1200000" or "0.00".
func tickLabel(v, step float64) string {
	if math.Abs(v) < step/1e6 {
		return "0"
	}
	dec := 0
	if step < 1 {
		dec = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	s := strconv.FormatFloat(math.Abs(v), 'f', dec, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	out := thousands(intPart)
	if v < 0 {
		out = "-" + out
	}
	if frac != "" {
		out += "." + frac
	}
	return out
}

// niceTicks is a linear axis's ticks: about five labelled ones at 1-2-5
// steps, an unlabelled one between each.
type niceTicks struct{}

// Ticks implements plot.Ticker.
func (niceTicks) Ticks(min, max float64) []plot.Tick {
	step := niceStep(min, max, 5)
	var ticks []plot.Tick
	for i := math.Ceil(min/step*2) / 2; i*step <= max+step*1e-9 && len(ticks) < 100; i += 0.5 {
		v := i * step
		if i == math.Trunc(i) {
			ticks = append(ticks, plot.Tick{Value: v, Label: tickLabel(v, step)})
		} else {
			ticks = append(ticks, plot.Tick{Value: v})
		}
	}
	return ticks
}

// logTicks is a logarithmic axis's ticks: labelled powers of ten (1, 2
// and 5 times them too when the axis spans two decades or less: more would
// crowd the labels), unlabelled ones at the other multiples.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(min, max float64) []plot.Tick {
	if min <= 0 {
		min = max / 1e6
	}
	lo, hi := math.Floor(math.Log10(min)), math.Ceil(math.Log10(max))
	few := hi-lo <= 2
	var ticks []plot.Tick
	for e := lo; e <= hi; e++ {
		p := math.Pow(10, e)
		for m := 1.0; m <= 9; m++ {
			v := m * p
			if v < min*(1-1e-9) || v > max*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || (few && (m == 2 || m == 5)) {
				t.Label = tickLabel(v, p)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// niceCeil returns the smallest 1, 2 or 5 times a power of ten at or
// above v (v > 0).
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// series is one line of a panel.
type series struct {
	name   string
	xy     plotter.XYs
	color  int
	dashed bool
}

// typical is a series' median value.
func (s series) typical() float64 {
	ys := make([]float64, 0, len(s.xy))
	for _, p := range s.xy {
		ys = append(ys, p.Y)
	}
	slices.Sort(ys)
	return ys[len(ys)/2]
}

// wantLog reports whether the series' typical values differ by more than
// logRatio (ignoring series that are all zero).
func wantLog(ss []series) bool {
	lo, hi := math.Inf(1), 0.0
	for _, s := range ss {
		if t := s.typical(); t > 0 {
			lo, hi = min(lo, t), max(hi, t)
		}
	}
	return hi > 0 && hi/lo > logRatio
}

// panel is one plot of the chart with its legend beside it.
type panel struct {
	p      *plot.Plot
	legend plot.Legend
}

func newPanel(title, ylabel string, ss []series) (*panel, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds into phase"
	p.Y.Label.Text = ylabel
	p.X.Tick.Marker = niceTicks{}
	p.Y.Tick.Marker = niceTicks{}
	leg := plot.NewLegend()
	logY := wantLog(ss)
	ymin, ymax := math.Inf(1), 0.0
	for _, s := range ss {
		xy := s.xy
		if logY { // log(0) is not drawable: leave out zero seconds
			xy = slices.DeleteFunc(slices.Clone(xy), func(p plotter.XY) bool { return p.Y <= 0 })
		}
		if len(xy) == 0 {
			continue
		}
		for _, q := range xy {
			ymin, ymax = min(ymin, q.Y), max(ymax, q.Y)
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.Color = chartColors[s.color%len(chartColors)]
		l.Width = vg.Points(1.5)
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		leg.Add(s.name, l)
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
		p.Y.Min = math.Pow(10, math.Floor(math.Log10(ymin)))
		if math.Ceil(math.Log10(ymax))-math.Floor(math.Log10(ymin)) > 2 {
			p.Y.Max = math.Pow(10, math.Ceil(math.Log10(ymax))) // labelled: powers only
		} else {
			p.Y.Max = niceCeil(ymax)
		}
		p.Y.Label.Text += " (log scale)"
	} else if ymax > 0 {
		// The top of the axis is a labelled tick above the highest point.
		p.Y.Min = 0
		step := niceStep(0, ymax, 5)
		p.Y.Max = math.Ceil(ymax/step-1e-9) * step
	}
	p.X.Min = 0
	return &panel{p: p, legend: leg}, nil
}

// phaseGroups groups phases by length in whole seconds, in report order,
// so that each panel's time axis fits its phases.
func phaseGroups(phases []*Phase) [][]*Phase {
	var groups [][]*Phase
	var lens []int
	for _, ph := range phases {
		if len(fullSeconds(ph.Series)) == 0 {
			continue
		}
		n := len(fullSeconds(ph.Series))
		i := slices.Index(lens, n)
		if i < 0 {
			lens = append(lens, n)
			groups = append(groups, nil)
			i = len(groups) - 1
		}
		groups[i] = append(groups[i], ph)
	}
	return groups
}

// WriteChart draws, for each phase length, throughput and latency
// percentiles over the phase's whole seconds, legends beside the plots, as
// a PNG at path. A panel whose series differ by more than logRatio gets a
// logarithmic axis.
func (r *Report) WriteChart(path string) error {
	var panels []*panel
	colorOf := map[string]int{}
	for _, group := range phaseGroups(r.Phases) {
		var tput, lat []series
		for _, ph := range group {
			c, ok := colorOf[ph.Name]
			if !ok {
				c = len(colorOf)
				colorOf[ph.Name] = c
			}
			var rate, mo, p50, p99 plotter.XYs
			for _, s := range fullSeconds(ph.Series) {
				rate = append(rate, plotter.XY{X: s.T, Y: s.Answered})
				mo = append(mo, plotter.XY{X: s.T, Y: s.MOAcked})
				if s.P99 > 0 {
					p50 = append(p50, plotter.XY{X: s.T, Y: s.P50})
					p99 = append(p99, plotter.XY{X: s.T, Y: s.P99})
				}
			}
			if nonZero(rate) {
				tput = append(tput, series{name: ph.Name + " MT", xy: rate, color: c})
			}
			if nonZero(mo) {
				tput = append(tput, series{name: ph.Name + " MO acked", xy: mo, color: c, dashed: true})
			}
			if len(p99) > 0 {
				lat = append(lat, series{name: ph.Name + " p50", xy: p50, color: c}, series{name: ph.Name + " p99", xy: p99, color: c, dashed: true})
			}
		}
		secs := len(fullSeconds(group[0].Series))
		suffix := ""
		if len(r.Phases) > 1 {
			suffix = fmt.Sprintf(" (%d s phases)", secs)
		}
		if len(tput) > 0 {
			p, err := newPanel(fmt.Sprintf("optgate-bench %s: throughput%s", r.Scenario, suffix), "messages/s", tput)
			if err != nil {
				return err
			}
			panels = append(panels, p)
		}
		if len(lat) > 0 {
			p, err := newPanel("latency per second"+suffix, "ms", lat)
			if err != nil {
				return err
			}
			panels = append(panels, p)
		}
	}
	if len(panels) == 0 { // a run that ended before a whole second: an empty panel says so
		p, err := newPanel(fmt.Sprintf("optgate-bench %s: no whole second measured", r.Scenario), "messages/s", nil)
		if err != nil {
			return err
		}
		panels = append(panels, p)
	}
	const w, legendW, rowH = 24 * vg.Centimeter, 5 * vg.Centimeter, 9 * vg.Centimeter
	img := vgimg.New(w, rowH*vg.Length(len(panels)))
	dc := draw.New(img)
	plots := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		plots[i] = []*plot.Plot{p.p}
	}
	plotArea := draw.Crop(dc, 0, -legendW, 0, 0)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(4), PadLeft: vg.Points(4),
		PadRight: vg.Points(8), PadY: vg.Points(14)}
	canvases := plot.Align(plots, tiles, plotArea)
	for i, p := range panels {
		p.p.Draw(canvases[i][0])
		// The legend sits right of the plot, level with its top.
		c := canvases[i][0]
		lc := draw.Canvas{Canvas: dc, Rectangle: vg.Rectangle{
			Min: vg.Point{X: w - legendW + vg.Points(4), Y: c.Min.Y},
			Max: vg.Point{X: w - vg.Points(4), Y: c.Max.Y - vg.Points(18)}}}
		p.legend.Top = true
		p.legend.Left = true
		p.legend.Draw(lc)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func nonZero(xy plotter.XYs) bool {
	for _, p := range xy {
		if p.Y != 0 {
			return true
		}
	}
	return false
}

// ChartFromFile redraws the chart of a stored report.json at out.
func ChartFromFile(reportPath, out string) error {
	b, err := os.ReadFile(reportPath)
	if err != nil {
		return err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", reportPath, err)
	}
	return r.WriteChart(out)
}
