package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Scenarios lists the scenarios Run knows, with a line each.
var Scenarios = []struct{ Name, Doc string }{
	{"mt-throughput", "highest sustained MT msgs/s through optgate with the consent check on and -suppressed entries preloaded (after a passthrough baseline)"},
	{"mt-receipts", "mt-throughput with a delivery receipt for every message, correlated and counted at the load ESMEs"},
	{"mo-storm", "STOP MOs from distinct handsets as fast as optgate acknowledges them; counts acks and confirmations"},
	{"mixed", "MT load with receipts and suppressed recipients plus an MO mix (STOP/START/HELP/other) at once"},
	{"latency", "added p50/p99/p99.9 latency of optgate at 50% of the maximum rate, against the direct path"},
	{"passthrough", "the null SMPP relay in front of the simulator: this machine's ceiling"},
	{"kannel", "the mt-throughput work through optgate and through Kannel (bearerbox+smsbox, HTTP sendsms) in one run"},
	{"cluster", "three optgate nodes clustered over embedded NATS against one node: STOP-on-A → refused-on-B latency idle and under MT load, replication lag, MT msgs/s and durable opt-outs/s"},
}

// RunConfig configures a scenario run. Zero values take the defaults
// shown.
type RunConfig struct {
	Scenario string
	Duration time.Duration // main phase's load time (default 20s)
	// Timeout is a hard bound on the whole run (default 3×Duration + 3m +
	// 1s per 5,000 suppressed entries, set-up and preload included).
	Timeout time.Duration

	Suppressed         int     // suppressed entries preloaded (default 1,000,000; 0 with NoSuppressed)
	NoSuppressed       bool    // preload nothing
	SuppressedFraction float64 // fraction of MT sent to suppressed numbers (default 0.1)
	SuppressVia        string  // import (default), api, mo

	Proto       string  // load protocol to the gateway: smpp (default) or http (POST /v1/messages)
	Concurrency int     // HTTP requests in flight with Proto http (default 256)
	Binds       int     // load binds (default 4)
	Window      int     // load window per bind (default 256)
	Rate        float64 // load target msgs/s (0: as fast as possible; latency: 50% of the measured maximum)

	SimLatency    string // simulator submit latency spec (default none)
	ThrottleEvery int    // simulator throttling injection
	MOWindow      int    // mo-storm deliver_sm in flight (default 512)
	MORate        float64

	Gateway     string // optgate (default) | passthrough (stub: the null relay)
	Optgate     string // optgate binary (default: found or built, see FindOptgate)
	RelayBin    string // optgate-bench binary, to run the null relay in its own process (empty: in the harness)
	GatewaySMPP string // use a gateway already running at this address instead
	GatewayHTTP string // its HTTP API, if any
	SMSCBinds   int    // optgate's binds to the simulator (default 4)
	SMSCWindow  int    // and their window (default 1024)

	Baseline bool // mt-throughput: measure passthrough first (cmd default true)

	KannelConcurrency int // HTTP requests in flight to smsbox (default 128)
	// ClusterSTOPs is how many STOPs the cluster scenario times, idle and
	// again under MT load (default 1,000).
	ClusterSTOPs int
	NoInstall    bool

	ProfileSeconds int    // capture optgate's CPU profile for this long during the main phase
	Results        string // folder for results (logs and profiles go there too)
	KeepTemp       bool
	Progress       io.Writer // one line a second (default os.Stdout)
	Logger         *slog.Logger
}

// ErrUnknownScenario is returned for a scenario name Run does not know.
var ErrUnknownScenario = errors.New("bench: unknown scenario")

