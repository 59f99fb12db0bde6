package consent

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/consent/keyword"
	"github.com/optgate/optgate/internal/testutil"
)

// TestConcurrentOptOutAndCheck runs many goroutines opting out, opting in
// and checking at once (meant for -race).
func TestConcurrentOptOutAndCheck(t *testing.T) {
	h := newHarness(t, testTenant("acme", func(c *TenantConfig) { c.Scope = ScopeSender }))
	ctx := context.Background()
	const workers, per = 16, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				rcpt := fmt.Sprintf("+1202555%02d%02d", w, i)
				shared := fmt.Sprintf("+13035550%03d", i) // every worker touches these
				for _, m := range []InboundMessage{
					{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcpt, Text: "STOP", MessageID: fmt.Sprintf("%d-%d-a", w, i)},
					{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: shared, Text: []string{"STOP", "START"}[w%2], MessageID: fmt.Sprintf("%d-%d-b", w, i)},
				} {
					if _, err := h.s.Inbound(ctx, m); err != nil {
						errs <- err
						return
					}
				}
				d, err := h.s.Check("acme", ChannelSMS, senderA, rcpt, CategoryMarketing)
				if err != nil || d.Allow {
					errs <- fmt.Errorf("%s: acknowledged opt-out not visible: %+v %v", rcpt, d, err)
					return
				}
				if _, err := h.s.Check("acme", ChannelSMS, senderB, shared, CategoryTransactional); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The memory index equals what a fresh load from disk gives.
	before := snapshotChecks(t, h, workers, per)
	h.reopen()
	testutil.RequireEqual(t, snapshotChecks(t, h, workers, per), before, "index after reopen")
}

func snapshotChecks(t *testing.T, h *harness, workers, per int) map[string]Reason {
	out := map[string]Reason{}
	for i := 0; i < per; i++ {
		for _, r := range []string{fmt.Sprintf("+13035550%03d", i), fmt.Sprintf("+1202555%02d%02d", i%workers, i)} {
			out[r] = h.check("acme", ChannelSMS, senderA, r, 0).Reason
		}
	}
	return out
}

// TestBadInput: clear errors, no panic, nothing stored.
func TestBadInput(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ok := InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, Text: "STOP"}
	with := func(f func(*InboundMessage)) InboundMessage { m := ok; f(&m); return m }
	for _, tc := range []struct {
		name string
		m    InboundMessage
		want error
	}{
		{"unknown tenant", with(func(m *InboundMessage) { m.Tenant = "nope" }), ErrUnknownTenant},
		{"unknown channel", with(func(m *InboundMessage) { m.Channel = "rcs" }), ErrUnknownChannel},
		{"empty sender", with(func(m *InboundMessage) { m.Sender = "" }), ErrInvalidSender},
		{"control sender", with(func(m *InboundMessage) { m.Sender = "12\x003" }), ErrInvalidSender},
		{"empty number", with(func(m *InboundMessage) { m.Recipient = "" }), ErrInvalidNumber},
		{"letters", with(func(m *InboundMessage) { m.Recipient = "call me" }), ErrInvalidNumber},
		{"too short", with(func(m *InboundMessage) { m.Recipient = "+1202" }), ErrInvalidNumber},
		{"too long", with(func(m *InboundMessage) { m.Recipient = "+" + strings.Repeat("9", 80) }), ErrInvalidNumber},
		{"whatsapp letters", with(func(m *InboundMessage) { m.Channel = ChannelWhatsApp; m.Recipient = "12ab" }), ErrInvalidNumber},
		{"huge body", with(func(m *InboundMessage) { m.Text = strings.Repeat("a", MaxText+1) }), ErrInvalidInput},
		{"NUL message id", with(func(m *InboundMessage) { m.MessageID = "a\x00b" }), ErrInvalidInput},
	} {
		_, err := h.s.Inbound(ctx, tc.m)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// Bodies that are accepted but are not keywords.
	for _, text := range []string{"", strings.Repeat("STOP ", (MaxText)/5), "\xff\xfe\x00\x80hello", "\x00\x01\x02", strings.Repeat("\U0001F600", 1000)} {
		res, err := h.s.Inbound(ctx, with(func(m *InboundMessage) { m.Text = text }))
		requireNoErr(t, err, "odd body")
		if res.Changed {
			t.Logf("%q matched %v", truncate(text, 20), res.Match)
		}
	}
	st, err := h.s.Get("acme", ChannelSMS, rcptA)
	requireNoErr(t, err)
	testutil.RequireEqual(t, st.Tenant.State, StateNone)
	hist, err := h.s.History("acme", ChannelSMS, rcptA, 0)
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(hist), 0, "no evidence")
	// Check errors.
	for _, tc := range []struct {
		tenant, ch, sender, rcpt string
		want                     error
	}{
		{"nope", ChannelSMS, senderA, rcptA, ErrUnknownTenant},
		{"acme", "fax", senderA, rcptA, ErrUnknownChannel},
		{"acme", ChannelSMS, "", rcptA, ErrInvalidSender},
		{"acme", ChannelSMS, senderA, "not a number", ErrInvalidNumber},
	} {
		if _, err := h.s.Check(tc.tenant, tc.ch, tc.sender, tc.rcpt, 0); !errors.Is(err, tc.want) {
			t.Errorf("Check(%q,%q,%q,%q) = %v, want %v", tc.tenant, tc.ch, tc.sender, tc.rcpt, err, tc.want)
		}
	}
	// National format goes through phonenumbers with the tenant's region.
	h.mo("acme", ChannelSMS, senderA, "(202) 555-0123", "STOP")
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, 0).Reason, ReasonOptedOut)
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "202-555-0123", 0).Reason, ReasonOptedOut)
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, "+"+senderA, rcptA, 0).Reason, ReasonOptedOut)
}

