package whatsapp

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the package's collectors (namespace optgate, subsystem whatsapp). Labels never
// carry phone numbers or message ids. One Metrics may be shared by a Client and a Receiver.
type Metrics struct {
	sends        *prometheus.CounterVec // outcome, class
	retries      *prometheus.CounterVec // class
	sendSeconds  prometheus.Histogram
	tokenErrors  prometheus.Counter
	webhooks     *prometheus.CounterVec // result
	events       *prometheus.CounterVec // kind
	spoolDepth   prometheus.Gauge
	spoolDead    prometheus.Counter
	dedupDrops   prometheus.Counter
	skipped      prometheus.Counter // partial-garbage items skipped while parsing
	unknownIDs   prometheus.Counter // changes for phone-number ids not in the config
	handlerErrs  prometheus.Counter
	commitGroups prometheus.Histogram // bodies per spool group commit
	panics       prometheus.Counter
	notifyErrors *prometheus.CounterVec // class; value.errors[] notifications

	resultOK prometheus.Counter // webhooks{result="ok"}, looked up once for the hot path
}

// NewMetrics creates the collectors and registers them on reg; nil reg registers nothing. A
// collector already registered on reg (a second NewMetrics on the same registry) is reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns, sub = "optgate", "whatsapp"
	m := &Metrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sends_total",
			Help: "Send calls by outcome (sent, sent_after_retry, failed, refused, invalid) and error class."}, []string{"outcome", "class"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "send_retries_total",
			Help: "Send attempts retried, by error class."}, []string{"class"}),
		sendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "send_duration_seconds",
			Help: "Time from Send to an accepted message, retries and rate-limit waits included.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		tokenErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "token_errors_total",
			Help: "Graph responses rejecting the access token (codes 0 and 190). Alert on any increase."}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "webhook_requests_total",
			Help: "Webhook requests by result."}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "webhook_events_total",
			Help: "Webhook events handed to the handler, by kind."}, []string{"kind"}),
		spoolDepth: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "spool_depth",
			Help: "Webhook bodies durably spooled and not yet processed."}),
		spoolDead: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "spool_dead_total",
			Help: "Spooled bodies moved to the dead-letter prefix after the handler kept failing."}),
		dedupDrops: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dedup_drops_total",
			Help: "Webhook events dropped as duplicates."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "webhook_skipped_items_total",
			Help: "Malformed entries, changes or items skipped inside otherwise parseable webhook bodies."}),
		unknownIDs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "webhook_unknown_phone_number_total",
			Help: "Webhook changes for phone-number ids not in the configuration, acknowledged and ignored."}),
		handlerErrs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "handler_errors_total",
			Help: "Handler.HandleEvent failures (each is retried)."}),
		commitGroups: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "spool_group_commit_size",
			Help: "Webhook bodies made durable by one synced spool commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "panics_total",
			Help: "Panics recovered in the webhook handler and the handler seam."}),
		notifyErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "notification_errors_total",
			Help: "Errors Meta reported in value.errors[] webhooks (not tied to a message), by error class."}, []string{"class"}),
	}
	if reg == nil {
		m.resultOK = m.webhooks.WithLabelValues("ok")
		return m
	}
	defer m.initSeries()
	m.sends = register(reg, m.sends)
	m.retries = register(reg, m.retries)
	m.sendSeconds = register(reg, m.sendSeconds)
	m.tokenErrors = register(reg, m.tokenErrors)
	m.webhooks = register(reg, m.webhooks)
	m.events = register(reg, m.events)
	m.spoolDepth = register(reg, m.spoolDepth)
	m.spoolDead = register(reg, m.spoolDead)
	m.dedupDrops = register(reg, m.dedupDrops)
	m.skipped = register(reg, m.skipped)
	m.unknownIDs = register(reg, m.unknownIDs)
	m.handlerErrs = register(reg, m.handlerErrs)
	m.commitGroups = register(reg, m.commitGroups)
	m.panics = register(reg, m.panics)
	m.notifyErrors = register(reg, m.notifyErrors)
	m.resultOK = m.webhooks.WithLabelValues("ok")
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a programming error, like prometheus.MustRegister
	}
	return c
}

// ObserveNotificationErrors counts the errors of a value.errors[] notification by class; an
// auth error (0, 190) also counts as a token error, which alerts.
func (m *Metrics) ObserveNotificationErrors(errs []ErrorDetail) {
	for _, e := range errs {
		c := Classify(e.Code, 400)
		m.notifyErrors.WithLabelValues(c.String()).Inc()
		if c == ClassAuth && e.Code != 0 { // 0 here is more likely a missing code than Meta's 0
			m.tokenErrors.Inc()
		}
	}
}

// initSeries creates, at 0, the labelled series the shipped dashboard and
// alerts use, so they exist before the first send or webhook event.
func (m *Metrics) initSeries() {
	m.sends.WithLabelValues("sent", ClassNone.String())
	m.sends.WithLabelValues("failed", ClassPermanent.String())
	m.retries.WithLabelValues(ClassTransient.String())
	for k := KindMessage; k <= KindError; k++ {
		m.events.WithLabelValues(k.String())
	}
}
