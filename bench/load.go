package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/optgate/optgate/smpp"
)

// LoadConfig configures a load run over SMPP. Zero values take the
// defaults shown.
type LoadConfig struct {
	Addr string // SMPP address: the gateway, the relay or the simulator
	// Addrs, if set, spreads the binds over several addresses (bind i
	// goes to Addrs[i mod len]): the nodes of a cluster. Addr is then
	// unused.
	Addrs    []string
	SystemID string // default "bench"
	Password string // default "benchpw"
	Binds    int    // transceiver binds (default 4)
	Window   int    // submits in flight per bind (default 256, at most 65535)
	// Rate is the total target in submits a second; 0 sends as fast as the
	// windows allow.
	Rate float64
	// Duration stops sending after this long; Count after this many
	// submits. At least one must be set; the first reached wins.
	Duration time.Duration
	Count    int64
	// Drain is how long to wait for answers after the last submit
	// (default 5s); submits still unanswered then count as timeouts.
	Drain time.Duration
	// Receipts asks for a delivery receipt (registered_delivery 1) and
	// correlates receipts with the message ids we were given.
	Receipts bool
	// Suppressed is the size of the suppressed pool (numbers opted out
	// before the run); SuppressedFraction of the submits go to it, the
	// rest to numbers nobody opted out.
	Suppressed         int
	SuppressedFraction float64
	From               string // sender (default OurNumber)
	Text               string // message text (default a 60-character GSM-7 text)
	BindTimeout        time.Duration
	Logger             *slog.Logger
}

func (c *LoadConfig) setDefaults() error {
	if c.Addr == "" && len(c.Addrs) == 0 {
		return errors.New("bench: load: no address")
	}
	if c.SystemID == "" {
		c.SystemID = "bench"
	}
	if c.Password == "" {
		c.Password = "benchpw"
	}
	if c.Binds <= 0 {
		c.Binds = 4
	}
	if c.Binds > 256 {
		return fmt.Errorf("bench: load: %d binds is more than 256", c.Binds)
	}
	if c.Window <= 0 {
		c.Window = 256
	}
	if c.Window > 65535 {
		return fmt.Errorf("bench: load: window %d is more than 65535", c.Window)
	}
	if c.Rate < 0 {
		return fmt.Errorf("bench: load: negative rate %v", c.Rate)
	}
	if c.Duration <= 0 && c.Count <= 0 {
		return errors.New("bench: load: set a duration or a count")
	}
	if c.Drain <= 0 {
		c.Drain = 5 * time.Second
	}
	if c.SuppressedFraction < 0 || c.SuppressedFraction > 1 {
		return fmt.Errorf("bench: load: suppressed fraction %v not in [0,1]", c.SuppressedFraction)
	}
	if c.SuppressedFraction > 0 && c.Suppressed <= 0 {
		return errors.New("bench: load: a suppressed fraction needs a suppressed pool (-suppressed N)")
	}
	if c.From == "" {
		c.From = OurNumber
	}
	if c.Text == "" {
		c.Text = "Your interview is confirmed for Tuesday 10:00. Reply STOP to opt out"
	}
	if c.BindTimeout <= 0 {
		c.BindTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Counters are a load run's running totals. They are safe to read at any
// time.
type Counters struct {
	Sent            atomic.Int64 // submits written
	Accepted        atomic.Int64 // submit_sm_resp ESME_ROK (or HTTP 2xx)
	Refused         atomic.Int64 // answered with a non-zero status (see Statuses)
	Errors          atomic.Int64 // transport errors, generic_nack, unexpected answers
	Timeouts        atomic.Int64 // no answer before the drain ended
	Receipts        atomic.Int64 // delivery receipts received
	ReceiptsMatched atomic.Int64 // receipts whose id matched a message id we were given
	MOs             atomic.Int64 // deliver_sm that were not receipts

	mu       sync.Mutex
	statuses map[uint32]int64 // guarded by mu
}

func (c *Counters) refuse(st uint32) {
	c.Refused.Add(1)
	c.mu.Lock()
	if c.statuses == nil {
		c.statuses = make(map[uint32]int64)
	}
	c.statuses[st]++
	c.mu.Unlock()
}

// Statuses returns the refusals by status, named like "0x00000401
// (opted out)" for SMPP or "HTTP 429" for HTTP.
func (c *Counters) Statuses() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.statuses))
	for st, n := range c.statuses {
		out[statusName(st)] = n
	}
	return out
}

