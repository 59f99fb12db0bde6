package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/optgate/optgate/smpp"
)

// stopWorkers is how many timed STOPs are in flight at once.
const stopWorkers = 8

// Bounds of one timed STOP.
const (
	stopAckTimeout    = 10 * time.Second // the STOP's deliver_sm on node A
	stopRefuseTimeout = 10 * time.Second // from its acknowledgement until node B refuses
	stopPollPause     = 500 * time.Microsecond
)

// stopProbe times STOP-on-A → refused-on-B: the simulator delivers a STOP
// from a new handset to node A (a deliver_sm on A's SMSC bind); from its
// ESME_ROK, node B (another node, at random) is sent submit_sm to that
// handset, back to back, until one is refused 0x401. The time between is
// one sample.
type stopProbe struct {
	r        *runner
	nodes    []*Gateway
	clients  []*smpp.Client // a transmitter bind on each node
	first    int            // handset index of the next run's first STOP
	latency  *latencyRecorder
	ack      *latencyRecorder
	acked    atomic.Int64 // STOPs acknowledged by node A
	refused  atomic.Int64 // of those, refused 0x401 on node B in time
	missed   atomic.Int64 // acknowledged, and still not refused on B after stopRefuseTimeout
	unacked  atomic.Int64 // STOPs node A did not acknowledge (not promised, not timed)
	early    atomic.Int64 // submits to the number that B accepted before it refused
	tempRefs atomic.Int64 // submits B refused with a temporary status (failing closed)
	other    atomic.Int64 // submits answered otherwise, or not at all
}

func newStopProbe(r *runner, nodes []*Gateway, first int) (*stopProbe, error) {
	p := &stopProbe{r: r, nodes: nodes, first: first}
	for _, n := range nodes {
		c := smpp.NewClient(smpp.ClientConfig{Addr: n.SMPPAddr, SystemID: n.SystemID, Password: n.Password,
			Mode: smpp.BindTransmitter, Conn: smpp.ConnConfig{Window: 2 * stopWorkers}, Logger: r.log})
		c.Start()
		ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
		err := c.WaitBound(ctx, 1)
		cancel()
		p.clients = append(p.clients, c)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("bench: probe bind to %s: %w", n.SMPPAddr, err)
		}
	}
	return p, nil
}

func (p *stopProbe) close() {
	for _, c := range p.clients {
		c.Close()
	}
}

// reset clears the counters before a run.
func (p *stopProbe) reset() {
	p.latency, p.ack = newRecorder(), newRecorder()
	for _, c := range []*atomic.Int64{&p.acked, &p.refused, &p.missed, &p.unacked, &p.early, &p.tempRefs, &p.other} {
		c.Store(0)
	}
}

// run times n STOPs, stopWorkers at a time, and returns when all are done
// or ctx ends.
func (p *stopProbe) run(ctx context.Context, n int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range stopWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				a := rng.IntN(len(p.nodes))
				b := (a + 1 + rng.IntN(len(p.nodes)-1)) % len(p.nodes)
				p.one(ctx, a, b, appendNANP(nil, handsetAreas, p.first+i))
			}
		}()
	}
	wg.Wait()
}

// one times a STOP from handset (digits) on node a, refused on node b.
func (p *stopProbe) one(ctx context.Context, a, b int, handset []byte) {
	d := &smpp.DeliverSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: handset},
		Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(trimPlus(OurNumber))}, ShortMessage: []byte("STOP")}}
	actx, cancel := context.WithTimeout(ctx, stopAckTimeout)
	t := time.Now()
	_, _, err := p.r.sim.SMPP().Deliver(actx, p.nodes[a].SMSCSystemID, d)
	cancel()
	if err != nil {
		p.unacked.Add(1)
		return
	}
	t0 := time.Now()
	p.ack.record(t0.Sub(t))
	p.acked.Add(1)
	sm := &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(trimPlus(OurNumber))},
		Dest: smpp.Address{TON: 1, NPI: 1, Addr: handset}, ShortMessage: []byte("probe")}}
	deadline := t0.Add(stopRefuseTimeout)
	for ctx.Err() == nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := p.clients[b].Submit(sctx, sm)
		cancel()
		now := time.Now()
		switch smpp.StatusOf(err) {
		case smpp.StatusOptedOut:
			p.latency.record(now.Sub(t0))
			p.refused.Add(1)
			return
		case smpp.StatusOK:
			p.early.Add(1)
		case smpp.StatusXTAppn:
			p.tempRefs.Add(1)
		default:
			p.other.Add(1)
		}
		if now.After(deadline) {
			p.missed.Add(1)
			return
		}
		time.Sleep(stopPollPause)
	}
}

