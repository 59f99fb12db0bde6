package gateway

import (
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/smpp"
)

// metrics are the gateway's Prometheus series (namespace optgate). No
// label ever carries a phone number or a message id.
type metrics struct {
	messages        *prometheus.CounterVec   // direction, channel, outcome
	blocked         *prometheus.CounterVec   // tenant, reason
	replies         *prometheus.CounterVec   // kind, lang
	mo              *prometheus.CounterVec   // tenant, outcome
	receipts        *prometheus.CounterVec   // smsc, outcome
	forwarded       *prometheus.CounterVec   // what, via
	pdus            *prometheus.CounterVec   // side, dir, command, status
	smscSessions    *prometheus.GaugeVec     // smsc: bound sessions
	smscUp          *prometheus.GaugeVec     // smsc: 1 while at least one session is bound
	buildInfo       *prometheus.GaugeVec     // version, revision, goversion
	upstreamBinds   prometheus.GaugeFunc     // bound upstream sessions
	windowUsed      *prometheus.GaugeVec     // smsc
	submitLatency   *prometheus.HistogramVec // smsc
	queueDepth      *prometheus.GaugeVec     // queue
	queueExpired    *prometheus.CounterVec   // queue
	webhookAttempts *prometheus.CounterVec   // tenant
	webhookFailures *prometheus.CounterVec   // tenant, kind
	storeSync       prometheus.Histogram
	storeBatch      prometheus.Histogram
	panics          prometheus.Counter
	// unkeyed counts inbound messages whose sender or destination could
	// not be keyed (dead-lettered, or lost when even that failed).
	unkeyed *prometheus.CounterVec // channel, reason

	// Per-message counters resolved once: WithLabelValues hashes its
	// labels on every call, which showed at 100k messages a second.
	mtOut [2][status.NumKinds]prometheus.Counter // channel (sms, whatsapp) × outcome kind
}

func (m *metrics) mtOutcome(channel string, k OutcomeKind) prometheus.Counter {
	ch := 0
	if channel == ChannelWhatsApp {
		ch = 1
	}
	if k >= status.NumKinds {
		k = 0
	}
	return m.mtOut[ch][k]
}

