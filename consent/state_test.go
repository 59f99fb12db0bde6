package consent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp/coding"
)

const (
	rcptA   = "+12025550123"
	senderA = "12345"
	senderB = "+15557770000"
)

// TestInboundTransitions runs every keyword class in every state.
func TestInboundTransitions(t *testing.T) {
	type want struct {
		replies []ReplyKind
		forward bool
		tx, mkt Reason // decisions after, ReasonNone = allowed
		otherTx Reason // transactional decision from senderB
	}
	cases := []struct {
		name  string
		scope Scope
		setup []string
		after time.Duration // clock advance before the message
		text  string
		want  want
	}{
		// state none
		{name: "none/STOP", text: "STOP", want: want{replies: []ReplyKind{ReplyOptOut}, tx: ReasonOptedOut, mkt: ReasonOptedOut, otherTx: ReasonOptedOut}},
		{name: "none/STOPALL", text: "STOPALL", want: want{replies: []ReplyKind{ReplyOptOut}, tx: ReasonOptedOutAll, mkt: ReasonOptedOutAll, otherTx: ReasonOptedOutAll}},
		{name: "none/START", text: "START", want: want{replies: []ReplyKind{ReplyOptIn}}},
		{name: "none/YES", text: "YES", want: want{forward: true}},
		{name: "none/HELP", text: "HELP", want: want{replies: []ReplyKind{ReplyHelp}}},
		{name: "none/stop promotions", text: "Stop promotions", want: want{replies: []ReplyKind{ReplyMarketingOptOut}, mkt: ReasonMarketingOptOut}},
		{name: "none/text", text: "hello there", want: want{forward: true}},
		{name: "none/empty", text: "", want: want{forward: true}},
		// opted out
		{name: "out/STOP within 24h", setup: []string{"STOP"}, after: time.Hour, text: "STOP", want: want{tx: ReasonOptedOut, mkt: ReasonOptedOut, otherTx: ReasonOptedOut}},
		{name: "out/STOP after 24h", setup: []string{"STOP"}, after: 25 * time.Hour, text: "STOP", want: want{replies: []ReplyKind{ReplyOptOut}, tx: ReasonOptedOut, mkt: ReasonOptedOut, otherTx: ReasonOptedOut}},
		{name: "out/STOPALL", setup: []string{"STOP"}, text: "STOPALL", want: want{replies: []ReplyKind{ReplyOptOut}, tx: ReasonOptedOutAll, mkt: ReasonOptedOutAll, otherTx: ReasonOptedOutAll}},
		{name: "out/START", setup: []string{"STOP"}, text: "START", want: want{replies: []ReplyKind{ReplyOptIn}}},
		{name: "out/YES", setup: []string{"STOP"}, text: "YES", want: want{forward: true, tx: ReasonOptedOut, mkt: ReasonOptedOut, otherTx: ReasonOptedOut}},
		{name: "out/HELP", setup: []string{"STOP"}, text: "HELP", want: want{replies: []ReplyKind{ReplyHelp}, tx: ReasonOptedOut, mkt: ReasonOptedOut, otherTx: ReasonOptedOut}},
		{name: "out/stop promotions", setup: []string{"STOP"}, text: "Stop promotions", want: want{replies: []ReplyKind{ReplyOptOut}, tx: ReasonOptedOut, mkt: ReasonOptedOut, otherTx: ReasonOptedOut}},
		{name: "out/text", setup: []string{"STOP"}, text: "why?", want: want{forward: true, tx: ReasonOptedOut, mkt: ReasonOptedOut, otherTx: ReasonOptedOut}},
		{name: "outall/START", setup: []string{"STOPALL"}, text: "START", want: want{replies: []ReplyKind{ReplyOptIn}}},
		// marketing-only opt-out
		{name: "mkt/STOP", setup: []string{"Stop promotions"}, text: "STOP", want: want{replies: []ReplyKind{ReplyOptOut}, tx: ReasonOptedOut, mkt: ReasonOptedOut, otherTx: ReasonOptedOut}},
		{name: "mkt/START", setup: []string{"Stop promotions"}, text: "START", want: want{replies: []ReplyKind{ReplyOptIn}}},
		{name: "mkt/HELP", setup: []string{"Stop promotions"}, text: "HELP", want: want{replies: []ReplyKind{ReplyHelp}, mkt: ReasonMarketingOptOut}},
		{name: "mkt/again within 24h", setup: []string{"Stop promotions"}, text: "Stop promotions", want: want{mkt: ReasonMarketingOptOut}},
		// opted in
		{name: "in/STOP", setup: []string{"START"}, text: "STOP", want: want{replies: []ReplyKind{ReplyOptOut}, tx: ReasonOptedOut, mkt: ReasonOptedOut, otherTx: ReasonOptedOut}},
		{name: "in/START within 24h", setup: []string{"START"}, text: "START", want: want{}},
		{name: "in/START after 24h", setup: []string{"START"}, after: 24 * time.Hour, text: "START", want: want{replies: []ReplyKind{ReplyOptIn}}},
		{name: "in/YES", setup: []string{"START"}, text: "YES", want: want{forward: true}},
		// scope sender
		{name: "sender/STOP", scope: ScopeSender, text: "STOP", want: want{replies: []ReplyKind{ReplyOptOut}, tx: ReasonOptedOut, mkt: ReasonOptedOut}},
		{name: "sender/STOPALL", scope: ScopeSender, text: "STOP ALL", want: want{replies: []ReplyKind{ReplyOptOut}, tx: ReasonOptedOutAll, mkt: ReasonOptedOutAll, otherTx: ReasonOptedOutAll}},
		{name: "sender/STOP then START", scope: ScopeSender, setup: []string{"STOP"}, text: "START", want: want{replies: []ReplyKind{ReplyOptIn}}},
		{name: "sender/STOPALL then START", scope: ScopeSender, setup: []string{"STOPALL"}, text: "START", want: want{replies: []ReplyKind{ReplyOptIn}}},
		{name: "sender/mkt", scope: ScopeSender, text: "stop promotions", want: want{replies: []ReplyKind{ReplyMarketingOptOut}, mkt: ReasonMarketingOptOut}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testTenant("acme", func(c *TenantConfig) { c.Scope = tc.scope }))
			for _, s := range tc.setup {
				h.mo("acme", ChannelSMS, senderA, rcptA, s)
			}
			h.clock.Add(tc.after)
			res := h.mo("acme", ChannelSMS, senderA, rcptA, tc.text)
			testutil.RequireEqual(t, replyKinds(res), tc.want.replies, "replies")
			testutil.RequireEqual(t, res.Forward, tc.want.forward, "forward")
			testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, CategoryTransactional).Reason, tc.want.tx, "transactional")
			testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, CategoryMarketing).Reason, tc.want.mkt, "marketing")
			testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderB, rcptA, CategoryTransactional).Reason, tc.want.otherTx, "other sender")
			for _, r := range res.Replies {
				if r.Text == "" || r.Sender != senderA || r.Recipient != rcptA || r.Channel != ChannelSMS {
					t.Fatalf("bad reply %+v", r)
				}
			}
			// The state survives a restart (memory index rebuilt from Badger).
			h.reopen()
			testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, CategoryTransactional).Reason, tc.want.tx, "transactional after reopen")
			testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, CategoryMarketing).Reason, tc.want.mkt, "marketing after reopen")
			testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderB, rcptA, CategoryTransactional).Reason, tc.want.otherTx, "other sender after reopen")
		})
	}
}

