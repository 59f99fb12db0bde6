package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/smpp"
)

// applyGuardDefaults fills the SMPP server's bind-protection defaults
// (documented on SMPPConfig and in SECURITY.md).
func (s *SMPPConfig) applyGuardDefaults() {
	if s.MaxConnectionsPerIP == 0 {
		s.MaxConnectionsPerIP = 64
	}
	if s.BindTimeout == 0 {
		s.BindTimeout = 10 * time.Second
	}
	if s.AccountLockAfter == 0 {
		s.AccountLockAfter = 10
	}
	if s.AccountLockMin == 0 {
		s.AccountLockMin = time.Minute
	}
	if s.AccountLockMax == 0 {
		s.AccountLockMax = time.Hour
	}
}

// validateGuard checks the SMPP server's bind-protection settings.
func (s *SMPPConfig) validateGuard(add func(path, f string, a ...any)) {
	if s.BindTimeout < 0 {
		add("smpp.bind_timeout", "must not be negative")
	}
	if s.AccountLockMin < 0 {
		add("smpp.account_lock_min", "must not be negative")
	}
	if s.AccountLockMax < s.AccountLockMin {
		add("smpp.account_lock_max", "shorter than smpp.account_lock_min (%s)", s.AccountLockMin)
	}
}

// guardMetrics count the SMPP server's protective actions.
type guardMetrics struct {
	lockouts *prometheus.CounterVec // scope: ip, account
	closed   *prometheus.CounterVec // reason: address_locked, max_connections, ip_connections, bind_timeout
}

// newGuardMetrics registers the counters with every label value at 0, and
// returns the function to give smpp.Server.OnGuard.
func newGuardMetrics(reg prometheus.Registerer) func(smpp.Guard) {
	const ns = "optgate"
	m := &guardMetrics{
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "smpp", Name: "bind_lockouts_total",
			Help: "Locks after failed binds, by scope (ip: a remote address, account: a system_id)."}, []string{"scope"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "smpp", Name: "unbound_closed_total",
			Help: "Upstream connections closed before a bind, by reason (address_locked, max_connections, ip_connections, bind_timeout)."},
			[]string{"reason"}),
	}
	counters := make([]prometheus.Counter, len(smpp.Guards)+1) // indexed by Guard (from 1)
	for _, gd := range smpp.Guards {
		switch gd {
		case smpp.GuardIPLocked:
			counters[gd] = m.lockouts.WithLabelValues("ip")
		case smpp.GuardAccountLocked:
			counters[gd] = m.lockouts.WithLabelValues("account")
		default:
			counters[gd] = m.closed.WithLabelValues(gd.String())
		}
	}
	if reg != nil {
		reg.MustRegister(m.lockouts, m.closed)
	}
	return func(gd smpp.Guard) {
		if int(gd) < len(counters) && counters[gd] != nil {
			counters[gd].Inc()
		}
	}
}