// TestStorageFailure: a failed sync surfaces as an error, leaves the memory
// index untouched, and fences further writes.
func TestStorageFailure(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.mo("acme", ChannelSMS, senderA, "+12025550100", "STOP")
	h.s.commitTxn = func(txn *badger.Txn) error { txn.Discard(); return errors.New("no space left on device") }
	_, err := h.s.Inbound(ctx, InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, Text: "STOP", MessageID: "x1"})
	if !errors.Is(err, ErrStorage) {
		t.Fatalf("want ErrStorage, got %v", err)
	}
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, 0).Allow, true, "memory index updated before sync")
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "+12025550100", 0).Reason, ReasonOptedOut, "earlier state kept")
	_, err = h.s.Inbound(ctx, InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, Text: "STOP", MessageID: "x1"})
	if !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("want ErrStoreFailed, got %v", err)
	}
	if _, err := h.s.Get("acme", ChannelSMS, rcptA); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Get after failure: %v", err)
	}
	// After reopening, the retried MO applies (or is a duplicate if the
	// unsynced write reached the disk after all): either way it is stored once.
	h.reopen()
	res, err := h.s.Inbound(ctx, InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, Text: "STOP", MessageID: "x1"})
	requireNoErr(t, err)
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, 0).Reason, ReasonOptedOut)
	hist, _ := h.s.History("acme", ChannelSMS, rcptA, 0)
	testutil.RequireEqual(t, len(hist), 1, "one evidence entry (duplicate=", res.Duplicate, ")")
}

// TestBadgerWriteError: a write error from Badger itself (here: the DB is
// closed underneath) is an error, not a silent success.
func TestBadgerWriteError(t *testing.T) {
	h := newHarness(t)
	requireNoErr(t, h.s.db.Close())
	_, err := h.s.Inbound(context.Background(), InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, Text: "STOP"})
	if err == nil {
		t.Fatal("want an error from a closed Badger")
	}
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, 0).Allow, true)
	h.s.closeMu.Lock()
	h.s.closed = true // the DB is already closed: only stop the committer
	h.s.closeMu.Unlock()
	close(h.s.quit)
	h.s.wg.Wait()
}

func TestClosed(t *testing.T) {
	h := newHarness(t)
	requireNoErr(t, h.s.Close())
	requireNoErr(t, h.s.Close())
	_, err := h.s.Inbound(context.Background(), InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, Text: "STOP"})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v", err)
	}
	h.open()
}