// figures adds the run's figures to ph (latencies in ms).
func (p *stopProbe) figures(ph *Phase) {
	ph.Figures["stops_acked"] = float64(p.acked.Load())
	ph.Figures["stops_refused_on_other_node"] = float64(p.refused.Load())
	ph.Figures["stops_not_refused_in_10s"] = float64(p.missed.Load())
	ph.Figures["stops_not_acked"] = float64(p.unacked.Load())
	ph.Figures["probe_sends_before_refusal"] = float64(p.early.Load())
	ph.Figures["probe_temporary_refusals"] = float64(p.tempRefs.Load())
	ph.Figures["probe_other_answers"] = float64(p.other.Load())
	if s := Stats(p.latency.all); s != nil {
		ph.Figures["stop_to_refused_p50_ms"] = s.P50
		ph.Figures["stop_to_refused_p99_ms"] = s.P99
		ph.Figures["stop_to_refused_max_ms"] = s.Max
	}
	if s := Stats(p.ack.all); s != nil {
		ph.Figures["stop_ack_p50_ms"] = s.P50
		ph.Figures["stop_ack_p99_ms"] = s.P99
	}
}

// lagFigures adds the replication lag quantiles (ms) observed on every
// node between two scrapes.
func lagFigures(ph *Phase, before, after lagHist) {
	h := after.sub(before)
	ph.Figures["replication_lag_samples"] = h.count()
	for _, q := range []struct {
		name string
		q    float64
	}{{"replication_lag_p50_ms", 0.50}, {"replication_lag_p99_ms", 0.99}} {
		if v := h.quantile(q.q); !math.IsNaN(v) {
			ph.Figures[q.name] = 1000 * v
		}
	}
}

// checkStops notes STOPs that were acknowledged and not refused on
// another node: the cluster's promise broken, or the bound too short.
func (r *runner) checkStops(name string, p *stopProbe) {
	if n := p.missed.Load(); n > 0 {
		r.note("%s: %d acknowledged STOPs were still not refused on another node %s after their acknowledgement", name, n, stopRefuseTimeout)
	}
	if n := p.unacked.Load(); n > 0 {
		r.note("%s: %d STOPs were not acknowledged by their node (not timed)", name, n)
	}
}