// ConfigError wraps a problem with a RunConfig found before anything
// started.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func (c *RunConfig) setDefaults() error {
	known := false
	for _, s := range Scenarios {
		known = known || s.Name == c.Scenario
	}
	if !known {
		return fmt.Errorf("%w %q", ErrUnknownScenario, c.Scenario)
	}
	if c.Duration <= 0 {
		c.Duration = 20 * time.Second
	}
	if c.NoSuppressed {
		c.Suppressed = 0
	} else if c.Suppressed == 0 {
		c.Suppressed = 1_000_000
	}
	if c.ClusterSTOPs <= 0 {
		c.ClusterSTOPs = 1000
	}
	if c.Timeout <= 0 {
		// Room for set-up and a preload at 5,000 entries/s.
		c.Timeout = 3*c.Duration + 3*time.Minute + time.Duration(c.Suppressed/5000)*time.Second
		if c.Scenario == "cluster" {
			// Two optgate set-ups with a preload each, five phases, and the
			// two STOP phases at a few a second at worst.
			c.Timeout = 6*c.Duration + 5*time.Minute + 2*time.Duration(c.Suppressed/5000)*time.Second +
				time.Duration(c.ClusterSTOPs/5)*time.Second
		}
	}
	if c.Suppressed < 0 || c.Suppressed > MaxSuppressed {
		return fmt.Errorf("bench: -suppressed %d not in [0,%d]", c.Suppressed, MaxSuppressed)
	}
	if c.SuppressedFraction < 0 || c.SuppressedFraction > 1 {
		return fmt.Errorf("bench: suppressed fraction %v not in [0,1]", c.SuppressedFraction)
	}
	if c.Suppressed == 0 {
		c.SuppressedFraction = 0
	}
	switch c.SuppressVia {
	case "":
		c.SuppressVia = SuppressImport
	case SuppressImport, SuppressAPI, SuppressMO:
	default:
		return fmt.Errorf("bench: -suppress-via %q: want import, api or mo", c.SuppressVia)
	}
	switch c.Gateway {
	case "":
		c.Gateway = "optgate"
	case "optgate", "passthrough":
	default:
		return fmt.Errorf("bench: -gateway %q: want optgate or passthrough", c.Gateway)
	}
	if c.GatewaySMPP != "" {
		c.Gateway = "external"
	}
	switch c.Proto {
	case "":
		c.Proto = "smpp"
	case "smpp", "http":
	default:
		return fmt.Errorf("bench: -proto %q: want smpp or http", c.Proto)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
	if c.Binds <= 0 {
		c.Binds = 4
	}
	if c.Window <= 0 {
		c.Window = 256
	}
	if c.Rate < 0 {
		return fmt.Errorf("bench: negative rate")
	}
	if _, err := ParseLatency(c.SimLatency); err != nil {
		return err
	}
	if c.MOWindow <= 0 {
		c.MOWindow = 512
	}
	if c.MORate <= 0 {
		c.MORate = 1000
	}
	if c.KannelConcurrency <= 0 {
		c.KannelConcurrency = 128
	}
	if c.Progress == nil {
		c.Progress = os.Stdout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

type runner struct {
	cfg     RunConfig
	ctx     context.Context
	log     *slog.Logger
	tmp     string
	rep     *Report
	sim     *Sim
	gw      *Gateway
	closers []func()
}

// Run runs one scenario and returns its report. Whatever happens, every
// process and listener the run started is stopped before Run returns.
// The report is returned (partial) along with an error when the run
// failed part-way.
func Run(ctx context.Context, cfg RunConfig) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, &ConfigError{err}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := &runner{cfg: cfg, ctx: ctx, log: cfg.Logger}
	r.rep = &Report{Scenario: cfg.Scenario, Started: time.Now(), Machine: ThisMachine(), Config: map[string]any{
		"duration": cfg.Duration.String(), "suppressed": cfg.Suppressed, "suppressed_fraction": cfg.SuppressedFraction,
		"suppress_via": cfg.SuppressVia, "binds": cfg.Binds, "window": cfg.Window, "rate": cfg.Rate,
		"sim_latency": cfg.SimLatency, "proto": cfg.Proto, "throttle_every": cfg.ThrottleEvery, "gateway": cfg.Gateway,
		"smsc_binds": cfg.SMSCBinds, "smsc_window": cfg.SMSCWindow}}
	defer r.close()
	tmp, err := os.MkdirTemp("", "optgate-bench-")
	if err != nil {
		return nil, err
	}
	r.tmp = tmp
	if !cfg.KeepTemp {
		r.closers = append(r.closers, func() { os.RemoveAll(tmp) })
	}
	if cfg.Results != "" {
		if err := os.MkdirAll(cfg.Results, 0o755); err != nil {
			return nil, fmt.Errorf("bench: results folder: %w", err)
		}
	}
	switch cfg.Scenario {
	case "passthrough":
		err = r.passthrough()
	case "mt-throughput":
		err = r.mtThroughput(false)
	case "mt-receipts":
		err = r.mtThroughput(true)
	case "mo-storm":
		err = r.moStorm()
	case "mixed":
		err = r.mixed()
	case "latency":
		err = r.latency()
	case "kannel":
		err = r.kannel()
	case "cluster":
		err = r.cluster()
	}
	r.rep.Seconds = time.Since(r.rep.Started).Seconds()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("bench: hard timeout %s reached: %w", cfg.Timeout, err)
	}
	if err != nil {
		r.rep.Error = err.Error()
	}
	return r.rep, err
}

