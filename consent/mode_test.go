package consent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/optgate/optgate/consent/keyword"
	"github.com/optgate/optgate/internal/testutil"
)

// TestMatchModesThroughInbound: tenants in reasonable-means and first-word
// modes store the opt-outs their mode recognises, with the mode (and for a
// per-se match the word and the message) in the evidence, and store nothing
// for the messages their mode does not recognise.
func TestMatchModesThroughInbound(t *testing.T) {
	mode := func(id string, m keyword.Mode) TenantConfig {
		return testTenant(id, func(c *TenantConfig) { c.Keywords.Mode = m })
	}
	h := newHarness(t, mode("rm", keyword.ReasonableMeans), mode("fw", keyword.FirstWord), mode("ex", keyword.Exact))
	n := 0
	for _, tc := range []struct {
		tenant, text string
		stored       bool
		matchMode    string
		detail       string // substring of Evidence.Detail
	}{
		{"rm", "please revoke my consent", true, "per-se", "reasonable-means: per-se word REVOKE in 'please revoke my consent'"},
		{"rm", "I want to UNSUBSCRIBE!", true, "per-se", "per-se word UNSUBSCRIBE in 'I want to UNSUBSCRIBE!'"},
		{"rm", "ok opt out", true, "per-se", "per-se word OPT OUT"},
		{"rm", "STOP", true, "reasonable-means", "reasonable-means: keyword STOP (opt_out)"},
		{"rm", "Arrêt", true, "reasonable-means", "keyword ARRET (opt_out)"},
		{"rm", "Stop by the office tomorrow", false, "", ""}, // five words: more than MaxWords
		{"rm", "STOPPED", false, "", ""},
		{"rm", "please call me", false, "", ""},
		{"rm", "Fine", false, "", ""},
		{"fw", "STOP please", true, "first-word", "first-word: keyword STOP (opt_out)"},
		{"fw", "arrêt svp merci", true, "first-word", "first-word: keyword ARRET (opt_out)"},
		{"fw", "STOP ALL of it", true, "first-word", "keyword STOP ALL (opt_out_all)"},
		{"fw", "Please stop", false, "", ""},
		{"fw", "STOPPED it", false, "", ""},
		{"fw", "Fine thanks", false, "", ""},
		{"fw", "I will not revoke anything", false, "", ""},
		{"ex", "STOP", true, "exact", "keyword STOP (opt_out)"},
		{"ex", "please revoke my consent", false, "", ""},
		{"ex", "STOP please", false, "", ""},
	} {
		n++
		rcpt := fmt.Sprintf("+1514555%04d", n)
		name := tc.tenant + " " + tc.text
		res := h.mo(tc.tenant, ChannelSMS, senderA, rcpt, tc.text)
		d := h.check(tc.tenant, ChannelSMS, senderA, rcpt, CategoryTransactional)
		hist, err := h.s.History(tc.tenant, ChannelSMS, rcpt, 0)
		requireNoErr(t, err)
		if !tc.stored {
			testutil.RequireEqual(t, res.Changed, false, name)
			testutil.RequireEqual(t, res.Forward, true, name+" forwarded")
			testutil.RequireEqual(t, d.Allow, true, name+" allowed")
			testutil.RequireEqual(t, len(hist), 0, name+" evidence")
			continue
		}
		testutil.RequireEqual(t, res.Changed, true, name)
		testutil.RequireEqual(t, d.Allow, false, name+" blocked")
		testutil.RequireEqual(t, len(hist), 1, name+" evidence")
		e := hist[0]
		testutil.RequireEqual(t, e.MatchMode, tc.matchMode, name+" match mode")
		if !strings.Contains(e.Detail, tc.detail) {
			t.Errorf("%s: detail %q lacks %q", name, e.Detail, tc.detail)
		}
		testutil.RequireEqual(t, e.Text, tc.text, name+" raw text")
	}
}