// httpStatusBase marks HTTP status codes in the statuses map.
const httpStatusBase = 1 << 31

func statusName(st uint32) string {
	if st&httpStatusBase != 0 {
		return fmt.Sprintf("HTTP %d", st&^httpStatusBase)
	}
	return fmt.Sprintf("0x%08X %s", st, smpp.CommandStatus(st).String())
}

// Snapshot is a copy of the counters at one moment.
type Snapshot struct {
	At              time.Time        `json:"-"`
	Sent            int64            `json:"sent"`
	Accepted        int64            `json:"accepted"`
	Refused         int64            `json:"refused"`
	Errors          int64            `json:"errors"`
	Timeouts        int64            `json:"timeouts"`
	Receipts        int64            `json:"receipts"`
	ReceiptsMatched int64            `json:"receipts_matched"`
	MOs             int64            `json:"mos"`
	Statuses        map[string]int64 `json:"refused_by_status,omitempty"`
}

// Snapshot copies the counters.
func (c *Counters) Snapshot() Snapshot {
	return Snapshot{At: time.Now(), Sent: c.Sent.Load(), Accepted: c.Accepted.Load(), Refused: c.Refused.Load(),
		Errors: c.Errors.Load(), Timeouts: c.Timeouts.Load(), Receipts: c.Receipts.Load(),
		ReceiptsMatched: c.ReceiptsMatched.Load(), MOs: c.MOs.Load(), Statuses: c.Statuses()}
}

// Answered is accepted + refused.
func (s Snapshot) Answered() int64 { return s.Accepted + s.Refused }

// newHist returns a latency histogram in microseconds, 1µs to 60s, three
// significant digits.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 60_000_000, 3) }

// latencyRecorder is a pair of histograms (whole run and current
// interval) behind one mutex; each load worker owns one so the lock is
// uncontended except when the sampler takes the interval.
type latencyRecorder struct {
	mu  sync.Mutex
	all *hdrhistogram.Histogram // guarded by mu
	ivl *hdrhistogram.Histogram // guarded by mu
}

func newRecorder() *latencyRecorder { return &latencyRecorder{all: newHist(), ivl: newHist()} }

func (r *latencyRecorder) record(d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	r.mu.Lock()
	r.all.RecordValue(us)
	r.ivl.RecordValue(us)
	r.mu.Unlock()
}

// Loader is the common face of the SMPP and HTTP load generators.
type Loader interface {
	Counters() *Counters
	// Interval returns the latencies recorded since the last call.
	Interval() *hdrhistogram.Histogram
	// Wait blocks until the run has ended and returns its result.
	Wait() *LoadResult
	// Stop ends sending early; Wait still drains.
	Stop()
}

// LoadResult is the outcome of a load run.
type LoadResult struct {
	Snapshot
	Start, End time.Time // first submit, last answer (or end of drain)
	Latency    *hdrhistogram.Histogram
}

// Elapsed is the run's duration from the first submit to the last answer.
func (r *LoadResult) Elapsed() time.Duration { return r.End.Sub(r.Start) }

// Rate is answered submits a second.
func (r *LoadResult) Rate() float64 {
	if s := r.Elapsed().Seconds(); s > 0 {
		return float64(r.Answered()) / s
	}
	return 0
}

// Load is a running SMPP load generator.
type Load struct {
	cfg      LoadConfig
	counters Counters
	binds    []*loadBind
	corr     *correlator
	budget   atomic.Int64 // submits left when Count is set
	stop     chan struct{}
	stopOnce sync.Once
	start    time.Time
	lastAns  atomic.Int64 // unix nanos of the last answer
	done     chan struct{}
	result   *LoadResult
}

