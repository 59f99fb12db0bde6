package gateway

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/smpp"
)

// metrics are the gateway's Prometheus series (namespace optgate). No
// label ever carries a phone number or a message id.
type metrics struct {
	messages        *prometheus.CounterVec   // direction, channel, outcome
	blocked         *prometheus.CounterVec   // tenant, reason
	keywords        *prometheus.CounterVec   // class, lang
	replies         *prometheus.CounterVec   // kind, lang
	mo              *prometheus.CounterVec   // tenant, outcome
	receipts        *prometheus.CounterVec   // smsc, outcome
	forwarded       *prometheus.CounterVec   // what, via
	pdus            *prometheus.CounterVec   // side, dir, command, status
	bindUp          *prometheus.GaugeVec     // smsc
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

	// Per-message counters resolved once: WithLabelValues hashes its
	// labels on every call, which showed at 100k messages a second.
	mtOut [2][len(outcomeNames)]prometheus.Counter // channel (sms, whatsapp) × outcome kind
}

func (m *metrics) mtOutcome(channel string, k OutcomeKind) prometheus.Counter {
	ch := 0
	if channel == ChannelWhatsApp {
		ch = 1
	}
	if int(k) >= len(outcomeNames) {
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
		keywords: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "keyword_matches_total",
			Help: "Inbound keyword matches by class and language."}, []string{"class", "lang"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "auto_replies_total",
			Help: "Auto-replies sent (confirmations, help, prompts) by kind and language."}, []string{"kind", "lang"}),
		mo: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "mo_total",
			Help: "Mobile-originated messages by tenant and outcome."}, []string{"tenant", "outcome"}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "receipts_total",
			Help: "Delivery receipts from SMSCs by outcome (correlated, parked, uncorrelated, unparsable)."}, []string{"smsc", "outcome"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "gateway", Name: "forwarded_total",
			Help: "Receipts and MOs forwarded to tenants, by what and how."}, []string{"what", "via"}),
		pdus: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "smpp", Name: "pdus_total",
			Help: "SMPP PDUs by side (upstream, smsc), direction, command and status."}, []string{"side", "dir", "command", "status"}),
		bindUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "smpp", Name: "smsc_binds_up",
			Help: "Bound sessions per SMSC."}, []string{"smsc"}),
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
		for k := range outcomeNames {
			ok := OutcomeKind(k).String()
			if k == 0 {
				ok = "unknown"
			}
			m.mtOut[ch][k] = m.messages.WithLabelValues("mt", name, ok)
		}
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.blocked, m.keywords, m.replies, m.mo, m.receipts, m.forwarded, m.pdus, m.bindUp,
			m.upstreamBinds, m.windowUsed, m.submitLatency, m.queueDepth, m.queueExpired, m.webhookAttempts, m.webhookFailures,
			m.storeSync, m.storeBatch, m.panics)
	}
	return m
}

// pduObserver counts PDUs for a side. Label values are bounded whatever a
// peer sends: an unknown command is "unknown", a status without a name
// outside the vendor and reserved ranges is "other". Counters for named
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
		case h.Status.Known(), h.Status >= 0x100 && h.Status <= 0x4FF:
			st = h.Status.String()
			if len(st) > 24 {
				st = "other"
			}
		default:
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

// inboundUnkeyed registers (once per registry) and returns
// optgate_inbound_unkeyed_total{channel,reason}: inbound messages whose
// sender could not be keyed, kept (dead letter), logged and counted
// instead of being acknowledged and forgotten. Every channel's code calls
// it; a second registration of the same series shares the first, so the
// channels' code can be merged in any order. The WhatsApp reasons (and
// channel="sms") start at 0.
func inboundUnkeyed(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "optgate", Name: "inbound_unkeyed_total",
		Help: "Inbound messages whose sender could not be keyed (kept as dead letters), by channel and reason."},
		[]string{"channel", "reason"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
			c = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	for _, r := range []string{unkeyedNoSender, unkeyedBadWaID, unkeyedUnmapped} {
		c.WithLabelValues(ChannelWhatsApp, r)
	}
	c.WithLabelValues(ChannelSMS, "invalid_address")
	return c
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
