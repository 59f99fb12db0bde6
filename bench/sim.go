package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
	"github.com/optgate/optgate/smpp/smpptest"
)

// SimConfig configures the SMSC simulator. Zero values take the defaults
// shown.
type SimConfig struct {
	Addr     string // listen address (default 127.0.0.1:0)
	SystemID string // if set, binds must use it
	Password string // if set, binds must use it
	// Latency is a ParseLatency spec for the submit_sm_resp delay.
	Latency      string
	Receipts     bool          // a receipt for every submit that asks for one
	ReceiptDelay time.Duration // delay before the receipt
	// ThrottleEvery answers every Nth submit with ESME_RTHROTTLED (0: never).
	ThrottleEvery int
	Window        int // deliver_sm in flight per session (default 1024)
	Logger        *slog.Logger
}

// Sim is the SMSC simulator: a smpptest.Server with counters for the
// harness (confirmations sent to handsets, throttles injected) and an MO
// generator.
type Sim struct {
	*smpptest.Server
	cfg SimConfig

	submitN       atomic.Int64 // submits seen by the hook (for ThrottleEvery)
	throttled     atomic.Int64 // submits answered ESME_RTHROTTLED by ThrottleEvery
	confirmations atomic.Int64 // submits to handset-pool numbers (replies to MOs)
}

// StartSim starts a simulator.
func StartSim(cfg SimConfig) (*Sim, error) {
	lat, err := ParseLatency(cfg.Latency)
	if err != nil {
		return nil, err
	}
	if cfg.ThrottleEvery < 0 {
		return nil, fmt.Errorf("bench: throttle-every %d is negative", cfg.ThrottleEvery)
	}
	if cfg.Window <= 0 {
		cfg.Window = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s := &Sim{cfg: cfg}
	if cfg.Receipts && cfg.ReceiptDelay <= 0 {
		// smpptest sends an undelayed receipt on the session's read
		// goroutine, which then waits for a deliver_sm window slot: an ESME
		// that submits (say, an auto-reply) before it acks deliver_sm
		// deadlocks with it for the 30s receipt timeout. A delay, however
		// small, moves the send to a timer goroutine.
		cfg.ReceiptDelay = time.Microsecond
	}
	s.Server = smpptest.NewUnstartedServer(smpptest.Config{Addr: cfg.Addr, SystemID: cfg.SystemID, Password: cfg.Password,
		Latency: lat, Receipts: cfg.Receipts, ReceiptDelay: cfg.ReceiptDelay, NoRecord: true, Window: cfg.Window,
		Logger: cfg.Logger})
	// The harness's binds submit far past smpp.Server's defaults.
	s.Server.SMPP().Conn.MaxInflight = 1 << 16
	s.Server.SMPP().Conn.EnquireLink = -1
	s.Server.OnPDU(s.hook)
	if err := s.Server.Start(); err != nil {
		return nil, fmt.Errorf("bench: simulator cannot listen on %s: %w", cfg.Addr, err)
	}
	return s, nil
}

// hook counts confirmations and injects throttling; it answers only the
// submits it throttles.
func (s *Sim) hook(r *smpp.Request) bool {
	sm, ok := r.PDU.(*smpp.SubmitSM)
	if !ok {
		return false
	}
	if s.cfg.ThrottleEvery > 0 && s.submitN.Add(1)%int64(s.cfg.ThrottleEvery) == 0 {
		s.throttled.Add(1)
		r.Respond(smpp.StatusThrottled, nil)
		return true
	}
	if isHandset(sm.Dest.Addr) {
		s.confirmations.Add(1)
	}
	return false
}

// Throttled returns how many submits ThrottleEvery refused.
func (s *Sim) Throttled() int64 { return s.throttled.Load() }

// Confirmations returns how many submits went to handset numbers: the
// replies (opt-out confirmations, HELP answers) to the MOs we sent.
func (s *Sim) Confirmations() int64 { return s.confirmations.Load() }

// MOText is one entry of an MO mix.
type MOText struct {
	Text   string
	Weight float64
}

// DefaultMOMix is the MO mix of the smsc command and the mixed scenario:
// opt-out, opt-in and help keywords in English, French and Norwegian,
// "ARRÊT" (which needs UCS-2), and ordinary replies.
var DefaultMOMix = []MOText{
	{"STOP", 30}, {"ARRET", 8}, {"STOPP", 5}, {"ARRÊT", 5}, {"Stop", 2},
	{"START", 10}, {"HELP", 8}, {"AIDE", 4},
	{"see you tomorrow", 12}, {"Oui, à demain", 6}, {"ok thanks!", 6}, {"Ja, vi ses i morgen", 4},
}

// ParseMOMix parses "TEXT:WEIGHT,TEXT:WEIGHT,..." (the weight is after the
// last colon; texts may contain spaces but not commas).
func ParseMOMix(s string) ([]MOText, error) {
	var out []MOText
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i := strings.LastIndexByte(part, ':')
		if i <= 0 {
			return nil, fmt.Errorf("bench: MO mix entry %q: want TEXT:WEIGHT", part)
		}
		w, err := strconv.ParseFloat(part[i+1:], 64)
		if err != nil || w <= 0 {
			return nil, fmt.Errorf("bench: MO mix entry %q: weight must be a positive number", part)
		}
		out = append(out, MOText{Text: part[:i], Weight: w})
	}
	if len(out) == 0 {
		return nil, errors.New("bench: empty MO mix")
	}
	return out, nil
}

