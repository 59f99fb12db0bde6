package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Goals of the issue, on a 2-core machine with every process on it.
const (
	GoalMTThroughput     = 100_000 // msgs/s
	GoalMTReceipts       = 50_000  // msgs/s
	GoalMOStorm          = 10_000  // durable opt-outs/s with confirmations
	GoalP99AddedMS       = 2.0     // ms at 50% of max rate
	GoalPassthroughRatio = 0.60
	GoalKannelRatio      = 8.0
)

func (r *runner) baselineDuration() time.Duration {
	return min(max(r.cfg.Duration/2, 2*time.Second), 10*time.Second)
}

// passthroughPhase measures load → relay → simulator. The relay runs in a
// process of its own when the harness knows its binary (RelayBin), as
// optgate does; otherwise in the harness's process, which the report says.
func (r *runner) passthroughPhase(d time.Duration) (*Phase, error) {
	addr, path := "", "load → null relay (its own process) → simulator"
	var procs []*Process
	if r.cfg.RelayBin != "" {
		dir := filepath.Join(r.tmp, "relay")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		p, a, err := StartRelayProcess(r.ctx, r.cfg.RelayBin, dir, r.sim.Addr(), 0)
		if err != nil {
			return nil, err
		}
		defer p.Stop(2 * time.Second)
		addr, procs = a, []*Process{p}
	} else {
		relay, err := StartRelay("127.0.0.1:0", r.sim.Addr(), r.log)
		if err != nil {
			return nil, err
		}
		defer relay.Close()
		addr, path = relay.Addr(), "load → null relay (in the harness's process) → simulator"
	}
	l, err := r.loadTo(addr, "bench", "benchpw", d, r.cfg.Rate, false, 0)
	if err != nil {
		return nil, err
	}
	return r.measure(phaseOpts{name: "passthrough", path: path, load: l, procs: procs})
}

func (r *runner) passthrough() error {
	if err := r.startSim(false); err != nil {
		return err
	}
	_, err := r.passthroughPhase(r.cfg.Duration)
	return err
}

func (r *runner) gatewayPath() string {
	if r.gw.Kind == "optgate" {
		return "load → optgate (consent check) → simulator"
	}
	return fmt.Sprintf("load → %s gateway → simulator", r.gw.Kind)
}

func (r *runner) fraction() float64 {
	if r.gw != nil && r.gw.Kind == "passthrough" {
		return 0
	}
	return r.cfg.SuppressedFraction
}

// gatewayPhase runs MT load through the gateway for d.
func (r *runner) gatewayPhase(name string, d time.Duration, rate float64, receipts bool, frac float64) (*Phase, error) {
	if r.cfg.Proto == "http" && r.gw.HTTPAddr != "" {
		// Receipts are not asked for over HTTP: they would go to a webhook.
		hl, err := StartHTTPLoad(HTTPLoadConfig{Kind: HTTPOptgate, Addr: r.gw.HTTPAddr, Token: r.gw.TenantToken,
			Concurrency: r.cfg.Concurrency, Rate: rate, Duration: d, Suppressed: r.cfg.Suppressed, SuppressedFraction: frac,
			Logger: r.log})
		if err != nil {
			return nil, err
		}
		return r.measure(phaseOpts{name: name, path: "fasthttp → optgate HTTP API (consent check) → simulator", load: hl,
			during: r.profileDuring(d)})
	}
	l, err := r.loadTo(r.gw.SMPPAddr, r.gw.SystemID, r.gw.Password, d, rate, receipts, frac)
	if err != nil {
		return nil, fmt.Errorf("%w (gateway %s)", err, r.gw.Kind)
	}
	return r.measure(phaseOpts{name: name, path: r.gatewayPath(), load: l, waitReceipts: receipts,
		during: r.profileDuring(d)})
}

// profileDuring starts optgate's CPU profile a little after the load
// starts, so it covers steady state.
func (r *runner) profileDuring(d time.Duration) func(context.Context) {
	if r.cfg.ProfileSeconds <= 0 {
		return nil
	}
	return func(ctx context.Context) {
		select {
		case <-time.After(min(d/4, 2*time.Second)):
		case <-ctx.Done():
			return
		}
		r.profile(ctx)
	}
}

