package consent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// TestRepeatConfirmAlways: a negative RepeatConfirmWindow turns the
// suppression of repeated confirmations off; zero keeps the 24 h default.
func TestRepeatConfirmAlways(t *testing.T) {
	h := newHarness(t, testTenant("always", func(c *TenantConfig) { c.RepeatConfirmWindow = RepeatConfirmAlways }),
		testTenant("default"))
	for _, tc := range []struct {
		tenant string
		want   int
	}{{"always", 3}, {"default", 1}} {
		n := 0
		for i := 0; i < 3; i++ {
			n += len(h.mo(tc.tenant, ChannelSMS, senderA, rcptA, "STOP").Replies)
			h.clock.Add(time.Minute)
		}
		testutil.RequireEqual(t, n, tc.want, tc.tenant+" confirmations of three STOPs")
	}
	// A retried MO (same id) still gets no second confirmation.
	m := InboundMessage{Tenant: "always", Channel: ChannelSMS, Sender: senderA, Recipient: "+15145550100", Text: "STOP", MessageID: "same"}
	for i, want := range []int{1, 0} {
		res, err := h.s.Inbound(context.Background(), m)
		requireNoErr(t, err)
		testutil.RequireEqual(t, len(res.Replies), want, "retry ", i)
	}
	if errs := testTenant("x", func(c *TenantConfig) { c.RepeatConfirmWindow = -time.Hour }).Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
}

// TestCheckSenderControlCharacters: Check validates the sender like the
// write paths do, not only by length.
func TestCheckSenderControlCharacters(t *testing.T) {
	h := newHarness(t)
	for _, s := range []string{"123\x00", "12\n45", "ACME\x7f", "\tACME", "AC\xffME"} {
		if _, err := h.s.Check("acme", ChannelSMS, s, rcptA, 0); !errors.Is(err, ErrInvalidSender) {
			t.Errorf("Check sender %q: %v", s, err)
		}
	}
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, "ACME Jobs", rcptA, 0).Allow, true)
}

// spoolWatcher is a CSV source that records, while it is read, whether the
// strict import's spool is in the store's folder.
type spoolWatcher struct {
	r       io.Reader
	dir     string
	spooled bool
}

func (w *spoolWatcher) Read(p []byte) (int, error) {
	if files, _ := filepath.Glob(filepath.Join(w.dir, spoolDirName, "import-*.csv")); len(files) > 0 {
		w.spooled = true
	}
	return w.r.Read(p)
}

// TestStrictImportSpoolsInDir: a strict import spools beside the store
// (same filesystem), removes its spool, and Open clears leftovers.
func TestStrictImportSpoolsInDir(t *testing.T) {
	h := newHarness(t)
	src := &spoolWatcher{r: strings.NewReader("recipient\n+15145550100\n+15145550101\n"), dir: h.dir}
	rep, err := h.s.Import(context.Background(), src, ImportOptions{Tenant: "acme", Source: "test", Operator: "ops", Strict: true})
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep.Applied, 2)
	testutil.RequireEqual(t, src.spooled, true, "spool in Config.Dir during the import")
	files, _ := filepath.Glob(filepath.Join(h.dir, spoolDirName, "*"))
	testutil.RequireEqual(t, len(files), 0, "spool removed")
	left := filepath.Join(h.dir, spoolDirName, "import-123.csv")
	requireNoErr(t, os.WriteFile(left, []byte("line,tenant\n"), 0o600))
	h.reopen()
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("leftover spool not cleared: %v", err)
	}
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "+15145550101", 0).Reason, ReasonOptedOut)
}

// TestCrossChannelSenderScope: with sender scope and cross-channel, STOP
// to one SMS number blocks that number on SMS and the whole tenant on
// WhatsApp (no WhatsApp sender is that SMS number); START lifts both.
func TestCrossChannelSenderScope(t *testing.T) {
	h := newHarness(t, testTenant("x", func(c *TenantConfig) { c.CrossChannel = true; c.Scope = ScopeSender }))
	const wa, waPhone = "12025550123", "109876543210" // rcptA's wa_id; our WhatsApp phone number id
	res := h.mo("x", ChannelSMS, senderA, rcptA, "STOP")
	testutil.RequireEqual(t, len(res.Events), 2, "an event per channel")
	testutil.RequireEqual(t, [2]string{res.Events[0].Sender, res.Events[1].Sender}, [2]string{senderA, ""}, "event scopes")
	testutil.RequireEqual(t, h.check("x", ChannelSMS, senderA, rcptA, 0).Reason, ReasonOptedOut, "sms, that sender")
	testutil.RequireEqual(t, h.check("x", ChannelSMS, senderB, rcptA, 0).Reason, ReasonNone, "sms, another sender")
	testutil.RequireEqual(t, h.check("x", ChannelWhatsApp, waPhone, wa, 0).Reason, ReasonOptedOut, "whatsapp, any sender")
	st, err := h.s.Get("x", ChannelWhatsApp, wa)
	requireNoErr(t, err)
	testutil.RequireEqual(t, st.Tenant.OptedOut, true, "whatsapp tenant-wide record")
	testutil.RequireEqual(t, len(st.Senders), 0, "no whatsapp record under the sms sender")
	hist, err := h.s.History("x", ChannelWhatsApp, wa, 0)
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(hist), 1)
	testutil.RequireEqual(t, hist[0].Scope, "tenant")
	h.mo("x", ChannelSMS, senderA, rcptA, "START")
	testutil.RequireEqual(t, h.check("x", ChannelSMS, senderA, rcptA, 0).Reason, ReasonNone)
	testutil.RequireEqual(t, h.check("x", ChannelWhatsApp, waPhone, wa, 0).Reason, ReasonNone)
}