func TestReplyLanguage(t *testing.T) {
	h := newHarness(t, testTenant("acme"), testTenant("fr", func(c *TenantConfig) { c.DefaultLang = "fr" }))
	for _, tc := range []struct{ tenant, text, lang string }{
		{"acme", "STOP", "en"}, {"acme", "ARRET", "fr"}, {"acme", "arrêt", "fr"},
		{"fr", "STOP", "fr"}, {"acme", "AIDE", "fr"}, {"fr", "HELP", "fr"},
	} {
		res := h.mo(tc.tenant, ChannelSMS, senderA, "+1202555"+"0199", tc.text)
		if len(res.Replies) != 1 {
			h.clock.Add(25 * time.Hour)
			res = h.mo(tc.tenant, ChannelSMS, senderA, "+12025550199", tc.text)
		}
		testutil.RequireEqual(t, len(res.Replies), 1, tc.text)
		testutil.RequireEqual(t, res.Replies[0].Lang, tc.lang, tc.tenant+" "+tc.text)
		if n, ok := coding.SeptetLen(res.Replies[0].Text); ok && n > 160 {
			t.Fatalf("reply longer than one segment: %q", res.Replies[0].Text)
		}
	}
}

// TestReplyLanguageSharedWords: a keyword of several languages is answered
// in the tenant's default language when that is one of them, else in the
// language the table lists first.
func TestReplyLanguageSharedWords(t *testing.T) {
	lang := func(id, l string) TenantConfig {
		return testTenant(id, func(c *TenantConfig) { c.DefaultLang = l; c.Attestation = ModeAttestation })
	}
	h := newHarness(t, lang("pt", "pt"), lang("it", "it"), lang("da", "da"), lang("nl", "nl"), lang("fr", "fr"),
		lang("ptbr", "pt-BR"), lang("es", "es"))
	n := 0
	for _, tc := range []struct{ tenant, text, lang string }{
		{"pt", "PARAR", "pt"}, {"pt", "CANCELAR", "pt"}, {"pt", "INICIAR", "pt"}, {"ptbr", "parar", "pt-BR"},
		{"es", "PARAR", "es"}, {"fr", "PARAR", "es"}, {"fr", "CANCELAR", "es"}, // fr is not among them: first listed
		{"it", "SÌ", "it"}, {"it", "si", "it"}, {"es", "SÍ", "es"}, {"fr", "SI", "es"},
		{"da", "JA", "da"}, {"nl", "ja", "nl"}, {"fr", "JA", "de"},
		{"pt", "ARRET", "fr"}, // a word of one other language only keeps it
	} {
		n++
		rcpt := fmt.Sprintf("+1514555%04d", n)
		if tc.text == "JA" || tc.text == "ja" || strings.EqualFold(tc.text, "si") || tc.text == "SÌ" || tc.text == "SÍ" {
			// YES words answer an attestation prompt: make one pending.
			_, err := h.s.Hold(context.Background(), HeldMessage{Tenant: tc.tenant, Channel: ChannelSMS, Sender: senderA,
				Recipient: rcpt, ID: "h" + rcpt, Payload: []byte("x")})
			requireNoErr(t, err)
		}
		res := h.mo(tc.tenant, ChannelSMS, senderA, rcpt, tc.text)
		testutil.RequireEqual(t, len(res.Replies), 1, tc.tenant+" "+tc.text)
		testutil.RequireEqual(t, res.Replies[0].Lang, tc.lang, tc.tenant+" "+tc.text)
		want := h.s.tenants[tc.tenant].templates(tc.lang)
		if res.Replies[0].Text != want.OptOut && res.Replies[0].Text != want.OptIn && res.Replies[0].Text != want.AttestationConfirm {
			t.Errorf("%s %s: reply %q is not a %s template", tc.tenant, tc.text, res.Replies[0].Text, tc.lang)
		}
	}
}