// close stops everything in reverse order of start.
func (r *runner) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}

func (r *runner) note(format string, a ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, a...))
}

func (r *runner) progress(format string, a ...any) {
	fmt.Fprintf(r.cfg.Progress, format+"\n", a...)
}

func (r *runner) startSim(receipts bool) error {
	s, err := StartSim(SimConfig{Latency: r.cfg.SimLatency, Receipts: receipts, ThrottleEvery: r.cfg.ThrottleEvery,
		Logger: r.log})
	if err != nil {
		return err
	}
	r.sim = s
	r.closers = append(r.closers, s.Close)
	r.progress("simulator listening on %s", s.Addr())
	return nil
}

// startGateway starts (or attaches to) the gateway under test and preloads
// the suppressed pool.
func (r *runner) startGateway() error {
	switch r.cfg.Gateway {
	case "external":
		r.gw = &Gateway{Kind: "external", SMPPAddr: r.cfg.GatewaySMPP, HTTPAddr: r.cfg.GatewayHTTP, Tenant: "bench",
			TenantToken: "bench-tenant-token", AdminToken: "bench-admin-token", SystemID: "bench", Password: "benchpw",
			SMSCSystemID: "optgate"}
		if r.gw.HTTPAddr != "" {
			ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
			defer cancel()
			if err := waitReady(ctx, nil, "http://"+r.gw.HTTPAddr+"/healthz", nil); err != nil {
				return fmt.Errorf("bench: external gateway unreachable: %w", err)
			}
		}
		r.progress("using the gateway at %s", r.gw.SMPPAddr)
	case "passthrough":
		g, err := StartPassthroughGateway(r.sim.Addr())
		if err != nil {
			return err
		}
		r.gw = g
		r.closers = append(r.closers, g.Close)
		r.note("gateway = passthrough stub: no consent check, nothing refused; figures are not optgate's")
		r.progress("stub gateway (null relay) on %s", g.SMPPAddr)
		return nil
	default:
		bin, err := FindOptgate(r.ctx, r.cfg.Optgate, r.tmp)
		if err != nil {
			return err
		}
		dir := filepath.Join(r.tmp, "optgate")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		r.progress("starting %s", bin)
		g, err := StartOptgate(r.ctx, OptgateOptions{Bin: bin, Dir: dir, SimAddr: r.sim.Addr(),
			SMSCBinds: r.cfg.SMSCBinds, SMSCWindow: r.cfg.SMSCWindow})
		if err != nil {
			return err
		}
		r.gw = g
		r.closers = append(r.closers, func() {
			g.Close()
			r.keepLog(g.proc)
		})
		r.progress("optgate ready: smpp %s, http %s (pid %d)", g.SMPPAddr, g.HTTPAddr, g.proc.Pid())
	}
	if r.cfg.Suppressed > 0 {
		r.progress("preloading %d suppressed numbers via %s ...", r.cfg.Suppressed, r.cfg.SuppressVia)
		d, err := PreloadSuppressed(r.ctx, r.gw, r.sim, r.cfg.Suppressed, r.cfg.SuppressVia)
		if err != nil {
			return fmt.Errorf("bench: preload of %d suppressed numbers: %w", r.cfg.Suppressed, err)
		}
		r.rep.Config["preload_seconds"] = d.Seconds()
		r.progress("preloaded %d suppressed numbers in %.1fs (%s/s)", r.cfg.Suppressed, d.Seconds(),
			num(float64(r.cfg.Suppressed)/max(d.Seconds(), 1e-9)))
	}
	return nil
}