// MOConfig configures an MO generator.
type MOConfig struct {
	// Account is the system_id whose receivers get the MOs (default: the
	// first bound receiver's).
	Account string
	// Accounts, if set, takes the place of Account: MO i goes to
	// Accounts[i mod len] (the nodes of a cluster, each bound with its
	// own system_id).
	Accounts []string
	// Rate is MOs a second; 0 sends as fast as they are answered, with
	// Window in flight (an MO storm).
	Rate   float64
	Window int // deliver_sm in flight (default 512)
	Mix    []MOText
	// Handsets is the size of the handset pool the MOs come from (default
	// 100000). Distinct makes every MO come from a new handset instead,
	// starting at handset FirstHandset.
	Handsets     int
	Distinct     bool
	FirstHandset int
	// FromSuppressed takes the senders from the suppressed pool instead of
	// the handset pool (to opt the pool out by MO STOP).
	FromSuppressed bool
	To             string // our number (default OurNumber)
	Duration       time.Duration
	Count          int64
}

// MOGen is a running MO generator.
type MOGen struct {
	Sent    atomic.Int64 // deliver_sm sent
	Acked   atomic.Int64 // deliver_sm_resp ESME_ROK
	Refused atomic.Int64 // deliver_sm_resp with another status
	Errors  atomic.Int64 // not sent or not answered

	lat   *latencyRecorder
	stop  chan struct{}
	once  sync.Once
	done  chan struct{}
	start time.Time
	end   atomic.Int64
}

type moForm struct {
	coding uint8
	data   []byte
	udhi   bool
}