func TestCrossChannel(t *testing.T) {
	h := newHarness(t, testTenant("x", func(c *TenantConfig) { c.CrossChannel = true }), testTenant("solo"))
	wa := "12025550123" // wa_id form of rcptA
	for _, tn := range []string{"x", "solo"} {
		res := h.mo(tn, ChannelSMS, senderA, rcptA, "STOP")
		testutil.RequireEqual(t, replyKinds(res), []ReplyKind{ReplyOptOut}, tn)
	}
	testutil.RequireEqual(t, h.check("x", ChannelWhatsApp, senderA, wa, CategoryTransactional).Reason, ReasonOptedOut, "cross-channel blocks whatsapp")
	testutil.RequireEqual(t, h.check("solo", ChannelWhatsApp, senderA, wa, CategoryTransactional).Reason, ReasonNone, "single channel leaves whatsapp")
	// START on WhatsApp lifts both channels for the cross-channel tenant.
	res := h.mo("x", ChannelWhatsApp, senderA, wa, "START")
	testutil.RequireEqual(t, replyKinds(res), []ReplyKind{ReplyOptIn})
	testutil.RequireEqual(t, h.check("x", ChannelSMS, senderA, rcptA, CategoryTransactional).Reason, ReasonNone)
}

func TestDuplicateMO(t *testing.T) {
	h := newHarness(t)
	m := InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, Text: "STOP", MessageID: "smsc-1"}
	res, err := h.s.Inbound(context.Background(), m)
	requireNoErr(t, err)
	testutil.RequireEqual(t, replyKinds(res), []ReplyKind{ReplyOptOut})
	for i := 0; i < 3; i++ {
		h.clock.Add(48 * time.Hour) // even past the repeat window
		res, err = h.s.Inbound(context.Background(), m)
		requireNoErr(t, err)
		testutil.RequireEqual(t, res.Duplicate, true)
		testutil.RequireEqual(t, len(res.Replies), 0)
	}
	hist, err := h.s.History("acme", ChannelSMS, rcptA, 0)
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(hist), 1, "one evidence entry")
}