func newMetrics(reg prometheus.Registerer, g *Gateway) *metrics {
	const ns = "optgate"
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "messages_total",
			Help: "Messages by direction (mt, mo), channel and outcome."}, []string{"direction", "channel", "outcome"}),
		blocked: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "blocked_total",
			Help: "Outbound messages refused by the consent screen, by tenant and reason."}, []string{"tenant", "reason"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "auto_replies_total",
			Help: "Auto-replies sent (confirmations, help, prompts) by kind and language."}, []string{"kind", "lang"}),
		mo: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "mo_total",
			Help: "Mobile-originated messages by tenant and outcome."}, []string{"tenant", "outcome"}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "receipts_total",
			Help: "Delivery receipts from SMSCs by outcome (correlated, parked, uncorrelated, unparsable; on a cluster node claimed: forwarded by the node that owns the message, retried: the SMSC was asked to send it again)."}, []string{"smsc", "outcome"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "forwarded_total",
			Help: "Receipts and MOs forwarded to tenants, by what and how."}, []string{"what", "via"}),
		pdus: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "smpp", Name: "pdus_total",
			Help: "SMPP PDUs by side (upstream, smsc), direction, command and status."}, []string{"side", "dir", "command", "status"}),
		smscSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "smpp", Name: "smsc_sessions",
			Help: "Bound sessions per SMSC."}, []string{"smsc"}),
		smscUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "smpp", Name: "smsc_up",
			Help: "1 while at least one session to the SMSC is bound, else 0."}, []string{"smsc"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "build_info",
			Help: "Always 1; the labels say which build runs."}, []string{"version", "revision", "goversion"}),
		windowUsed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "smpp", Name: "smsc_window_used",
			Help: "Requests in flight per SMSC (sampled at scrape)."}, []string{"smsc"}),
		submitLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "smpp", Name: "submit_seconds",
			Help: "Time from submit to the SMSC's response.", Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)}, []string{"smsc"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "gateway", Name: "queue_depth",
			Help: "Items waiting in the durable queues (webhook, deliver, mt)."}, []string{"queue"}),
		queueExpired: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "queue_expired_total",
			Help: "Durable queue items given up after their maximum age or a permanent failure (webhook, deliver, mt)."}, []string{"queue"}),
		webhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "webhook_attempts_total",
			Help: "Webhook POST attempts by tenant."}, []string{"tenant"}),
		webhookFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "webhook_failures_total",
			Help: "Failed webhook attempts by tenant and kind (network, 4xx, 5xx)."}, []string{"tenant", "kind"}),
		storeSync: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "gateway", Name: "store_sync_seconds",
			Help: "Gateway store group-commit write+fsync latency.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		storeBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "gateway", Name: "store_batch_size",
			Help: "Writes per gateway store sync.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "panics_total",
			Help: "Panics recovered at a seam."}),
	}
	m.upstreamBinds = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: "smpp", Name: "upstream_sessions",
		Help: "Sessions open on the SMPP server."}, func() float64 {
		if g.smppSrv == nil {
			return 0
		}
		return float64(len(g.smppSrv.Sessions()))
	})
	for ch, name := range []string{ChannelSMS, ChannelWhatsApp} {
		for k := range status.NumKinds {
			ok := k.String()
			if k == 0 {
				ok = "unknown"
			}
			m.mtOut[ch][k] = m.messages.WithLabelValues("mt", name, ok)
		}
	}
	version, revision := buildVersion()
	m.buildInfo.WithLabelValues(version, revision, runtime.Version()).Set(1)
	if reg != nil {
		reg.MustRegister(m.messages, m.blocked, m.replies, m.mo, m.receipts, m.forwarded, m.pdus, m.smscSessions, m.smscUp,
			m.buildInfo, m.upstreamBinds, m.windowUsed, m.submitLatency, m.queueDepth, m.queueExpired, m.webhookAttempts, m.webhookFailures,
			m.storeSync, m.storeBatch, m.panics)
	}
	m.unkeyed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "inbound_unkeyed_total",
		Help: "Inbound messages whose sender or destination address could not be keyed, by channel and reason (dead-lettered unless the reason is deadletter_failed)."},
		[]string{"channel", "reason"})
	for _, r := range []string{unkeyedNoSender, unkeyedBadWaID, unkeyedUnmapped} {
		m.unkeyed.WithLabelValues(ChannelWhatsApp, r) // exist at 0 from the start
	}
	for _, r := range unkeyedReasons {
		m.unkeyed.WithLabelValues(ChannelSMS, r) // exist at 0 from the start
	}
	if reg != nil {
		reg.MustRegister(m.unkeyed)
	}
	return m
}

// pduObserver counts PDUs for a side. Label values are bounded whatever a
// peer sends: an unknown command is "unknown", a status without a name
// (SMPP 3.4's and optgate's own) is "other", whatever its range. Counters for named
// commands and statuses are cached in a copy-on-write table per direction
// keyed by the raw header fields, so the hot path is one integer-keyed map
// lookup; anything else takes the slow path and is not cached, so the table
// stays small.
func (m *metrics) pduObserver(side string) func(dir string, h smpp.Header) {
	type table = map[uint64]prometheus.Counter
	var (
		mu      sync.Mutex // serialises writers of in and out
		in, out atomic.Pointer[table]
	)
	in.Store(&table{})
	out.Store(&table{})
	return func(dir string, h smpp.Header) {
		tp := &out
		if dir == "in" {
			tp = &in
		}
		k := uint64(h.ID)<<32 | uint64(h.Status)
		if c, ok := (*tp.Load())[k]; ok {
			c.Inc()
			return
		}
		cmd := "unknown"
		if h.ID.Known() {
			cmd = h.ID.String()
		}
		st := "ok"
		switch {
		case h.Status == smpp.StatusOK:
		case h.Status.Known():
			st = h.Status.String()
		default: // reserved and vendor codes too: a peer could send each of them
			st = "other"
		}
		c := m.pdus.WithLabelValues(side, dir, cmd, st)
		c.Inc()
		if !h.ID.Known() || (h.Status != smpp.StatusOK && !h.Status.Known()) {
			return
		}
		mu.Lock()
		old := *tp.Load()
		nt := make(table, len(old)+1)
		for kk, v := range old {
			nt[kk] = v
		}
		nt[k] = c
		tp.Store(&nt)
		mu.Unlock()
	}
}