func TestImportExport(t *testing.T) {
	h := newHarness(t, testTenant("acme"), testTenant("other"))
	ctx := context.Background()
	in := strings.Join([]string{
		"Tenant,Channel,Recipient,Scope,Class,Since",
		"acme,sms,+12025550101,tenant,all,2024-01-02T03:04:05Z",
		"acme,sms,(202) 555-0102,,,",
		"acme,whatsapp,12025550103,12345,marketing,",
		"acme,sms,not-a-number,,all,",   // line 5: bad number
		"acme,sms,+12025550104,,maybe,", // line 6: bad class
		"other,sms,+12025550105,,all,",  // line 7: wrong tenant
		"acme,fax,+12025550106,,all,",   // line 8: bad channel
		"acme,sms,+12025550107,,all,yesterday",
		"acme,sms,+12025550101,tenant,all,", // duplicate: unchanged
		`acme,sms,"+1 (202) 555-0108",,all,`,
		"acme,sms,+12025550109,,stopall,",
	}, "\n") + "\n"
	_, err := h.s.Import(ctx, strings.NewReader(in), ImportOptions{Tenant: "acme"})
	if !errors.Is(err, ErrEvidenceRequired) {
		t.Fatalf("import without source: %v", err)
	}
	opts := ImportOptions{Tenant: "acme", Source: "previous_provider", ProofRef: "export-2025-12.csv", Operator: "ops"}
	// Strict: nothing applied.
	sopts := opts
	sopts.Strict = true
	rep, err := h.s.Import(ctx, strings.NewReader(in), sopts)
	if !errors.Is(err, ErrImportRejected) {
		t.Fatalf("strict import: %v", err)
	}
	testutil.RequireEqual(t, rep.Applied, 0)
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "+12025550101", 0).Allow, true, "strict import applied something")
	// Default: valid rows applied, bad ones reported by line.
	rep, err = h.s.Import(ctx, strings.NewReader(in), opts)
	requireNoErr(t, err)
	var lines []int
	for _, e := range rep.Errors {
		lines = append(lines, e.Line)
	}
	testutil.RequireEqual(t, lines, []int{5, 6, 7, 8, 9}, "bad lines")
	testutil.RequireEqual(t, rep.ErrorCount, 5)
	testutil.RequireEqual(t, rep.Applied, 5)
	testutil.RequireEqual(t, rep.Unchanged, 1)
	testutil.RequireEqual(t, rep.Rows, 11)
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderB, "+12025550102", 0).Reason, ReasonOptedOut)
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, "12345", "12025550103", CategoryMarketing).Reason, ReasonMarketingOptOut)
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderB, "12025550103", CategoryMarketing).Reason, ReasonNone, "sender-scoped row")
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "+12025550108", 0).Reason, ReasonOptedOut, "quoted field")
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "+12025550109", 0).Reason, ReasonOptedOutAll)
	hist, _ := h.s.History("acme", ChannelSMS, "+12025550101", 0)
	testutil.RequireEqual(t, len(hist), 1)
	testutil.RequireEqual(t, hist[0].Source, SourceImport)
	testutil.RequireEqual(t, hist[0].ConsentSource, "previous_provider")
	testutil.RequireEqual(t, hist[0].ProofRef, "export-2025-12.csv")
	// Imports schedule no archive events.
	rep2, err := h.s.Sweep(h.clock.Now().Add(30 * 24 * time.Hour))
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep2.Archived, 0)

	// Export, then import the export into a fresh store: same suppressions.
	var buf bytes.Buffer
	n, err := h.s.Export(ctx, &buf, ExportOptions{Tenant: "acme"})
	requireNoErr(t, err)
	testutil.RequireEqual(t, n, 5)
	h2 := newHarness(t, testTenant("acme"))
	rep, err = h2.s.Import(ctx, bytes.NewReader(buf.Bytes()), opts)
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep.Applied, 5, "re-import of export")
	var buf2 bytes.Buffer
	_, err = h2.s.Export(ctx, &buf2, ExportOptions{})
	requireNoErr(t, err)
	testutil.RequireEqual(t, stripSince(buf2.String()), stripSince(buf.String()), "round trip")

	var ev bytes.Buffer
	n, err = h.s.ExportEvidence(ctx, &ev, ExportOptions{Tenant: "acme"})
	requireNoErr(t, err)
	testutil.RequireEqual(t, n, 5)
	recs, err := csv.NewReader(&ev).ReadAll()
	requireNoErr(t, err)
	testutil.RequireEqual(t, recs[0][0], "time")
	testutil.RequireEqual(t, recs[1][9], "import")
}

func stripSince(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.LastIndexByte(l, ','); i >= 0 {
			l = l[:i]
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// TestImportLarge streams many rows in constant memory (batches of 512).
func TestImportLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large import")
	}
	h := newHarness(t)
	const rows = 20000
	pr, pw := io.Pipe()
	go func() {
		w := csv.NewWriter(pw)
		w.Write([]string{"recipient"})
		for i := 0; i < rows; i++ {
			w.Write([]string{fmt.Sprintf("+130355%05d", i)}) // 11 digits: +1 and ten
		}
		w.Flush()
		pw.Close()
	}()
	rep, err := h.s.Import(context.Background(), pr, ImportOptions{Tenant: "acme", Source: "bulk", Operator: "ops"})
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep.Applied, rows)
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "+13035519999", 0).Reason, ReasonOptedOut)
}

func TestTenantValidation(t *testing.T) {
	bad := TenantConfig{ID: "bad id!", DefaultRegion: "XX", Scope: "galaxy", Attestation: "maybe", MaxPrompts: 99,
		HeldTTL: time.Second, ArchiveAfter: time.Second, MaxLength: 10,
		Templates: map[string]keyword.Templates{"en": {OptOut: strings.Repeat("x", 161)}, "fr": {Help: strings.Repeat("€", 81)}}}
	errs := bad.Validate()
	want := []string{"ID", "Brand", "HelpContact", "DefaultRegion", "Scope", "Attestation", "MaxPrompts", "HeldTTL",
		"ArchiveAfter", "MaxLength", "Templates[en].OptOut", "Templates[fr].Help"}
	all := fmt.Sprint(errs)
	for _, w := range want {
		if !strings.Contains(all, w+":") {
			t.Errorf("missing error for %s in %v", w, all)
		}
	}
	// A long brand pushes a default template past one segment.
	errs = testTenant("long", func(c *TenantConfig) { c.Brand = strings.Repeat("B", 100) }).Validate()
	if len(errs) == 0 {
		t.Fatal("want template length errors for a 100-character brand")
	}
	if len(testTenant("ok").Validate()) != 0 {
		t.Fatal(testTenant("ok").Validate())
	}
	_, err := Open(Config{Dir: t.TempDir(), Tenants: []TenantConfig{testTenant("a"), testTenant("a"), bad}})
	if err == nil || !strings.Contains(err.Error(), "duplicate") || !strings.Contains(err.Error(), "Scope") {
		t.Fatalf("Open: %v", err)
	}
}