func TestOperatorOptIn(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.mo("acme", ChannelSMS, senderA, rcptA, "STOP")
	for _, oc := range []OperatorChange{
		{Tenant: "acme", Channel: ChannelSMS, Recipient: rcptA},
		{Tenant: "acme", Channel: ChannelSMS, Recipient: rcptA, Operator: "ops@acme"},
		{Tenant: "acme", Channel: ChannelSMS, Recipient: rcptA, Operator: "ops@acme", Source: "web_form"},
		{Tenant: "acme", Channel: ChannelSMS, Recipient: rcptA, Operator: "ops@acme", ProofRef: "doc-1"},
	} {
		_, err := h.s.OptIn(ctx, oc)
		if !errors.Is(err, ErrEvidenceRequired) {
			t.Fatalf("OptIn(%+v) = %v, want ErrEvidenceRequired", oc, err)
		}
	}
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, 0).Reason, ReasonOptedOut, "still out")
	res, err := h.s.OptIn(ctx, OperatorChange{Tenant: "acme", Channel: ChannelSMS, Recipient: "(202) 555-0123",
		Operator: "ops@acme", Source: "signed_form", ProofRef: "doc-42", Note: "called support"})
	requireNoErr(t, err)
	testutil.RequireEqual(t, res.Changed, true)
	testutil.RequireEqual(t, len(res.Replies), 0, "no sender: no reply")
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, 0).Reason, ReasonNone)
	hist, err := h.s.History("acme", ChannelSMS, rcptA, 10)
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(hist), 2)
	e := hist[0] // newest first
	testutil.RequireEqual(t, e.Source, SourceOperator)
	testutil.RequireEqual(t, e.Operator, "ops@acme")
	testutil.RequireEqual(t, e.ProofRef, "doc-42")
	testutil.RequireEqual(t, e.ConsentSource, "signed_form")
	testutil.RequireEqual(t, e.Old+">"+e.New, "opted_out>opted_in")
	testutil.RequireEqual(t, hist[1].Source, SourceKeyword)
	testutil.RequireEqual(t, hist[1].Keyword, "STOP")

	// Operator opt-out (API), marketing only.
	_, err = h.s.OptOut(ctx, OperatorChange{Tenant: "acme", Channel: ChannelSMS, Recipient: rcptA, Marketing: true})
	if !errors.Is(err, ErrEvidenceRequired) {
		t.Fatalf("OptOut without operator: %v", err)
	}
	_, err = h.s.OptOut(ctx, OperatorChange{Tenant: "acme", Channel: ChannelSMS, Recipient: rcptA, Operator: "crm", API: true, Marketing: true})
	requireNoErr(t, err)
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, CategoryMarketing).Reason, ReasonMarketingOptOut)
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcptA, CategoryTransactional).Reason, ReasonNone)
	hist, _ = h.s.History("acme", ChannelSMS, rcptA, 1)
	testutil.RequireEqual(t, hist[0].Source, SourceAPI)
}