// buildVersion is the main module's version and VCS revision from the
// build info ("devel" and "" when unknown).
func buildVersion() (version, revision string) {
	version = "devel"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version, ""
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		version = v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			revision = s.Value
		}
	}
	return version, revision
}

// Label values the gateway counts with, initialised at start so every
// series the shipped dashboard and alerts use exists before traffic.
var (
	moOutcomes       = []string{"forwarded", "keyword", "duplicate", "store_failed", "invalid_number", "bad_udh", "bad_part"}
	receiptOutcomes  = []string{"correlated", "parked", "uncorrelated", "unparsable"}
	webhookFailKinds = []string{"network", "4xx", "5xx"}
)

// initSeries creates at 0 the labelled series of the configured tenants
// and SMSCs.
func (g *Gateway) initSeries() {
	m := g.metrics
	for _, t := range g.tenantList {
		for r := consent.ReasonOptedOut; r <= consent.ReasonNoConsent; r++ {
			m.blocked.WithLabelValues(t.ID, r.String())
		}
		for _, o := range moOutcomes {
			m.mo.WithLabelValues(t.ID, o)
		}
		m.webhookAttempts.WithLabelValues(t.ID)
		for _, k := range webhookFailKinds {
			m.webhookFailures.WithLabelValues(t.ID, k)
		}
		m.replies.WithLabelValues(string(consent.ReplyOptOut), t.cfg.DefaultLang)
	}
	m.mo.WithLabelValues("", "unknown_number")
	m.mo.WithLabelValues("", "incomplete_multipart")
	m.receipts.WithLabelValues("", "uncorrelated")
	for _, w := range []string{"receipt", "spooled", "mo"} {
		m.forwarded.WithLabelValues(w, "smpp")
	}
	for name := range g.links {
		m.smscSessions.WithLabelValues(name)
		m.smscUp.WithLabelValues(name)
		m.windowUsed.WithLabelValues(name)
		m.submitLatency.WithLabelValues(name)
		for _, o := range receiptOutcomes {
			m.receipts.WithLabelValues(name, o)
		}
		for _, dir := range []string{"in", "out"} {
			m.pdus.WithLabelValues("smsc", dir, "submit_sm", "ok")
		}
	}
	for _, dir := range []string{"in", "out"} {
		m.pdus.WithLabelValues("upstream", dir, "submit_sm", "ok")
	}
}

// whatsappIdentityMetrics are the WhatsApp identity and status counters of
// waperson.go.
func whatsappIdentityMetrics(reg prometheus.Registerer) (numberChanges prometheus.Counter, statusIgnored *prometheus.CounterVec) {
	numberChanges = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "optgate", Subsystem: "whatsapp",
		Name: "number_changes_total", Help: "user_changed_number notifications applied (consent moved to the new number)."})
	statusIgnored = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "optgate", Subsystem: "whatsapp",
		Name: "statuses_ignored_total", Help: "Status webhooks ignored: unknown_status (undocumented value) or not_tenant " +
			"(biz_opaque not a message of the business number's tenant)."}, []string{"reason"})
	statusIgnored.WithLabelValues("unknown_status")
	statusIgnored.WithLabelValues("not_tenant")
	if reg != nil {
		reg.MustRegister(numberChanges, statusIgnored)
	}
	return numberChanges, statusIgnored
}