// StartMO starts sending MOs to the bound ESMEs. It runs until its
// duration or count, Stop, or ctx.
func (s *Sim) StartMO(ctx context.Context, cfg MOConfig) (*MOGen, error) {
	if len(cfg.Mix) == 0 {
		cfg.Mix = DefaultMOMix
	}
	if cfg.Window <= 0 {
		cfg.Window = 512
	}
	if cfg.Handsets <= 0 {
		cfg.Handsets = 100000
	}
	if cfg.To == "" {
		cfg.To = OurNumber
	}
	if cfg.Duration <= 0 && cfg.Count <= 0 {
		return nil, errors.New("bench: MO generator needs a duration or a count")
	}
	// Encode each text once; a text longer than one message goes as its
	// concatenated parts.
	var forms [][]moForm
	var cum []float64
	total := 0.0
	for _, m := range cfg.Mix {
		parts, err := coding.Split(m.Text, coding.SplitOptions{Method: coding.UDH8, Ref: uint16(len(forms))})
		if err != nil {
			return nil, fmt.Errorf("bench: MO text %q: %w", m.Text, err)
		}
		var f []moForm
		for _, p := range parts {
			f = append(f, moForm{coding: uint8(p.Coding), data: p.Data, udhi: p.UDHI})
		}
		forms = append(forms, f)
		total += m.Weight
		cum = append(cum, total)
	}
	g := &MOGen{lat: newRecorder(), stop: make(chan struct{}), done: make(chan struct{}), start: time.Now()}
	to := []byte(trimPlus(cfg.To))
	go func() {
		defer close(g.done)
		var deadline <-chan time.Time
		if cfg.Duration > 0 {
			t := time.NewTimer(cfg.Duration)
			defer t.Stop()
			deadline = t.C
		}
		sem := make(chan struct{}, cfg.Window)
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
		var sent int64
		acct := cfg.Account
		for cfg.Count <= 0 || sent < cfg.Count {
			if cfg.Rate > 0 {
				if due := int64(time.Since(g.start).Seconds()*cfg.Rate) - sent; due <= 0 {
					select {
					case <-time.After(max(time.Duration(float64(time.Second)/cfg.Rate), 200*time.Microsecond)):
					case <-deadline:
						goto out
					case <-g.stop:
						goto out
					case <-ctx.Done():
						goto out
					}
					continue
				}
			}
			select {
			case sem <- struct{}{}:
			case <-deadline:
				goto out
			case <-g.stop:
				goto out
			case <-ctx.Done():
				goto out
			}
			if len(cfg.Accounts) > 0 {
				acct = cfg.Accounts[sent%int64(len(cfg.Accounts))]
			}
			if acct == "" {
				acct = s.receiverAccount()
				if acct == "" {
					<-sem
					g.Errors.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
			}
			pool := handsetAreas
			if cfg.FromSuppressed {
				pool = suppressedAreas
			}
			var from []byte
			if cfg.Distinct {
				from = appendNANP(nil, pool, cfg.FirstHandset+int(sent))
			} else {
				from = appendNANP(nil, pool, rng.IntN(cfg.Handsets))
			}
			x := rng.Float64() * total
			k := 0
			for k < len(cum)-1 && x >= cum[k] {
				k++
			}
			sent++
			parts := forms[k]
			for pi, p := range parts {
				d := &smpp.DeliverSM{SM: smpp.SM{
					Source:       smpp.Address{TON: 1, NPI: 1, Addr: from},
					Dest:         smpp.Address{TON: 1, NPI: 1, Addr: to},
					DataCoding:   p.coding,
					ShortMessage: p.data,
				}}
				if p.udhi {
					d.ESMClass |= smpp.ESMClassUDHI
				}
				last := pi == len(parts)-1
				t0 := time.Now()
				g.Sent.Add(1)
				err := s.SMPP().DeliverAsync(ctx, acct, d, func(r smpp.Result) {
					g.lat.record(time.Since(t0))
					g.end.Store(time.Now().UnixNano())
					switch {
					case r.Err == nil:
						g.Acked.Add(1)
					case r.Header.ID != 0: // answered with a non-zero status
						g.Refused.Add(1)
					default:
						g.Errors.Add(1)
					}
					if last {
						<-sem
					}
				})
				if err != nil {
					g.Errors.Add(1)
					if last {
						<-sem
					}
					if errors.Is(err, smpp.ErrNotBound) {
						acct = cfg.Account
						time.Sleep(10 * time.Millisecond)
					}
				}
			}
		}
	out:
		// Wait (bounded) for the answers still due.
		for i := 0; i < cap(sem); i++ {
			select {
			case sem <- struct{}{}:
			case <-time.After(5 * time.Second):
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return g, nil
}

func (s *Sim) receiverAccount() string {
	for _, c := range s.SMPP().Sessions() {
		if c.State().Bound() && c.Mode().CanReceive() {
			return c.SystemID()
		}
	}
	return ""
}

// Stop ends the generator early.
func (g *MOGen) Stop() { g.once.Do(func() { close(g.stop) }) }

// Done is closed when the generator has ended and its answers are in.
func (g *MOGen) Done() <-chan struct{} { return g.done }

// Interval returns the deliver_sm round-trip latencies since the last call.
func (g *MOGen) Interval() *hdrhistogram.Histogram { return g.lat.interval() }

// Latency returns every deliver_sm round-trip latency so far.
func (g *MOGen) Latency() *hdrhistogram.Histogram {
	g.lat.mu.Lock()
	defer g.lat.mu.Unlock()
	return g.lat.all.Clone()
}

// Elapsed is the time from the start to the last answer.
func (g *MOGen) Elapsed() time.Duration {
	e := g.end.Load()
	if e == 0 {
		return 0
	}
	return time.Unix(0, e).Sub(g.start)
}