// stopPhaseIdle times the STOPs with no other traffic.
func (r *runner) stopPhaseIdle(p *stopProbe, procs []*Process) (*Phase, error) {
	ph := &Phase{Name: "STOPs idle", Path: fmt.Sprintf("simulator STOP on node A → ESME_ROK → submit_sm on node B until 0x401 (%d in flight)", stopWorkers),
		Figures: map[string]float64{}}
	before, err := scrapeLag(r.ctx, p.nodes)
	if err != nil {
		return nil, err
	}
	p.reset()
	cpu := newCPUMeter(procPids(procs))
	start := time.Now()
	done := make(chan struct{})
	go func() { p.run(r.ctx, r.cfg.ClusterSTOPs); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prevT, prevN := start, int64(0)
	watch := nodesAlive(procs)
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
		}
		now := time.Now()
		n := p.acked.Load()
		s := Sample{T: math.Round(now.Sub(start).Seconds()*10) / 10, MOAcked: float64(n-prevN) / now.Sub(prevT).Seconds()}
		h := p.latency.interval()
		if h.TotalCount() > 0 {
			s.P50, s.P99 = float64(h.ValueAtQuantile(50))/1000, float64(h.ValueAtQuantile(99))/1000
		}
		ph.Series = append(ph.Series, s)
		prevT, prevN = now, n
		r.progress("[%s] t=%3.0fs STOPs %6s/s (%d of %d acked, %d refused elsewhere) STOP→refused p50 %.2fms p99 %.2fms",
			ph.Name, s.T, num(s.MOAcked), n, r.cfg.ClusterSTOPs, p.refused.Load(), s.P50, s.P99)
		if err := watch(); err != nil {
			<-done
			return nil, err
		}
	}
	ph.Seconds = time.Since(start).Seconds()
	ph.Rate = float64(p.acked.Load()) / max(ph.Seconds, 1e-9)
	ph.Latency = Stats(p.latency.all)
	for name, c := range cpu.cores() {
		ph.Figures["cpu_cores_"+name] = c
	}
	p.figures(ph)
	after, err := scrapeLag(r.ctx, p.nodes)
	if err == nil {
		lagFigures(ph, before, after)
	}
	r.rep.Phases = append(r.rep.Phases, ph)
	r.checkStops(ph.Name, p)
	return ph, err
}

// stopPhaseLoaded times the STOPs while MT load at rate runs over the
// nodes; the load stops when the STOPs are done.
func (r *runner) stopPhaseLoaded(p *stopProbe, nodes []*Gateway, rate float64, procs []*Process) (*Phase, error) {
	before, err := scrapeLag(r.ctx, nodes)
	if err != nil {
		return nil, err
	}
	p.reset()
	addrs := make([]string, len(nodes))
	for i, g := range nodes {
		addrs[i] = g.SMPPAddr
	}
	// The load's own bound is the run's: it is stopped once the STOPs are
	// done (they are bounded, each by its timeouts).
	d := time.Duration(r.cfg.ClusterSTOPs)*(stopAckTimeout+stopRefuseTimeout)/stopWorkers + r.cfg.Duration
	l, err := StartLoad(r.ctx, LoadConfig{Addrs: addrs, SystemID: nodes[0].SystemID, Password: nodes[0].Password,
		Binds: r.cfg.Binds * len(nodes), Window: r.cfg.Window, Rate: rate, Duration: d, Suppressed: r.cfg.Suppressed,
		SuppressedFraction: r.fraction(), Logger: r.log})
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	ph, err := r.measure(phaseOpts{name: "STOPs + MT", path: fmt.Sprintf("timed STOPs as in STOPs idle, with MT load at %s msgs/s over the 3 nodes "+
		"(the latency per second is the MT submits'; the STOPs' is in the figures)", num(rate)),
		load: l, procs: procs, watch: nodesAlive(procs), during: func(ctx context.Context) {
			defer close(done)
			// A second of load first, so every STOP is timed under it.
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			p.run(ctx, r.cfg.ClusterSTOPs)
			l.Stop()
		}})
	select {
	case <-done:
	case <-time.After(stopAckTimeout + stopRefuseTimeout + 5*time.Second):
		err = fmt.Errorf("bench: timed STOPs did not end with the loaded phase: %w", err)
	}
	if ph == nil {
		return nil, err
	}
	p.figures(ph)
	ph.Figures["mt_per_s"] = screened(ph)
	after, serr := scrapeLag(r.ctx, nodes)
	if serr == nil {
		lagFigures(ph, before, after)
	}
	r.checkStops(ph.Name, p)
	return ph, err
}

func procPids(procs []*Process) map[string]int {
	m := make(map[string]int, len(procs))
	for _, p := range procs {
		m[p.Name] = p.Pid()
	}
	return m
}

// interval returns the latencies since the last call and resets them.
func (r *latencyRecorder) interval() *hdrhistogram.Histogram {
	h := newHist()
	r.mu.Lock()
	h.Merge(r.ivl)
	r.ivl.Reset()
	r.mu.Unlock()
	return h
}
