package smpp

import (
	"net"
	"time"
)

// Guard names a protective action of the Server, told to Server.OnGuard
// (for metrics). The set is fixed, so a label made from it is bounded.
type Guard uint8

// The Server's protective actions.
const (
	GuardIPLocked      Guard = iota + 1 // an address reached MaxFailedBinds and is locked
	GuardAccountLocked                  // an account reached AccountLockAfter and is locked
	GuardAddressLocked                  // a connection from a locked address was closed at accept
	GuardMaxConns                       // a connection was closed at accept: MaxConns open
	GuardIPConns                        // a connection was closed at accept: its address holds MaxConnsPerIP
	GuardBindTimeout                    // a connection was closed for not binding within BindTimeout
)

var guardNames = [...]string{GuardIPLocked: "ip_locked", GuardAccountLocked: "account_locked",
	GuardAddressLocked: "address_locked", GuardMaxConns: "max_connections", GuardIPConns: "ip_connections",
	GuardBindTimeout: "bind_timeout"}

// Guards lists every Guard, for initialising counters at zero.
var Guards = []Guard{GuardIPLocked, GuardAccountLocked, GuardAddressLocked, GuardMaxConns, GuardIPConns, GuardBindTimeout}

// String returns the guard's metric label value.
func (g Guard) String() string {
	if int(g) < len(guardNames) && guardNames[g] != "" {
		return guardNames[g]
	}
	return "unknown"
}

// acctRecord is one system_id's failed binds.
type acctRecord struct {
	fails   int       // failed binds since the last success or lock
	pending int       // binds of this system_id being authenticated
	locks   int       // locks so far: the back-off exponent
	until   time.Time // locked until
	last    time.Time // last failure
}

func (s *Server) guard(g Guard) {
	if s.OnGuard != nil {
		s.OnGuard(g)
	}
}

func (s *Server) accountLockPolicy() (after int, lo, hi time.Duration) {
	after, lo, hi = s.AccountLockAfter, s.AccountLockMin, s.AccountLockMax
	if after == 0 {
		after = 10
	}
	if lo <= 0 {
		lo = time.Minute
	}
	if hi <= 0 {
		hi = time.Hour
	}
	return after, lo, max(lo, hi)
}

// lockFor is the length of an account's n-th lock (n from 1): lo doubling,
// capped at hi.
func lockFor(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// Refusals of admit, also the log's "why".
const (
	whyIPLocked      = "address locked after failed binds"
	whyAccountLocked = "account locked after failed binds"
)

// admit decides, before Authenticate runs, whether a bind from a for
// systemID may be tried. It refuses one while the address is over
// MaxFailedBinds or the system_id is locked, or while the binds of the
// system_id already being authenticated would lock it if they all failed.
// An admitted bind is counted as a failure of its address at once (and
// given back by settle if it succeeds), so binds racing on pre-opened
// connections cannot overshoot the address's limit either.
func (s *Server) admit(a net.Addr, systemID string) (why string) {
	n, w := s.failWindow()
	after, lo, hi := s.accountLockPolicy()
	now := time.Now()
	h := hostOf(a)
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.failed[h]; f != nil {
		if now.Sub(f.first) > w {
			delete(s.failed, h)
		} else if f.n >= n {
			return whyIPLocked
		}
	}
	r := s.accts[systemID]
	if r != nil {
		if now.Before(r.until) {
			return whyAccountLocked
		}
		if r.locks > 0 && now.Sub(r.last) > hi+lockFor(r.locks, lo, hi) {
			r.locks = 0 // quiet for longer than the longest lock: back-off forgotten
		}
		if after > 0 && r.fails+r.pending >= after {
			return whyAccountLocked
		}
	} else {
		if len(s.accts) >= maxFailedHosts {
			return whyAccountLocked // only under a flood of binds in flight: refuse rather than grow
		}
		if s.accts == nil {
			s.accts = make(map[string]*acctRecord)
		}
		r = &acctRecord{}
		s.accts[systemID] = r
	}
	r.pending++
	s.recordFailureLocked(h, now)
	return ""
}

// settle records the outcome of an admitted bind. known says Authenticate
// named the account (a wrong password for an existing system_id); only
// those failures count toward the account's lock, so the table holds only
// real accounts (plus the binds in flight). It reports whether the bind
// locked the account.
func (s *Server) settle(a net.Addr, systemID string, known, ok bool) (locked bool, until time.Duration) {
	after, lo, hi := s.accountLockPolicy()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		if f := s.failed[hostOf(a)]; f != nil && f.n > 0 {
			f.n-- // the admitted attempt was not a failure
		}
	}
	r := s.accts[systemID]
	if r == nil {
		return false, 0
	}
	r.pending--
	switch {
	case ok:
		r.fails = 0
	case known:
		r.fails++
		r.last = now
		if after > 0 && r.fails >= after {
			r.locks++
			until = lockFor(r.locks, lo, hi)
			r.until = now.Add(until)
			r.fails = 0
			locked = true
		}
	}
	if r.pending == 0 && r.fails == 0 && r.locks == 0 {
		delete(s.accts, systemID)
	}
	return locked, until
}

// AccountLocked reports whether binds of systemID are refused by a lock.
func (s *Server) AccountLocked(systemID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.accts[systemID]
	return r != nil && time.Now().Before(r.until)
}

// perIPLimit is MaxConnsPerIP with its default (negative: no cap).
func (s *Server) perIPLimit() int {
	if s.MaxConnsPerIP == 0 {
		return 64
	}
	return s.MaxConnsPerIP
}

// ipConnsFull reports whether host holds MaxConnsPerIP connections;
// s.mu is held.
func (s *Server) ipConnsFull(host string) bool {
	limit := s.perIPLimit()
	return limit > 0 && s.ipConns[host] >= limit
}