func (r *runner) checkRefusals(ph *Phase) {
	if ph.Load == nil || r.fraction() == 0 {
		return
	}
	if ph.Load.Refused == 0 && ph.Load.Sent > 100 {
		r.note("no submit was refused although %.0f%% went to suppressed numbers: the preload did not take effect", 100*r.fraction())
	}
}

func (r *runner) mtThroughput(receipts bool) error {
	if err := r.startSim(receipts); err != nil {
		return err
	}
	var base *Phase
	if r.cfg.Baseline && !receipts {
		var err error
		if base, err = r.passthroughPhase(r.baselineDuration()); err != nil {
			return err
		}
	}
	if err := r.startGateway(); err != nil {
		return err
	}
	ph, err := r.gatewayPhase(r.gw.Kind, r.cfg.Duration, r.cfg.Rate, receipts, r.fraction())
	if ph == nil {
		return err
	}
	r.checkRefusals(ph)
	if receipts {
		rate := min(ph.Rate, ph.Figures["receipts_per_s"])
		ph.Figures["msgs_with_receipts_per_s"] = rate
		r.rep.Goals = append(r.rep.Goals, newGoal("mt-receipts msgs/s (with receipts)", GoalMTReceipts, rate, "msgs/s", false))
		if ph.Load != nil && ph.Load.ReceiptsMatched < ph.Load.Accepted {
			r.note("%d of %d accepted messages got no correlated receipt", ph.Load.Accepted-ph.Load.ReceiptsMatched, ph.Load.Accepted)
		}
		return err
	}
	if r.cfg.Proto == "http" {
		r.note("load over the HTTP API: the goals are for SMPP and are not checked")
		return err
	}
	r.rep.Goals = append(r.rep.Goals, newGoal("mt-throughput msgs/s", GoalMTThroughput, ph.Rate, "msgs/s", false))
	if base != nil && base.Rate > 0 {
		ratio := ph.Rate / base.Rate
		ph.Figures["ratio_to_passthrough"] = ratio
		r.rep.Goals = append(r.rep.Goals, newGoal("ratio to passthrough", GoalPassthroughRatio, ratio, "×", false))
	}
	return err
}

func (r *runner) moStorm() error {
	if err := r.startSim(false); err != nil {
		return err
	}
	if err := r.startGateway(); err != nil {
		return err
	}
	acct := r.gw.SMSCSystemID
	// The platform is bound, as in production: optgate forwards each MO to
	// its receiver (an unbound platform's MOs are spooled to disk instead,
	// one more synced write each). The stub forwards MOs to whoever binds
	// through it.
	if r.gw.Kind == "passthrough" {
		acct = r.gw.SystemID
	}
	sink, err := r.loadTo(r.gw.SMPPAddr, r.gw.SystemID, r.gw.Password, r.cfg.Duration+15*time.Second, 1, false, 0)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, func() { sink.Stop(); sink.Wait() })
	if err := r.waitReceiver(acct); err != nil {
		return err
	}
	g, err := r.sim.StartMO(r.ctx, MOConfig{Account: acct, Mix: []MOText{{"STOP", 1}}, Distinct: true,
		FirstHandset: 1_000_000, Window: r.cfg.MOWindow, Duration: r.cfg.Duration})
	if err != nil {
		return err
	}
	ph, err := r.measure(phaseOpts{name: r.gw.Kind, path: "simulator STOP MOs → " + r.gw.Kind + " → confirmations → simulator",
		mo: g, waitConfirmations: r.gw.Kind != "passthrough", during: r.profileDuring(r.cfg.Duration)})
	if ph == nil || ph.MO == nil {
		return err
	}
	if r.gw.Kind == "passthrough" {
		ph.Rate = ph.MO.AckedRate // the stub sends no confirmations
		return err
	}
	rate := min(ph.MO.AckedRate, ph.MO.ConfirmRate)
	ph.Figures["optouts_with_confirmation_per_s"] = rate
	ph.Rate = rate
	r.rep.Goals = append(r.rep.Goals, newGoal("mo-storm opt-outs/s (confirmed)", GoalMOStorm, rate, "opt-outs/s", false))
	if ph.MO.Confirmations < ph.MO.Acked {
		r.note("%d acknowledged STOPs got no confirmation at the simulator", ph.MO.Acked-ph.MO.Confirmations)
	}
	return err
}

