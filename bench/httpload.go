package bench

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// HTTP load kinds.
const (
	HTTPOptgate = "optgate" // POST /v1/messages with the tenant's bearer token
	HTTPKannel  = "kannel"  // GET /cgi-bin/sendsms on smsbox
)

// HTTPLoadConfig configures a load run over HTTP with a fasthttp client.
type HTTPLoadConfig struct {
	Kind        string // HTTPOptgate or HTTPKannel
	Addr        string // host:port of the API
	Token       string // optgate: the tenant's API token
	User, Pass  string // kannel: sendsms user
	Concurrency int    // requests in flight (default 256)
	Rate        float64
	Duration    time.Duration
	Count       int64
	Timeout     time.Duration // per request (default 10s)

	Suppressed         int
	SuppressedFraction float64
	From, Text         string
	Logger             *slog.Logger
}

// HTTPLoad is a running HTTP load generator. It implements Loader.
type HTTPLoad struct {
	cfg      HTTPLoadConfig
	client   *fasthttp.Client
	counters Counters
	recs     []*latencyRecorder
	issued   atomic.Int64
	stop     chan struct{}
	once     sync.Once
	start    time.Time
	lastAns  atomic.Int64
	done     chan struct{}
	result   *LoadResult
}

// StartHTTPLoad starts the workers. A first request is made synchronously
// so that an unreachable API fails at once with a clear error.
func StartHTTPLoad(cfg HTTPLoadConfig) (*HTTPLoad, error) {
	if cfg.Kind != HTTPOptgate && cfg.Kind != HTTPKannel {
		return nil, fmt.Errorf("bench: HTTP load kind %q: want optgate or kannel", cfg.Kind)
	}
	if cfg.Addr == "" {
		return nil, errors.New("bench: HTTP load: no address")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 256
	}
	if cfg.Duration <= 0 && cfg.Count <= 0 {
		return nil, errors.New("bench: HTTP load: set a duration or a count")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.SuppressedFraction > 0 && cfg.Suppressed <= 0 {
		return nil, errors.New("bench: HTTP load: a suppressed fraction needs a suppressed pool")
	}
	if cfg.From == "" {
		cfg.From = OurNumber
	}
	if cfg.Text == "" {
		cfg.Text = "Your interview is confirmed for Tuesday 10:00. Reply STOP to opt out"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &HTTPLoad{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{}),
		client: &fasthttp.Client{MaxConnsPerHost: cfg.Concurrency, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout,
			NoDefaultUserAgentHeader: true, MaxIdemponentCallAttempts: 1}}
	for i := 0; i < (cfg.Concurrency+15)/16; i++ {
		h.recs = append(h.recs, newRecorder())
	}
	// Probe: one request, not counted.
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	h.build(req, rand.New(rand.NewPCG(1, 2)), []byte(nil))
	if err := h.client.DoTimeout(req, resp, 5*time.Second); err != nil {
		return nil, fmt.Errorf("bench: cannot reach the %s HTTP API at %s: %w", cfg.Kind, cfg.Addr, err)
	}
	if sc := resp.StatusCode(); sc == fasthttp.StatusUnauthorized || sc == fasthttp.StatusForbidden || sc == fasthttp.StatusNotFound {
		return nil, fmt.Errorf("bench: the %s HTTP API at %s refused the first request: %d %s", cfg.Kind, cfg.Addr, sc, resp.Body())
	}
	h.start = time.Now()
	h.lastAns.Store(h.start.UnixNano())
	var wg sync.WaitGroup
	for i := 0; i < cfg.Concurrency; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); h.worker(i) }()
	}
	go func() {
		var deadline <-chan time.Time
		if cfg.Duration > 0 {
			t := time.NewTimer(cfg.Duration)
			defer t.Stop()
			deadline = t.C
		}
		all := make(chan struct{})
		go func() { wg.Wait(); close(all) }()
		select {
		case <-deadline:
		case <-h.stop:
		case <-all:
		}
		h.Stop()
		<-all
		hist := newHist()
		for _, r := range h.recs {
			r.mu.Lock()
			hist.Merge(r.all)
			r.mu.Unlock()
		}
		h.result = &LoadResult{Snapshot: h.counters.Snapshot(), Start: h.start, End: time.Unix(0, h.lastAns.Load()), Latency: hist}
		close(h.done)
	}()
	return h, nil
}

