package consent

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/consent/keyword"
)

// metrics are the package's Prometheus metrics (namespace optgate, subsystem
// consent). Labels never carry phone numbers or message ids.
type metrics struct {
	syncSeconds  prometheus.Histogram
	batchSize    prometheus.Histogram
	commitErrors prometheus.Counter
	keywords     *prometheus.CounterVec // class, lang
	decisions    *prometheus.CounterVec // outcome, reason
	// decision counters resolved once, so Check does not allocate.
	allow  prometheus.Counter
	blocks [numReasons]prometheus.Counter
	events *prometheus.CounterVec // type
	held   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "optgate", "consent"
	m := &metrics{
		syncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "store_sync_seconds",
			Help:    "Time to write and fsync one group-commit batch.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "store_batch_size",
			Help:    "Consent changes made durable by one fsync.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "store_commit_errors_total",
			Help: "Group-commit batches that failed to write or sync.",
		}),
		keywords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "keyword_matches_total",
			Help: "Inbound messages matched as consent keywords, by class and language.",
		}, []string{"class", "lang"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "decisions_total",
			Help: "Outbound consent checks by outcome and reason.",
		}, []string{"outcome", "reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "events_total",
			Help: "Events emitted to tenants, by type.",
		}, []string{"type"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "held_messages",
			Help: "Messages held for attestation by this process (approximate; changes since start).",
		}),
	}
	m.allow = m.decisions.WithLabelValues("allow", "none")
	for r := ReasonOptedOut; r < numReasons; r++ {
		m.blocks[r] = m.decisions.WithLabelValues("block", r.String())
	}
	// The series the shipped dashboard and alerts use exist from the start
	// (at 0), so panels and ratios work before the first match or event.
	for c := keyword.OptOut; c <= keyword.MarketingOptOut; c++ {
		m.keywords.WithLabelValues(c.String(), DefaultLang)
	}
	for _, e := range []string{EventArchived, EventHeldExpired} {
		m.events.WithLabelValues(e)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.syncSeconds, m.batchSize, m.commitErrors,
			m.keywords, m.decisions, m.events, m.held} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("consent: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) decision(d Decision) {
	if d.Allow {
		m.allow.Inc()
		return
	}
	if d.Reason < numReasons {
		m.blocks[d.Reason].Inc()
	}
}
