package cluster

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cluster's collectors, namespace optgate, subsystem
// cluster. No label carries a phone number, tenant or message id.
//
//	optgate_cluster_replication_lag_seconds  histogram: the node's staleness (Status.Lag), sampled every heartbeat
//	optgate_cluster_lag_seconds              gauge: the staleness now
//	optgate_cluster_feed_connected           gauge: 1 while the consent feed delivers
//	optgate_cluster_quorum                   gauge: 1 while the stream has a leader and a quorum of current replicas
//	optgate_cluster_peers                    gauge: the stream's current replicas, leader included
//	optgate_cluster_stream_messages          gauge: messages in the consent stream
//	optgate_cluster_stream_bytes             gauge: bytes in the consent stream
//	optgate_cluster_applied_sequence         gauge: the last stream sequence applied here
//	optgate_cluster_append_records_total     counter by result (ok, error)
//	optgate_cluster_append_seconds           histogram: one Append, publish to the last quorum ack
//	optgate_cluster_shared_puts_total        counter by result (ok, dropped: queue full, failed: not acknowledged)
//	optgate_cluster_receipt_claims_total     counter by side (asked: this node's claims; served: its answers) and result
type metrics struct {
	lag       prometheus.Histogram
	appendDur prometheus.Histogram
	appended  *prometheus.CounterVec
	okRecs    prometheus.Counter
	errRecs   prometheus.Counter
	shared    *prometheus.CounterVec
	sharedOK  prometheus.Counter
	sharedDrop,
	sharedFail prometheus.Counter
	claims   *prometheus.CounterVec
	follower atomic.Pointer[Follower]
	gauges   []gauge
}

type gauge struct {
	desc  *prometheus.Desc
	value func(Status) float64
}

// newMetrics makes the collectors and registers them on reg when it is not
// nil; a nil *metrics is never returned, so callers need no checks.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "optgate", "cluster"
	m := &metrics{
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "replication_lag_seconds",
			Help:    "Staleness of this node's consent state (now minus when it last provably had applied all of the log), sampled every heartbeat.",
			Buckets: []float64{.005, .01, .025, .05, .075, .1, .15, .25, .5, 1, 2.5, 5, 10}}),
		appendDur: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "append_seconds",
			Help:    "Time of one Append of consent changes, from publish to the last quorum acknowledgement.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		appended: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "append_records_total",
			Help: "Consent changes appended to the replicated log, by result (ok: quorum acknowledged)."}, []string{"result"}),
	}
	m.okRecs, m.errRecs = m.appended.WithLabelValues("ok"), m.appended.WithLabelValues("error")
	m.shared = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "shared_puts_total",
		Help: "Facts put in the shared bucket (WhatsApp windows, last channels), by result: ok, dropped (queue full), failed (not acknowledged)."},
		[]string{"result"})
	m.sharedOK, m.sharedDrop, m.sharedFail = m.shared.WithLabelValues("ok"), m.shared.WithLabelValues("dropped"), m.shared.WithLabelValues("failed")
	m.claims = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "receipt_claims_total",
		Help: "Receipt claims (a receipt a node could not correlate, asked of the other nodes), by side (asked, served) and result " +
			"(asked: taken, nobody, failed; served: taken, not_mine, failed)."}, []string{"side", "result"})
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g := func(name, help string, value func(Status) float64) {
		m.gauges = append(m.gauges, gauge{prometheus.NewDesc(prometheus.BuildFQName(ns, sub, name), help, nil, nil), value})
	}
	g("lag_seconds", "Staleness of this node's consent state now.", func(s Status) float64 { return s.Lag.Seconds() })
	g("feed_connected", "1 while this node's consent feed delivers.", func(s Status) float64 { return b(s.FeedConnected) })
	g("quorum", "1 while the consent stream has a leader and a quorum of current replicas.", func(s Status) float64 { return b(s.Quorum) })
	g("peers", "Current replicas of the consent stream, leader included.", func(s Status) float64 {
		n := 0
		for _, p := range s.Peers {
			if p.Current && !p.Offline {
				n++
			}
		}
		return float64(n)
	})
	g("stream_messages", "Messages in the consent stream.", func(s Status) float64 { return float64(s.StreamMsgs) })
	g("stream_bytes", "Bytes in the consent stream.", func(s Status) float64 { return float64(s.StreamBytes) })
	g("applied_sequence", "Last consent stream sequence applied on this node.", func(s Status) float64 { return float64(s.Applied) })
	if reg != nil {
		for _, c := range []prometheus.Collector{m.lag, m.appendDur, m.appended, m.shared, m.claims, m} {
			if err := reg.Register(c); err != nil {
				return nil, errors.Join(errors.New("cluster: registering metrics"), err)
			}
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector for the follower's gauges.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, g := range m.gauges {
		ch <- g.desc
	}
}

// Collect implements prometheus.Collector: the gauges read the running
// follower's Status; none is reported without a follower.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	f := m.follower.Load()
	if f == nil {
		return
	}
	s := f.Status()
	for _, g := range m.gauges {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, g.value(s))
	}
}

// follow makes f the follower the gauges report; unfollow stops that if
// f is still the one.
func (m *metrics) follow(f *Follower)   { m.follower.Store(f) }
func (m *metrics) unfollow(f *Follower) { m.follower.CompareAndSwap(f, nil) }

func (m *metrics) sampleLag(d time.Duration) { m.lag.Observe(d.Seconds()) }

func (m *metrics) appendDone(n int, d time.Duration, err error) {
	if err != nil {
		m.errRecs.Add(float64(n))
		return
	}
	m.okRecs.Add(float64(n))
	m.appendDur.Observe(d.Seconds())
}

// claimed counts one of this node's claims by result.
func (m *metrics) claimed(r ClaimResult) { m.claims.WithLabelValues("asked", r.String()).Inc() }
