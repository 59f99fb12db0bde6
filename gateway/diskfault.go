package gateway

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/smpp"
)

// Disk faults: optgate fails closed and recovers by itself.
//
// A store is unhealthy while its filesystem has less than
// store.min_free_bytes free, a probe write and fsync in its directory
// fails (ENOSPC, a read-only filesystem, a vanished directory) or takes
// longer than store.slow_fsync, its Badger files are gone, or its
// committer fenced itself after a failed commit. The probe runs every
// store.probe_interval. While any store is unhealthy:
//
//   - deliver_sm and data_sm from SMSCs (MO and receipts) are answered
//     ESME_RX_T_APPN before anything is written: the SMSC retries them;
//   - every HTTP POST, PUT, PATCH or DELETE under /v1/ and /webhooks/
//     (sends, consent changes, imports, WhatsApp webhooks) answers 503
//     store_unavailable with Retry-After: the client or Meta retries;
//   - submit_sm is still screened, from the memory index, which holds
//     every opt-out ever synced: a recipient who opted out still gets the
//     permanent refusal (0x00000401...), so a refused write can never make
//     Check say "allow" for someone who opted out. Every other submit is
//     refused with ESME_RX_T_APPN: it could not be recorded, and while
//     STOPs are being refused the index may miss one a handset is sending;
//   - reads go on: Check, GET /v1/consent/..., history, export, message
//     status (they read the memory index or Badger's files, which a full
//     or read-only disk does not stop);
//   - /readyz answers 503 with the reason, optgate_store_healthy{store} is
//     0, and one line "store unhealthy" is logged per store when it turns
//     unhealthy (and one "store healthy again" when it recovers), never a
//     line per refused message.
//
// Recovery needs nobody: once the probe passes again the gate opens. A
// consent store that fenced itself (a commit failed) is reopened by the
// probe loop (consent.Store.Reopen) once its filesystem passes the probe;
// writes are refused until then. The gateway store's committer fences
// itself too (internal/groupcommit); the probe loop lifts that fence once
// the filesystem passes the probe (gatewayFence says why it is not
// reopened), reporting the store unhealthy for that round. A store whose files vanished stays
// unhealthy: reopening would start an empty store and forget every
// opt-out, so it needs a restart on a restored directory.
//
// Badger writes its write-ahead log (*.mem) through a memory map of a
// sparse file: on a full filesystem a store into a page never written
// kills the process with SIGBUS. The probe preallocates (fallocate) every
// .mem file it finds, so writes into the current log never need new disk
// blocks; the free-space threshold keeps room for the next log, created
// when a memtable fills.

const probeFile = ".optgate-probe"

// storeProbe is the health of one store directory. Only the guard's loop
// goroutine touches its fields, except what the probe goroutine writes to
// its result channel.
type storeProbe struct {
	name, dir string
	gauge     prometheus.Gauge
	healthy   bool
	reason    string
	since     time.Time              // when it turned unhealthy
	running   chan string            // the probe in flight, if any
	started   time.Time              // when it started
	allocated map[string]int64       // .mem files preallocated, by name
	state     atomic.Pointer[string] // reason when unhealthy, for readyz; nil when healthy
}

// diskGuard probes the stores and gates writes while one is unhealthy.
type diskGuard struct {
	g         *Gateway
	stores    []*storeProbe
	bad       atomic.Int32 // unhealthy stores
	reopening chan error   // a consent Reopen in flight
}

func (g *Gateway) newDiskGuard() *diskGuard {
	dg := &diskGuard{g: g}
	gauge := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "optgate", Subsystem: "", Name: "store_healthy",
		Help: "1 while the store's disk accepts writes (free space, probe write and fsync), 0 while optgate refuses writes."},
		[]string{"store"})
	if err := g.reg.Register(gauge); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			gauge = are.ExistingCollector.(*prometheus.GaugeVec)
		}
	}
	for _, name := range []string{"consent", "gateway"} {
		p := &storeProbe{name: name, dir: filepath.Join(g.cfg.Store.Dir, name), gauge: gauge.WithLabelValues(name),
			healthy: true, allocated: map[string]int64{}}
		p.gauge.Set(1)
		dg.stores = append(dg.stores, p)
	}
	return dg
}