func TestWhatsAppMarketing(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	wa := "447700900123"
	_, err := h.s.SetMarketingPreference(ctx, MarketingPreference{Tenant: "acme", Sender: senderA, Recipient: wa, Stop: true})
	requireNoErr(t, err)
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, wa, CategoryMarketing).Reason, ReasonMarketingOptOut)
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, wa, CategoryTransactional).Reason, ReasonNone)
	// START by keyword does not lift WhatsApp's own marketing stop.
	h.mo("acme", ChannelWhatsApp, senderA, wa, "START")
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, wa, CategoryMarketing).Reason, ReasonMarketingOptOut)
	_, err = h.s.SetMarketingPreference(ctx, MarketingPreference{Tenant: "acme", Sender: senderA, Recipient: wa, Stop: false})
	requireNoErr(t, err)
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, wa, CategoryMarketing).Reason, ReasonNone)
	// A 131050 failure is a marketing stop; other failures change nothing.
	res, err := h.s.DeliveryFailed(ctx, DeliveryFailure{Tenant: "acme", Channel: ChannelWhatsApp, Sender: senderA, Recipient: wa, Code: 131026})
	requireNoErr(t, err)
	testutil.RequireEqual(t, res.Changed, false)
	_, err = h.s.DeliveryFailed(ctx, DeliveryFailure{Tenant: "acme", Channel: ChannelWhatsApp, Sender: senderA, Recipient: wa, Code: 131050})
	requireNoErr(t, err)
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, "+"+wa, CategoryMarketing).Reason, ReasonMarketingOptOut)
	hist, _ := h.s.History("acme", ChannelWhatsApp, wa, 1)
	testutil.RequireEqual(t, hist[0].Source, SourceWhatsAppFailure)
}

