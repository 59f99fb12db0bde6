package consent

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newHarness(t)
	h.cfg.Registerer = reg
	h.reopen()
	h.mo("acme", ChannelSMS, senderA, rcptA, "ARRET")
	h.check("acme", ChannelSMS, senderA, rcptA, CategoryMarketing)
	h.check("acme", ChannelSMS, senderA, "+13035550123", CategoryMarketing)
	mfs, err := reg.Gather()
	requireNoErr(t, err)
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "555") {
					t.Fatalf("%s carries a phone number label %q", mf.GetName(), l.GetValue())
				}
			}
		}
	}
	for _, name := range []string{"optgate_consent_store_sync_seconds", "optgate_consent_store_batch_size",
		"optgate_consent_keyword_matches_total", "optgate_consent_decisions_total"} {
		if !got[name] {
			t.Errorf("metric %s missing (have %v)", name, got)
		}
	}
	// A second store on the same registry is an error, not a panic.
	cfg := h.cfg
	cfg.Dir = t.TempDir()
	if _, err := Open(cfg); err == nil {
		t.Fatal("want duplicate registration error")
	}
}