// storesOK reports whether every store accepts writes. Hot path: one
// atomic load.
func (g *Gateway) storesOK() bool { return g.disk == nil || g.disk.bad.Load() == 0 }

// storeProblem returns why a store is unhealthy, or "".
func (g *Gateway) storeProblem() string {
	if g.disk == nil {
		return ""
	}
	for _, p := range g.disk.stores {
		if r := p.state.Load(); r != nil {
			return p.name + " store: " + *r
		}
	}
	return ""
}

// refuseSMSCWhileUnhealthy answers a deliver_sm or data_sm
// ESME_RX_T_APPN while a store is unhealthy, and reports whether it did.
func (g *Gateway) refuseSMSCWhileUnhealthy(r *smpp.Request) bool {
	if g.storesOK() {
		return false
	}
	switch r.PDU.(type) {
	case *smpp.DeliverSM, *smpp.DataSM:
		g.metrics.mo.WithLabelValues("", "store_unhealthy").Inc()
		r.Respond(smpp.StatusXTAppn, nil)
		return true
	}
	return false
}

// run probes every interval until the gateway stops.
func (dg *diskGuard) run() {
	t := time.NewTicker(dg.g.cfg.Store.ProbeInterval)
	defer t.Stop()
	for {
		dg.check()
		select {
		case <-dg.g.stop:
			return
		case <-t.C:
		}
	}
}

// check probes each store once and records transitions.
func (dg *diskGuard) check() {
	cfg := dg.g.cfg.Store
	for _, p := range dg.stores {
		reason := p.probe(cfg.MinFreeBytes, cfg.SlowFsync, dg.g.stop)
		switch {
		case reason != "":
		case p.name == "consent":
			reason = dg.consentFence()
		case p.name == "gateway":
			reason = dg.gatewayFence()
		}
		dg.set(p, reason)
	}
}

// consentFence returns why the consent store refuses writes, if it does,
// and reopens it when it fenced itself (its disk passed the probe).
func (dg *diskGuard) consentFence() string {
	c := dg.g.consent
	if dg.reopening != nil {
		select {
		case err := <-dg.reopening:
			dg.reopening = nil
			if err != nil {
				dg.g.log.Error("consent store: reopen failed; writes still refused", "err", err)
				return "fenced after a failed commit; reopen failed: " + err.Error()
			}
		default:
			return "fenced after a failed commit; reopening"
		}
	}
	if c == nil || !c.Failed() {
		return ""
	}
	ch := make(chan error, 1)
	dg.reopening = ch
	go func() { ch <- c.Reopen() }()
	return "fenced after a failed commit; reopening"
}

// gatewayFence returns why the gateway store refused writes, when its
// committer fenced itself after a failed commit, and lifts the fence: its
// disk has just passed the probe. The round that finds the fence reports
// the store unhealthy (readyz, optgate_store_healthy, one log line), the
// next one healthy unless a commit failed again.
//
// Unlike consent's, the gateway store is not reopened: its Badger is read
// and written by the outbox, receipts, statuses and remembered MOs while
// they run. Nor need it be: a write of theirs reported failed that did
// land after all is only redone (an outbox item delivered again, a
// receipt or status written again, an MO answered from the retry record),
// and while the disk fails the probe the fence stays and the gate is shut.
func (dg *diskGuard) gatewayFence() string {
	c := dg.g.commit
	if c == nil {
		return ""
	}
	err := c.Fenced()
	if err == nil {
		return ""
	}
	c.Unfence()
	dg.g.log.Warn("gateway store: writes refused after a failed commit; the disk passed the probe, writes resume", "err", err)
	return "fenced after a failed commit (" + err.Error() + "); writes resume after the next probe"
}