// keepLog copies the tail of a child's log into the results folder.
func (r *runner) keepLog(p *Process) {
	if p == nil || r.cfg.Results == "" {
		return
	}
	os.WriteFile(filepath.Join(r.cfg.Results, p.Name+".log"), []byte(p.LogTail(1<<20)+"\n"), 0o644)
}

// gatewayDead returns an error if the gateway process has exited.
func (r *runner) gatewayDead() error {
	if r.gw == nil || r.gw.proc == nil || r.gw.closed.Load() {
		return nil
	}
	if ex, err := r.gw.proc.Exited(); ex {
		return fmt.Errorf("bench: optgate exited during the run (%v); last output:\n%s", err, r.gw.proc.LogTail(2000))
	}
	return nil
}

// phaseOpts describe what a phase measures.
type phaseOpts struct {
	name, path string
	load       Loader
	mo         *MOGen
	// waitReceipts keeps sampling after the load until receipts catch up
	// with accepted submits (at most 10s).
	waitReceipts bool
	// waitConfirmations does the same for MO confirmations.
	waitConfirmations bool
	// watch, if set, is checked every second; an error ends the phase.
	watch func() error
	// during, if set, runs in its own goroutine while the phase runs.
	during func(ctx context.Context)
	// procs are child processes whose CPU use the phase reports.
	procs []*Process
}

// measure samples a phase once a second until its load and MO generator
// are done, printing a progress line each second.
func (r *runner) measure(o phaseOpts) (*Phase, error) {
	ph := &Phase{Name: o.name, Path: o.path}
	start := time.Now()
	sim0 := r.simCounts()
	pids := map[string]int{}
	if r.gw != nil && r.gw.proc != nil && !r.gw.closed.Load() {
		pids["optgate"] = r.gw.proc.Pid()
	}
	for _, p := range o.procs {
		pids[p.Name] = p.Pid()
	}
	cpu := newCPUMeter(pids)
	var cores map[string]float64
	var loadDone, moDone chan struct{}
	var lres *LoadResult
	if o.load != nil {
		loadDone = make(chan struct{})
		go func() { lres = o.load.Wait(); close(loadDone) }()
	}
	if o.mo != nil {
		moDone = make(chan struct{})
		go func() { <-o.mo.Done(); close(moDone) }()
	}
	dctx, dcancel := context.WithCancel(r.ctx)
	defer dcancel()
	if o.during != nil {
		go o.during(dctx)
	}
	prev := r.sample(o, start)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var tailEnd time.Time
	var err error
loop:
	for {
		select {
		case <-r.ctx.Done():
			err = r.ctx.Err()
			break loop
		case <-tick.C:
		}
		cur := r.sample(o, start)
		s := cur.delta(prev)
		ph.Series = append(ph.Series, s)
		prev = cur
		r.progress("[%s] t=%3.0fs %s", o.name, s.T, s.line())
		if err = o.watchErr(); err != nil {
			break
		}
		if err = r.gatewayDead(); err != nil {
			break
		}
		if !closed(loadDone) || !closed(moDone) {
			cores = cpu.cores() // while loaded; the tail below is idle
			continue
		}
		// Load and MO done: optionally wait for receipts/confirmations.
		if tailEnd.IsZero() {
			tailEnd = time.Now().Add(10 * time.Second)
		}
		if time.Now().After(tailEnd) {
			break
		}
		if o.waitReceipts && o.load != nil {
			c := o.load.Counters()
			if c.Receipts.Load() < c.Accepted.Load() {
				continue
			}
		}
		if o.waitConfirmations && o.mo != nil && r.sim != nil {
			if r.sim.Confirmations()-sim0.confirmations < o.mo.Acked.Load() {
				continue
			}
		}
		break
	}
	if o.load != nil {
		o.load.Stop()
		select {
		case <-loadDone:
		case <-time.After(15 * time.Second):
			err = errors.Join(err, errors.New("bench: load did not stop within 15s"))
		}
	}
	if o.mo != nil {
		o.mo.Stop()
		select {
		case <-moDone:
		case <-time.After(10 * time.Second):
		}
	}
	ph.Seconds = time.Since(start).Seconds()
	if ph.Figures == nil {
		ph.Figures = map[string]float64{}
	}
	for name, c := range cores {
		ph.Figures["cpu_cores_"+name] = c
	}
	if lres != nil {
		snap := o.load.Counters().Snapshot() // receipts may have come after Wait
		ph.Load = &snap
		ph.Latency = Stats(lres.Latency)
		ph.Rate = lres.Rate()
		if ph.Figures == nil {
			ph.Figures = map[string]float64{}
		}
		ph.Figures["load_seconds"] = lres.Elapsed().Seconds()
		ph.Figures["accepted_per_s"] = float64(lres.Accepted) / max(lres.Elapsed().Seconds(), 1e-9)
		if snap.Receipts > 0 {
			rs := r.receiptSpan(ph.Series)
			ph.Figures["receipts_per_s"] = float64(snap.Receipts) / max(rs, 1e-9)
		}
	}
	if r.sim != nil {
		s1 := r.simCounts()
		ph.Simulator = &SimStats{Submits: s1.submits - sim0.submits, Receipts: s1.receipts - sim0.receipts,
			Throttled: s1.throttled - sim0.throttled}
		if ph.Figures == nil {
			ph.Figures = map[string]float64{}
		}
		if lres != nil && lres.Elapsed() > 0 {
			ph.Figures["sim_submits_per_s"] = float64(ph.Simulator.Submits) / lres.Elapsed().Seconds()
		}
		if o.mo != nil {
			m := &MOStats{Sent: o.mo.Sent.Load(), Acked: o.mo.Acked.Load(), Refused: o.mo.Refused.Load(),
				Errors: o.mo.Errors.Load(), Confirmations: s1.confirmations - sim0.confirmations, Latency: Stats(o.mo.Latency())}
			el := o.mo.Elapsed().Seconds()
			m.AckedRate = float64(m.Acked) / max(el, 1e-9)
			m.ConfirmRate = float64(m.Confirmations) / max(r.confirmSpan(ph.Series), 1e-9)
			ph.MO = m
			if lres == nil {
				ph.Rate = m.AckedRate
			}
		}
	}
	r.rep.Phases = append(r.rep.Phases, ph)
	return ph, err
}