// build fills req with one message to a recipient chosen by the mix.
func (h *HTTPLoad) build(req *fasthttp.Request, rng *rand.Rand, dst []byte) []byte {
	cfg := &h.cfg
	dst = dst[:0]
	if cfg.SuppressedFraction > 0 && rng.Float64() < cfg.SuppressedFraction {
		dst = appendNANP(dst, suppressedAreas, rng.IntN(cfg.Suppressed))
	} else {
		dst = appendNANP(dst, allowedAreas, rng.IntN(perArea*len(allowedAreas)))
	}
	switch cfg.Kind {
	case HTTPOptgate:
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("http://" + cfg.Addr + "/v1/messages")
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
		req.Header.SetContentType("application/json")
		b := req.Body()[:0]
		b = append(b, `{"to":"+`...)
		b = append(b, dst...)
		b = append(b, `","from":"`...)
		b = append(b, cfg.From...)
		b = append(b, `","text":`...)
		b = strconv.AppendQuote(b, cfg.Text)
		b = append(b, `,"channel":"sms"}`...)
		req.SetBodyRaw(b)
	case HTTPKannel:
		req.Header.SetMethod(fasthttp.MethodGet)
		q := url.Values{"username": {cfg.User}, "password": {cfg.Pass}, "from": {trimPlus(cfg.From)},
			"to": {string(dst)}, "text": {cfg.Text}}
		req.SetRequestURI("http://" + cfg.Addr + "/cgi-bin/sendsms?" + q.Encode())
	}
	return dst
}

func (h *HTTPLoad) worker(i int) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(i)))
	rec := h.recs[i/16]
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	var dst []byte
	c := &h.counters
	for {
		select {
		case <-h.stop:
			return
		default:
		}
		n := h.issued.Add(1)
		if h.cfg.Count > 0 && n > h.cfg.Count {
			return
		}
		if h.cfg.Rate > 0 {
			due := h.start.Add(time.Duration(float64(n-1) / h.cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-h.stop:
					return
				case <-time.After(d):
				}
			}
		}
		dst = h.build(req, rng, dst)
		t0 := time.Now()
		c.Sent.Add(1)
		err := h.client.DoTimeout(req, resp, h.cfg.Timeout)
		now := time.Now()
		h.lastAns.Store(now.UnixNano())
		if err != nil {
			if c.Errors.Add(1) <= 3 {
				h.cfg.Logger.Warn("bench: HTTP request failed", "kind", h.cfg.Kind, "err", err)
			}
			continue
		}
		rec.record(now.Sub(t0))
		sc := resp.StatusCode()
		if sc >= 200 && sc < 300 {
			c.Accepted.Add(1)
		} else {
			c.refuse(httpStatusBase | uint32(sc))
		}
	}
}

// Counters returns the live counters.
func (h *HTTPLoad) Counters() *Counters { return &h.counters }

// Interval returns the latencies since the last call.
func (h *HTTPLoad) Interval() *hdrhistogram.Histogram {
	out := newHist()
	for _, r := range h.recs {
		r.mu.Lock()
		out.Merge(r.ivl)
		r.ivl.Reset()
		r.mu.Unlock()
	}
	return out
}

// Stop ends the run early.
func (h *HTTPLoad) Stop() { h.once.Do(func() { close(h.stop) }) }

// Wait waits for the end of the run.
func (h *HTTPLoad) Wait() *LoadResult {
	<-h.done
	return h.result
}