// StartLoad binds every session (failing fast with a clear error when the
// address cannot be reached or the bind is refused) and starts sending.
// The run ends on its own at its duration or count, or when ctx ends.
func StartLoad(ctx context.Context, cfg LoadConfig) (*Load, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	l := &Load{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.Receipts {
		l.corr = newCorrelator()
	}
	if cfg.Count > 0 {
		l.budget.Store(cfg.Count)
	} else {
		l.budget.Store(1<<62 - 1)
	}
	for i := 0; i < cfg.Binds; i++ {
		b, err := dialBind(ctx, l, i)
		if err != nil {
			for _, b := range l.binds {
				b.nc.Close()
			}
			return nil, err
		}
		l.binds = append(l.binds, b)
	}
	l.start = time.Now()
	l.lastAns.Store(l.start.UnixNano())
	for _, b := range l.binds {
		b.run()
	}
	go l.supervise(ctx)
	return l, nil
}

func (l *Load) supervise(ctx context.Context) {
	var deadline <-chan time.Time
	if l.cfg.Duration > 0 {
		t := time.NewTimer(l.cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	sendersDone := make(chan struct{})
	go func() {
		for _, b := range l.binds {
			<-b.writerDone
		}
		close(sendersDone)
	}()
	select {
	case <-deadline:
	case <-ctx.Done():
	case <-l.stop:
	case <-sendersDone: // count reached, or every bind failed
	}
	l.Stop()
	<-sendersDone
	// Drain: wait for answers, bounded.
	drainEnd := time.Now().Add(l.cfg.Drain)
	for time.Now().Before(drainEnd) && l.inflight() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if n := l.inflight(); n > 0 {
		l.counters.Timeouts.Add(int64(n))
	}
	// Receipts trail their responses: stay bound until every accepted
	// message's receipt arrived, within the same drain bound.
	for l.corr != nil && time.Now().Before(drainEnd) && ctx.Err() == nil &&
		l.counters.ReceiptsMatched.Load() < l.counters.Accepted.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	for _, b := range l.binds {
		b.unbind()
	}
	hist := newHist()
	for _, b := range l.binds {
		b.lat.mu.Lock()
		hist.Merge(b.lat.all)
		b.lat.mu.Unlock()
	}
	end := time.Unix(0, l.lastAns.Load())
	l.result = &LoadResult{Snapshot: l.counters.Snapshot(), Start: l.start, End: end, Latency: hist}
	close(l.done)
}

// addr is where bind i connects.
func (c *LoadConfig) addr(i int) string {
	if len(c.Addrs) > 0 {
		return c.Addrs[i%len(c.Addrs)]
	}
	return c.Addr
}

func (l *Load) inflight() int {
	n := 0
	for _, b := range l.binds {
		if !b.dead.Load() {
			n += b.window - len(b.free)
		}
	}
	return n
}

// Counters returns the live counters.
func (l *Load) Counters() *Counters { return &l.counters }

// Interval returns the latencies recorded since the last call and resets
// them.
func (l *Load) Interval() *hdrhistogram.Histogram {
	h := newHist()
	for _, b := range l.binds {
		b.lat.mu.Lock()
		h.Merge(b.lat.ivl)
		b.lat.ivl.Reset()
		b.lat.mu.Unlock()
	}
	return h
}

// Stop ends sending; answers are still drained.
func (l *Load) Stop() { l.stopOnce.Do(func() { close(l.stop) }) }

// Wait waits for the end of the run and returns the result.
func (l *Load) Wait() *LoadResult {
	<-l.done
	return l.result
}

// correlator matches receipts to submit_sm_resp message ids, in either
// order (a receipt may overtake its response on another bind).
type correlator struct {
	shards [64]struct {
		mu sync.Mutex
		m  map[string]uint8 // 1: response seen, 2: receipt seen; guarded by mu
	}
}

func newCorrelator() *correlator {
	c := &correlator{}
	for i := range c.shards {
		c.shards[i].m = make(map[string]uint8)
	}
	return c
}

// see records side (1 response, 2 receipt) for id and reports whether
// the other side had been seen (a match).
func (c *correlator) see(id []byte, side uint8) bool {
	var h uint32 = 2166136261
	for _, b := range id {
		h = (h ^ uint32(b)) * 16777619
	}
	s := &c.shards[h%uint32(len(c.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[string(id)]; ok && v != side {
		delete(s.m, string(id))
		return true
	}
	s.m[string(id)] = side
	return false
}

// sortedKeys returns m's keys in order (for stable output).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