// waitReceiver waits (≤10s) until account has a receiver bound to the
// simulator.
func (r *runner) waitReceiver(account string) error {
	deadline := time.Now().Add(10 * time.Second)
	for len(r.sim.SMPP().Receivers(account)) == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: no %q receiver bound to the simulator after 10s", account)
		}
		if err := r.ctx.Err(); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (r *runner) mixed() error {
	if err := r.startSim(true); err != nil {
		return err
	}
	if err := r.startGateway(); err != nil {
		return err
	}
	acct := r.gw.SMSCSystemID
	if r.gw.Kind == "passthrough" {
		acct = r.gw.SystemID
	}
	l, err := r.loadTo(r.gw.SMPPAddr, r.gw.SystemID, r.gw.Password, r.cfg.Duration, r.cfg.Rate, true, r.fraction())
	if err != nil {
		return err
	}
	if err := r.waitReceiver(acct); err != nil {
		l.Stop()
		l.Wait()
		return err
	}
	g, err := r.sim.StartMO(r.ctx, MOConfig{Account: acct, Rate: r.cfg.MORate, Mix: DefaultMOMix, Handsets: 1_000_000,
		Window: r.cfg.MOWindow, Duration: r.cfg.Duration})
	if err != nil {
		l.Stop()
		l.Wait()
		return err
	}
	ph, err := r.measure(phaseOpts{name: r.gw.Kind, path: r.gatewayPath() + ", with receipts, plus an MO mix", load: l, mo: g,
		waitReceipts: true, during: r.profileDuring(r.cfg.Duration)})
	if ph != nil {
		r.checkRefusals(ph)
	}
	return err
}

func (r *runner) latency() error {
	if err := r.startSim(false); err != nil {
		return err
	}
	if err := r.startGateway(); err != nil {
		return err
	}
	rate := r.cfg.Rate
	if rate == 0 {
		ph, err := r.gatewayPhase("max", min(max(r.cfg.Duration/3, 2*time.Second), 10*time.Second), 0, false, 0)
		if err != nil {
			return err
		}
		rate = ph.Rate / 2
		r.progress("maximum %s msgs/s; measuring latency at %s msgs/s", num(ph.Rate), num(rate))
	}
	r.rep.Config["latency_rate"] = rate
	half := max(r.cfg.Duration/2, time.Second)
	l, err := r.loadTo(r.sim.Addr(), "bench", "benchpw", half, rate, false, 0)
	if err != nil {
		return err
	}
	direct, err := r.measure(phaseOpts{name: "direct", path: "load → simulator", load: l})
	if err != nil {
		return err
	}
	via, err := r.gatewayPhase(r.gw.Kind, half, rate, false, 0)
	if err != nil || direct.Latency == nil || via.Latency == nil {
		return err
	}
	add := map[string]float64{
		"added_p50_ms":   via.Latency.P50 - direct.Latency.P50,
		"added_p99_ms":   via.Latency.P99 - direct.Latency.P99,
		"added_p99_9_ms": via.Latency.P999 - direct.Latency.P999,
	}
	for k, v := range add {
		via.Figures[k] = v
	}
	r.rep.Goals = append(r.rep.Goals, newGoal("p99 added latency at 50% of max", GoalP99AddedMS, add["added_p99_ms"], "ms", true))
	if via.Rate < 0.9*rate {
		r.note("the gateway phase reached %s msgs/s of the %s asked: latency is measured above saturation", num(via.Rate), num(rate))
	}
	return nil
}
