package bench

import (
	"fmt"
	"image/color"
	"os"

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

// WriteChart draws throughput (top) and latency percentiles (bottom) over
// time, one line per phase, as a PNG at path.
func (r *Report) WriteChart(path string) error {
	tp := plot.New()
	tp.Title.Text = fmt.Sprintf("optgate-bench %s: throughput", r.Scenario)
	tp.X.Label.Text = "seconds into phase"
	tp.Y.Label.Text = "messages/s"
	tp.Legend.Top = true
	lp := plot.New()
	lp.Title.Text = "latency per second"
	lp.X.Label.Text = "seconds into phase"
	lp.Y.Label.Text = "ms"
	lp.Legend.Top = true
	ci := 0
	line := func(p *plot.Plot, name string, xy plotter.XYs, dashed bool) error {
		if len(xy) == 0 {
			return nil
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color = chartColors[ci%len(chartColors)]
		l.Width = vg.Points(1.5)
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	for _, ph := range r.Phases {
		var rate, mo, p50, p99 plotter.XYs
		for _, s := range ph.Series {
			rate = append(rate, plotter.XY{X: s.T, Y: s.Answered})
			if s.MOAcked > 0 {
				mo = append(mo, plotter.XY{X: s.T, Y: s.MOAcked})
			}
			if s.P99 > 0 {
				p50 = append(p50, plotter.XY{X: s.T, Y: s.P50})
				p99 = append(p99, plotter.XY{X: s.T, Y: s.P99})
			}
		}
		if err := line(tp, ph.Name+" MT", rate, false); err != nil {
			return err
		}
		if err := line(tp, ph.Name+" MO acked", mo, true); err != nil {
			return err
		}
		if err := line(lp, ph.Name+" p50", p50, false); err != nil {
			return err
		}
		if err := line(lp, ph.Name+" p99", p99, true); err != nil {
			return err
		}
		ci++
	}
	tp.Y.Min = 0
	lp.Y.Min = 0
	const w, h = 20 * vg.Centimeter, 20 * vg.Centimeter
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4),
		PadRight: vg.Points(8), PadY: vg.Points(12)}
	canvases := plot.Align([][]*plot.Plot{{tp}, {lp}}, tiles, dc)
	tp.Draw(canvases[0][0])
	lp.Draw(canvases[1][0])
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