func (dg *diskGuard) set(p *storeProbe, reason string) {
	log := dg.g.log
	switch {
	case reason != "" && p.healthy:
		p.healthy, p.since = false, time.Now()
		dg.bad.Add(1)
		p.gauge.Set(0)
		log.Error("store unhealthy: refusing writes (MO ESME_RX_T_APPN, API 503), screening from memory",
			"store", p.name, "reason", reason)
	case reason == "" && !p.healthy:
		p.healthy = true
		dg.bad.Add(-1)
		p.gauge.Set(1)
		log.Info("store healthy again: writes accepted", "store", p.name, "unhealthy_for", time.Since(p.since).Round(time.Millisecond).String())
	}
	p.reason = reason
	if reason == "" {
		p.state.Store(nil)
	} else {
		p.state.Store(&reason)
	}
}

// probe returns why the store's directory cannot take writes, or "". The
// write and fsync run on a goroutine of their own: one that hangs is
// waited for at most slow, reported, and not started again until it ends.
func (p *storeProbe) probe(minFree int64, slow time.Duration, stop <-chan struct{}) string {
	if p.running == nil {
		p.running = make(chan string, 1)
		p.started = time.Now()
		go func(ch chan<- string) { ch <- p.probeOnce(minFree, slow) }(p.running)
	}
	wait := time.NewTimer(max(0, slow-time.Since(p.started)))
	defer wait.Stop()
	select {
	case r := <-p.running:
		p.running = nil
		return r
	case <-stop:
		return p.reason
	case <-wait.C:
		return fmt.Sprintf("fsync slow: write and fsync probe not done after %s (store.slow_fsync %s)",
			time.Since(p.started).Round(time.Millisecond), slow)
	}
}

// probeOnce checks the store's files, preallocates its write-ahead logs,
// checks the free space and writes, fsyncs and removes a probe file.
func (p *storeProbe) probeOnce(minFree int64, slow time.Duration) string {
	if _, err := os.Stat(filepath.Join(p.dir, badger.ManifestFilename)); err != nil {
		return "store files missing (" + err.Error() + "); restore the directory and restart"
	}
	if r := p.preallocate(); r != "" {
		return r
	}
	if free, err := freeBytes(p.dir); err == nil && free < minFree {
		return fmt.Sprintf("disk full: %d bytes free, below store.min_free_bytes %d", free, minFree)
	}
	start := time.Now()
	name := filepath.Join(p.dir, probeFile)
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return "probe write: " + err.Error()
	}
	_, err = f.Write(make([]byte, 4096))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	os.Remove(name)
	if err != nil {
		return "probe write: " + err.Error()
	}
	if d := time.Since(start); d > slow {
		return fmt.Sprintf("fsync slow: probe write and fsync took %s (store.slow_fsync %s)", d.Round(time.Millisecond), slow)
	}
	return ""
}

// preallocate allocates the disk blocks of every Badger write-ahead log
// (*.mem) not yet done, so that writes through its memory map never need
// new blocks (on a full disk they would end the process with SIGBUS).
func (p *storeProbe) preallocate() string {
	mems, err := filepath.Glob(filepath.Join(p.dir, "*.mem"))
	if err != nil {
		return ""
	}
	seen := make(map[string]bool, len(mems))
	for _, m := range mems {
		seen[m] = true
		fi, err := os.Stat(m)
		if err != nil || p.allocated[m] == fi.Size() {
			continue
		}
		switch err := allocate(m, fi.Size()); {
		case err == nil, errors.Is(err, errNoPrealloc):
			p.allocated[m] = fi.Size()
		case errors.Is(err, os.ErrNotExist):
		default:
			return "disk full: cannot preallocate the write-ahead log " + filepath.Base(m) + ": " + err.Error()
		}
	}
	for m := range p.allocated {
		if !seen[m] {
			delete(p.allocated, m)
		}
	}
	return ""
}