func TestAttestationFlow(t *testing.T) {
	ctx := context.Background()
	newAtt := func(t *testing.T) *harness {
		return newHarness(t, testTenant("att", func(c *TenantConfig) { c.Attestation = ModeAttestation; c.MaxPrompts = 3 }))
	}
	hold := func(h *harness, id string) HoldResult {
		h.t.Helper()
		r, err := h.s.Hold(ctx, HeldMessage{Tenant: "att", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, ID: id, Payload: []byte("payload " + id)})
		requireNoErr(h.t, err, "Hold")
		return r
	}
	t.Run("yes releases", func(t *testing.T) {
		h := newAtt(t)
		d := h.check("att", ChannelSMS, senderA, rcptA, 0)
		testutil.RequireEqual(t, d.Reason, ReasonNoConsent)
		testutil.RequireEqual(t, d.Action, ActionHold)
		if d.Prompt == "" {
			t.Fatal("no prompt in decision")
		}
		r1 := hold(h, "m1")
		testutil.RequireEqual(t, r1.Held, true)
		if r1.Prompt == nil || r1.Prompt.Kind != ReplyAttestationPrompt {
			t.Fatalf("first hold: prompt %+v", r1.Prompt)
		}
		r2 := hold(h, "m2")
		testutil.RequireEqual(t, r2.Held, true)
		testutil.RequireEqual(t, r2.Prompt == nil, true, "no second prompt")
		testutil.RequireEqual(t, hold(h, "m2").Held, true, "idempotent")
		testutil.RequireEqual(t, h.check("att", ChannelSMS, senderA, rcptA, 0).Reason, ReasonAttestationPending)
		// Anything else: re-prompts up to MaxPrompts (the first prompt counts).
		testutil.RequireEqual(t, replyKinds(h.mo("att", ChannelSMS, senderA, rcptA, "who is this?")), []ReplyKind{ReplyReprompt})
		testutil.RequireEqual(t, replyKinds(h.mo("att", ChannelSMS, senderA, rcptA, "hmm")), []ReplyKind{ReplyReprompt})
		testutil.RequireEqual(t, len(h.mo("att", ChannelSMS, senderA, rcptA, "ok?").Replies), 0, "capped")
		testutil.RequireEqual(t, replyKinds(h.mo("att", ChannelSMS, senderA, rcptA, "HELP")), []ReplyKind{ReplyHelp})
		h.reopen()
		res := h.mo("att", ChannelSMS, senderA, rcptA, "yes")
		testutil.RequireEqual(t, replyKinds(res), []ReplyKind{ReplyAttestationConfirm})
		testutil.RequireEqual(t, len(res.Released), 2)
		testutil.RequireEqual(t, string(res.Released[0].Payload), "payload m1")
		testutil.RequireEqual(t, res.Released[1].ID, "m2")
		testutil.RequireEqual(t, h.check("att", ChannelSMS, senderA, rcptA, 0), Decision{Allow: true})
		// Later holds are refused: the recipient is opted in.
		r := hold(h, "m3")
		testutil.RequireEqual(t, r.Held, false)
		testutil.RequireEqual(t, r.Decision.Allow, true)
		// Nothing left to expire.
		rep, err := h.s.Sweep(h.clock.Now().Add(100 * time.Hour))
		requireNoErr(t, err)
		testutil.RequireEqual(t, rep.Expired, 0)
	})
	t.Run("stop drops", func(t *testing.T) {
		h := newAtt(t)
		hold(h, "m1")
		res := h.mo("att", ChannelSMS, senderA, rcptA, "STOP")
		testutil.RequireEqual(t, replyKinds(res), []ReplyKind{ReplyOptOut})
		testutil.RequireEqual(t, len(res.Dropped), 1)
		testutil.RequireEqual(t, len(res.Released), 0)
		testutil.RequireEqual(t, h.check("att", ChannelSMS, senderA, rcptA, 0).Reason, ReasonOptedOut)
		r := hold(h, "m2")
		testutil.RequireEqual(t, r.Held, false)
		testutil.RequireEqual(t, r.Decision.Reason, ReasonOptedOut)
	})
	t.Run("expiry", func(t *testing.T) {
		h := newAtt(t)
		hold(h, "m1")
		rep, err := h.s.Sweep(h.clock.Now().Add(DefaultHeldTTL - time.Minute))
		requireNoErr(t, err)
		testutil.RequireEqual(t, rep.Expired, 0)
		rep, err = h.s.Sweep(h.clock.Now().Add(DefaultHeldTTL + time.Minute))
		requireNoErr(t, err)
		testutil.RequireEqual(t, rep.Expired, 1)
		ev := h.takeEvents()
		testutil.RequireEqual(t, len(ev), 1)
		testutil.RequireEqual(t, ev[0].Type, EventHeldExpired)
		testutil.RequireEqual(t, string(ev[0].Held.Payload), "payload m1")
		res := h.mo("att", ChannelSMS, senderA, rcptA, "YES")
		testutil.RequireEqual(t, len(res.Released), 0, "expired messages are gone")
		testutil.RequireEqual(t, replyKinds(res), []ReplyKind{ReplyAttestationConfirm})
	})
}