func (o phaseOpts) watchErr() error {
	if o.watch != nil {
		return o.watch()
	}
	return nil
}

// receiptSpan is the time from the phase start to the last second with
// receipts.
func (r *runner) receiptSpan(ss []Sample) float64 {
	for i := len(ss) - 1; i >= 0; i-- {
		if ss[i].Receipts > 0 {
			return ss[i].T
		}
	}
	return 0
}

func (r *runner) confirmSpan(ss []Sample) float64 {
	for i := len(ss) - 1; i >= 0; i-- {
		if ss[i].Confirmations > 0 {
			return ss[i].T
		}
	}
	return 0
}

func closed(c chan struct{}) bool {
	if c == nil {
		return true
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

type simCounts struct{ submits, receipts, throttled, confirmations int64 }

func (r *runner) simCounts() simCounts {
	if r.sim == nil {
		return simCounts{}
	}
	return simCounts{r.sim.Submits(), r.sim.Receipts(), r.sim.Throttled(), r.sim.Confirmations()}
}

// point is the cumulative counters at one moment.
type point struct {
	t                                            time.Time
	start                                        time.Time
	accepted, refused, errors, receipts, moAcked int64
	sim                                          simCounts
	p50, p99                                     float64
}

func (r *runner) sample(o phaseOpts, start time.Time) point {
	p := point{t: time.Now(), start: start, sim: r.simCounts()}
	if o.load != nil {
		c := o.load.Counters()
		p.accepted, p.refused, p.errors, p.receipts = c.Accepted.Load(), c.Refused.Load(), c.Errors.Load(), c.Receipts.Load()
		h := o.load.Interval()
		if h.TotalCount() > 0 {
			p.p50, p.p99 = float64(h.ValueAtQuantile(50))/1000, float64(h.ValueAtQuantile(99))/1000
		}
	} else if o.mo != nil {
		h := o.mo.Interval()
		if h.TotalCount() > 0 {
			p.p50, p.p99 = float64(h.ValueAtQuantile(50))/1000, float64(h.ValueAtQuantile(99))/1000
		}
	}
	if o.mo != nil {
		p.moAcked = o.mo.Acked.Load()
	}
	return p
}

func (p point) delta(prev point) Sample {
	dt := p.t.Sub(prev.t).Seconds()
	if dt <= 0 {
		dt = 1
	}
	f := func(a, b int64) float64 { return float64(a-b) / dt }
	return Sample{T: math.Round(p.t.Sub(p.start).Seconds()*10) / 10,
		Answered: f(p.accepted+p.refused, prev.accepted+prev.refused), Accepted: f(p.accepted, prev.accepted),
		Refused: f(p.refused, prev.refused), Errors: f(p.errors, prev.errors), Receipts: f(p.receipts, prev.receipts),
		SimSubmits: f(p.sim.submits, prev.sim.submits), MOAcked: f(p.moAcked, prev.moAcked),
		Confirmations: f(p.sim.confirmations, prev.sim.confirmations), P50: p.p50, P99: p.p99}
}

func (s Sample) line() string {
	out := fmt.Sprintf("mt %8s/s acc %8s refused %7s err %5s", num(s.Answered), num(s.Accepted), num(s.Refused), num(s.Errors))
	if s.Receipts > 0 {
		out += fmt.Sprintf(" rcpt %8s/s", num(s.Receipts))
	}
	if s.SimSubmits > 0 {
		out += fmt.Sprintf(" sim %8s/s", num(s.SimSubmits))
	}
	if s.MOAcked > 0 || s.Confirmations > 0 {
		out += fmt.Sprintf(" mo %7s/s conf %7s/s", num(s.MOAcked), num(s.Confirmations))
	}
	if s.P99 > 0 {
		out += fmt.Sprintf(" p50 %.2fms p99 %.2fms", s.P50, s.P99)
	}
	return out
}

// loadTo starts an SMPP load against addr with the run's settings.
func (r *runner) loadTo(addr, sys, pw string, d time.Duration, rate float64, receipts bool, frac float64) (*Load, error) {
	return StartLoad(r.ctx, LoadConfig{Addr: addr, SystemID: sys, Password: pw, Binds: r.cfg.Binds, Window: r.cfg.Window,
		Rate: rate, Duration: d, Receipts: receipts, Suppressed: r.cfg.Suppressed, SuppressedFraction: frac, Logger: r.log})
}

// profile fetches optgate's CPU profile for the given seconds into the
// results folder.
func (r *runner) profile(ctx context.Context) {
	if r.cfg.ProfileSeconds <= 0 || r.gw == nil || r.gw.HTTPAddr == "" || r.cfg.Results == "" {
		return
	}
	u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", r.gw.HTTPAddr, r.cfg.ProfileSeconds)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+r.gw.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.log.Warn("bench: optgate profile", "err", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.log.Warn("bench: optgate profile", "status", resp.Status)
		return
	}
	f, err := os.Create(filepath.Join(r.cfg.Results, "optgate.cpu.pprof"))
	if err != nil {
		return
	}
	io.Copy(f, resp.Body)
	f.Close()
}

// MeasureLoad samples a running load once a second until it ends,
// printing a progress line each second to progress, and returns a
// one-phase report (the load command).
func MeasureLoad(ctx context.Context, name, path string, l Loader, progress io.Writer) (*Report, error) {
	r := &runner{cfg: RunConfig{Progress: progress}, ctx: ctx, log: slog.Default(),
		rep: &Report{Scenario: name, Started: time.Now(), Machine: ThisMachine(), Config: map[string]any{}}}
	_, err := r.measure(phaseOpts{name: name, path: path, load: l})
	r.rep.Seconds = time.Since(r.rep.Started).Seconds()
	if err != nil {
		r.rep.Error = err.Error()
	}
	return r.rep, err
}
