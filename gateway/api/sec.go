package api

import (
	"bytes"
	"crypto/subtle"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// httpSec holds the HTTP API's defences that keep state: the lockout of
// addresses that fail authentication and the import slots. Its methods
// are safe for concurrent use.
type httpSec struct {
	failures int           // failed authentications before a lock
	base     time.Duration // first lock; doubles with each further failure
	maxIP    int           // addresses tracked at most

	mu      sync.Mutex // guards addrs, importing, imports
	addrs   map[string]*authAddr
	tracked atomic.Int32 // len(addrs): while 0, no request needs mu to know it is not locked

	maxImports, maxPerTenant int
	importing                int            // imports running
	imports                  map[string]int // imports running by tenant

	proxies []netip.Prefix // http.trusted_proxies

	// The callers a good token stands for, made once: a request keeps a
	// pointer to its own as a user value (no allocation per request).
	admin   *caller
	callers map[string]*caller // by tenant token

	authFailed *prometheus.CounterVec // outcome: unauthorized, locked
	lockouts   prometheus.Counter
	busy       prometheus.Counter
}

// authAddr is one address's recent authentication failures. A success
// does not forget them (a tenant with a good token could otherwise reset
// its count between guesses at other tokens): they are forgotten
// authForget after the last one.
type authAddr struct {
	fails int
	last  time.Time // last failure
	until time.Time // locked until
}

const (
	// authMaxLock caps the doubling lock of an address.
	authMaxLock = 15 * time.Minute
	// authForget is how long after its last failure an unlocked address
	// starts again from zero.
	authForget = 10 * time.Minute
)

// newHTTPSec makes the defences for cfg (a zero limit takes its default,
// as ParseConfig sets it) and its tenants' tokens, registering its
// metrics on reg when not nil.
func newHTTPSec(cfg Config, reg prometheus.Registerer) *httpSec {
	orDefault := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	base := cfg.AuthLockout
	if base <= 0 {
		base = time.Second
	}
	s := &httpSec{admin: &caller{admin: true}, callers: make(map[string]*caller, len(cfg.Tokens)),
		failures: orDefault(cfg.AuthFailures, 10), base: base, maxIP: 1 << 17, addrs: map[string]*authAddr{},
		maxImports: orDefault(cfg.MaxImports, 4), maxPerTenant: orDefault(cfg.MaxImportsPerTenant, 1), imports: map[string]int{},
		authFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "optgate", Subsystem: "http", Name: "auth_failures_total",
			Help: "Refused HTTP authentications: unauthorized (wrong or missing token) or locked (the address is locked out)."},
			[]string{"outcome"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "optgate", Subsystem: "http", Name: "auth_lockouts_total",
			Help: "Addresses locked out after repeated failed HTTP authentications."}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "optgate", Subsystem: "http", Name: "imports_busy_total",
			Help: "Consent imports refused with 429 because too many were running."}),
	}
	for tok, t := range cfg.Tokens {
		s.callers[tok] = &caller{tenant: t}
	}
	for _, p := range cfg.TrustedProxies {
		if pfx, err := ParseCIDR(p); err == nil { // validated with the config
			s.proxies = append(s.proxies, pfx)
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{s.authFailed, s.lockouts, s.busy} {
			_ = reg.Register(c) // a second gateway on one registry keeps the first's series
		}
	}
	return s
}

// anyTracked reports whether some address has recent failures.
func (s *httpSec) anyTracked() bool { return s.tracked.Load() > 0 }

// lockedFor says how much longer addr is locked out (0: not locked); an
// address whose failures are old is forgotten.
func (s *httpSec) lockedFor(addr string, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addrs[addr]
	switch {
	case a == nil:
		return 0
	case now.Before(a.until):
		return a.until.Sub(now)
	case now.Sub(a.last) > authForget:
		delete(s.addrs, addr)
		s.tracked.Store(int32(len(s.addrs)))
	}
	return 0
}

// failed records a failed authentication from addr and returns the lock
// it now has (0: none yet) and its failure count.
func (s *httpSec) failed(addr string, now time.Time) (time.Duration, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.addrs[addr]
	if a == nil {
		if n := len(s.addrs); n >= s.maxIP {
			s.prune(now, time.Minute) // under pressure: keep the locked and the recent
		} else if n > 0 && n%1024 == 0 {
			s.prune(now, authForget)
		}
		if len(s.addrs) >= s.maxIP {
			// Full of addresses still locked or recently failing (an
			// attack from more than maxIP addresses): this one is not
			// tracked, so that memory stays bounded; the counter still
			// shows the failures.
			return 0, 0
		}
		a = &authAddr{}
		s.addrs[addr] = a
		s.tracked.Store(int32(len(s.addrs)))
	} else if now.After(a.until) && now.Sub(a.last) > authForget {
		a.fails = 0
	}
	a.fails++
	a.last = now
	if a.fails < s.failures {
		return 0, a.fails
	}
	lock := authMaxLock
	if n := a.fails - s.failures; n < 30 {
		lock = min(s.base<<n, authMaxLock)
	}
	a.until = now.Add(lock)
	return lock, a.fails
}

// prune drops addresses not locked whose last failure is older than age.
// s.mu is held.
func (s *httpSec) prune(now time.Time, age time.Duration) {
	for k, a := range s.addrs {
		if now.After(a.until) && now.Sub(a.last) > age {
			delete(s.addrs, k)
		}
	}
	s.tracked.Store(int32(len(s.addrs)))
}

// startImport takes an import slot for tenant; false when the tenant or
// the gateway already runs as many imports as allowed.
func (s *httpSec) startImport(tenant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.importing >= s.maxImports || s.imports[tenant] >= s.maxPerTenant {
		return false
	}
	s.importing++
	s.imports[tenant]++
	return true
}

// endImport gives back a slot startImport took.
func (s *httpSec) endImport(tenant string) {
	s.mu.Lock()
	s.importing--
	if s.imports[tenant]--; s.imports[tenant] <= 0 {
		delete(s.imports, tenant)
	}
	s.mu.Unlock()
}

// ParseCIDR reads an IP address (a one-address prefix) or a CIDR.
func ParseCIDR(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p.Masked(), nil
}

// clientAddr is the address a request comes from: its TCP peer, or for a
// peer in http.trusted_proxies the last X-Forwarded-For entry (the one the
// proxy appended; earlier ones are the client's to forge).
func (s *httpSec) clientAddr(ctx *fasthttp.RequestCtx) string {
	peer := ctx.RemoteIP()
	if len(s.proxies) == 0 {
		return peer.String()
	}
	a, ok := netip.AddrFromSlice(peer)
	if !ok {
		return peer.String()
	}
	a = a.Unmap()
	for _, p := range s.proxies {
		if !p.Contains(a) {
			continue
		}
		xff := ctx.Request.Header.Peek("X-Forwarded-For")
		if i := bytes.LastIndexByte(xff, ','); i >= 0 {
			xff = xff[i+1:]
		}
		if c, err := netip.ParseAddr(string(bytes.TrimSpace(xff))); err == nil {
			return c.Unmap().String()
		}
		break
	}
	return peer.String()
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