func TestDisclaimerOnce(t *testing.T) {
	h := newHarness(t, testTenant("d", func(c *TenantConfig) { c.Attestation = ModeDisclaimer }))
	ctx := context.Background()
	d := h.check("d", ChannelSMS, senderA, rcptA, 0)
	testutil.RequireEqual(t, d.Allow, true)
	testutil.RequireEqual(t, d.Action, ActionDisclaimFirst)
	r, err := h.s.Disclaim(ctx, "d", ChannelSMS, senderA, rcptA)
	requireNoErr(t, err)
	if r == nil || r.Kind != ReplyDisclaimer || r.Text == "" {
		t.Fatalf("first Disclaim = %+v", r)
	}
	r, err = h.s.Disclaim(ctx, "d", ChannelSMS, senderA, rcptA)
	requireNoErr(t, err)
	testutil.RequireEqual(t, r == nil, true, "second disclaimer")
	h.reopen()
	testutil.RequireEqual(t, h.check("d", ChannelSMS, senderA, rcptA, 0), Decision{Allow: true})
	h.mo("d", ChannelSMS, senderA, rcptA, "STOP")
	testutil.RequireEqual(t, h.check("d", ChannelSMS, senderA, rcptA, 0).Reason, ReasonOptedOut)
}

func TestArchiveEvents(t *testing.T) {
	h := newHarness(t)
	h.mo("acme", ChannelSMS, senderA, rcptA, "STOP")
	h.mo("acme", ChannelSMS, senderA, "+12025550124", "STOP")
	h.mo("acme", ChannelSMS, senderA, "+12025550124", "START") // re-subscribed: cancelled
	h.clock.Add(time.Hour)
	h.mo("acme", ChannelSMS, senderA, rcptA, "STOP") // repeat: not a second schedule
	rep, err := h.s.Sweep(h.clock.Now().Add(6 * 24 * time.Hour))
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep.Archived, 0)
	h.reopen() // the schedule is durable
	rep, err = h.s.Sweep(h.clock.Now().Add(7 * 24 * time.Hour))
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep.Archived, 1)
	ev := h.takeEvents()
	testutil.RequireEqual(t, len(ev), 1)
	testutil.RequireEqual(t, ev[0].Type, EventArchived)
	testutil.RequireEqual(t, ev[0].Recipient, rcptA)
	rep, err = h.s.Sweep(h.clock.Now().Add(30 * 24 * time.Hour))
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep.Archived, 0, "exactly once")

	// A failing consumer keeps the event scheduled.
	h.mo("acme", ChannelSMS, senderA, "+12025550125", "STOP")
	h.cfg.OnEvent = func(Event) error { return errors.New("consumer down") }
	h.reopen()
	_, err = h.s.Sweep(h.clock.Now().Add(8 * 24 * time.Hour))
	if err == nil {
		t.Fatal("want consumer error")
	}
	h.cfg.OnEvent = func(e Event) error { h.events = append(h.events, e); return nil }
	h.reopen()
	rep, err = h.s.Sweep(h.clock.Now().Add(8 * 24 * time.Hour))
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep.Archived, 1)
}

func TestFooter(t *testing.T) {
	h := newHarness(t)
	out, err := h.s.ApplyFooter("acme", "", "Sale today", true)
	requireNoErr(t, err)
	if out == "Sale today" {
		t.Fatal("no footer added")
	}
	out, err = h.s.ApplyFooter("acme", "fr", "Soldes", true)
	requireNoErr(t, err)
	if out == "Soldes" {
		t.Fatal("no French footer")
	}
	out, err = h.s.ApplyFooter("acme", "", "Sale today. Reply STOP to opt out", true)
	requireNoErr(t, err)
	testutil.RequireEqual(t, out, "Sale today. Reply STOP to opt out", "already says how")
	out, err = h.s.ApplyFooter("acme", "", "Your code is 1234", false)
	requireNoErr(t, err)
	testutil.RequireEqual(t, out, "Your code is 1234")
	long := make([]rune, 470)
	for i := range long {
		long[i] = 'é'
	}
	_, err = h.s.ApplyFooter("acme", "", string(long), true)
	var tl *TooLongError
	if !errors.As(err, &tl) || !errors.Is(err, ErrTooLong) || tl.Max != 480 || tl.FooterLength == 0 || tl.Length <= 480 {
		t.Fatalf("want TooLongError, got %v", err)
	}
	_, err = h.s.ApplyFooter("nope", "", "x", true)
	if !errors.Is(err, ErrUnknownTenant) {
		t.Fatal(err)
	}
}
