package consent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// A confirmation is stored pending with its opt-out, survives a reopen
// (a crash before it was sent), and leaves once reported sent.
func TestPendingRepliesSurviveUntilSent(t *testing.T) {
	h := newHarness(t)
	res := h.mo("acme", ChannelSMS, senderA, "+15145550100", "STOP")
	if len(res.Replies) != 1 || res.Replies[0].ID == "" || res.Replies[0].Tenant != "acme" {
		t.Fatalf("replies: %+v", res.Replies)
	}
	pending := func() []Reply {
		var out []Reply
		if err := h.s.PendingReplies(h.clock.Now().Add(time.Hour), func(r Reply) bool { out = append(out, r); return true }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	h.reopen()
	p := pending()
	if len(p) != 1 || p[0].ID != res.Replies[0].ID || p[0].Text != res.Replies[0].Text || p[0].Recipient != "+15145550100" {
		t.Fatalf("pending after reopen: %+v", p)
	}
	// Not listed when it is newer than the cutoff.
	var n int
	h.s.PendingReplies(p[0].Created, func(Reply) bool { n++; return true })
	testutil.RequireEqual(t, n, 0)
	if err := h.s.ReplySent(p[0].ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second) // removals are batched
	for len(pending()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("reply still pending after ReplySent")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A message that is not a keyword produces no reply and nothing pending.
	testutil.RequireEqual(t, len(h.mo("acme", ChannelSMS, senderA, "+15145550101", "hello").Replies), 0)
	testutil.RequireEqual(t, len(pending()), 0)
}

// TestMarketingOptOutReply: a marketing-only opt-out is confirmed with the
// marketing template of the keyword's language (transactional messages
// continue, so it must not say "no more messages"); a full opt-out keeps
// the opt-out confirmation.
func TestMarketingOptOutReply(t *testing.T) {
	h := newHarness(t)
	var rcpts []string
	for _, tc := range []struct{ text, lang string }{
		{"Stop promotions", "en"}, {"ARRÊTER LES PROMOTIONS", "fr"}, {"Werbung stoppen", "de"},
		{"detener promociones", "es"}, {"interrompi promozioni", "it"}, {"parar promoções", "pt"},
		{"promoties stoppen", "nl"}, {"stop kampagner", "da"},
	} {
		rcpt := "+1514555" + fmt.Sprintf("%04d", 100+len(rcpts))
		rcpts = append(rcpts, rcpt)
		res := h.mo("acme", ChannelSMS, senderA, rcpt, tc.text)
		testutil.RequireEqual(t, replyKinds(res), []ReplyKind{ReplyMarketingOptOut}, tc.text)
		tpl, _ := h.s.tenants["acme"].tpl[tc.lang]
		testutil.RequireEqual(t, res.Replies[0].Text, tpl.MarketingOptOut, tc.text)
		testutil.RequireEqual(t, res.Replies[0].Lang, tc.lang, tc.text)
		if strings.Contains(res.Replies[0].Text, "no more messages") || res.Replies[0].Text == tpl.OptOut {
			t.Errorf("%s: marketing reply %q", tc.text, res.Replies[0].Text)
		}
		testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, rcpt, CategoryTransactional).Allow, true, "transactional still allowed")
	}
	en := h.s.tenants["acme"].tpl["en"].MarketingOptOut
	if !strings.Contains(en, "marketing") || !strings.Contains(en, "Acme") {
		t.Errorf("en marketing reply %q", en)
	}
	// An operator's marketing opt-out with a sender gets the same reply.
	res, err := h.s.OptOut(context.Background(), OperatorChange{Tenant: "acme", Channel: ChannelSMS, Recipient: rcptA,
		Sender: senderA, Operator: "ops", Marketing: true})
	requireNoErr(t, err)
	testutil.RequireEqual(t, replyKinds(res), []ReplyKind{ReplyMarketingOptOut})
	testutil.RequireEqual(t, res.Replies[0].Text, en)
}

// TestOperatorNoChangeEvidence: an operator action that changes nothing
// (opt-out of someone opted out, opt-in of someone opted in) is still in
// the evidence log, synced.
func TestOperatorNoChangeEvidence(t *testing.T) {
	h := newHarness(t, testTenant("acme", func(c *TenantConfig) { c.Scope = ScopeSender }))
	ctx := context.Background()
	out := OperatorChange{Tenant: "acme", Channel: ChannelSMS, Recipient: rcptA, Operator: "alice", Note: "phoned in"}
	in := OperatorChange{Tenant: "acme", Channel: ChannelSMS, Recipient: rcptA, Operator: "bob", Source: "web_form", ProofRef: "F-1"}
	for i, step := range []struct {
		optIn   bool
		oc      OperatorChange
		changed bool
	}{
		{false, out, true}, {false, out, false}, {true, in, true}, {true, in, false},
	} {
		var res Result
		var err error
		if step.optIn {
			res, err = h.s.OptIn(ctx, step.oc)
		} else {
			res, err = h.s.OptOut(ctx, step.oc)
		}
		requireNoErr(t, err)
		testutil.RequireEqual(t, res.Changed, step.changed, fmt.Sprint("step ", i))
	}
	// A marketing opt-out with a sender, twice (sender scope).
	mkt := OperatorChange{Tenant: "acme", Channel: ChannelSMS, Recipient: rcptA, Operator: "carol", Sender: senderA, Marketing: true}
	for i := 0; i < 2; i++ {
		_, err := h.s.OptOut(ctx, mkt)
		requireNoErr(t, err)
	}
	h.reopen() // synced
	hist, err := h.s.History("acme", ChannelSMS, rcptA, 0)
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(hist), 6, "one evidence entry per operator action")
	// Newest first.
	for _, c := range []struct {
		i                 int
		operator, old, nw string
		noChange          bool
	}{
		{0, "carol", "opted_in", "opted_in", true}, {1, "carol", "opted_in", "opted_in", false},
		{2, "bob", "opted_in", "opted_in", true}, {3, "bob", "opted_out", "opted_in", false},
		{4, "alice", "opted_out", "opted_out", true}, {5, "alice", "none", "opted_out", false},
	} {
		e := hist[c.i]
		testutil.RequireEqual(t, e.Operator, c.operator, fmt.Sprint("entry ", c.i))
		testutil.RequireEqual(t, e.Source, SourceOperator, fmt.Sprint("entry ", c.i))
		testutil.RequireEqual(t, [2]string{e.Old, e.New}, [2]string{c.old, c.nw}, fmt.Sprint("entry ", c.i))
		testutil.RequireEqual(t, strings.HasPrefix(e.Detail, "no change"), c.noChange, fmt.Sprint("entry ", c.i, " ", e.Detail))
	}
	testutil.RequireEqual(t, hist[0].Scope, senderA, "sender-scoped no-change entry")
	testutil.RequireEqual(t, hist[0].Class, "marketing")
	testutil.RequireEqual(t, hist[4].Detail, "no change: opt-out already in effect; phoned in")
	testutil.RequireEqual(t, hist[2].ProofRef, "F-1")
}

// TestPromptAndDisclaimerPending: the attestation prompt and the disclaimer
// are stored pending in the same synced change as the hold or the
// disclaimer record, with an id, tenant and creation time, survive a
// reopen (a crash before the send) and leave once reported sent.
func TestPromptAndDisclaimerPending(t *testing.T) {
	h := newHarness(t, testTenant("att", func(c *TenantConfig) { c.Attestation = ModeAttestation }),
		testTenant("dis", func(c *TenantConfig) { c.Attestation = ModeDisclaimer }))
	ctx := context.Background()
	pending := func() map[string]Reply {
		out := map[string]Reply{}
		requireNoErr(t, h.s.PendingReplies(h.clock.Now().Add(time.Hour), func(r Reply) bool { out[r.ID] = r; return true }))
		return out
	}
	hr, err := h.s.Hold(ctx, HeldMessage{Tenant: "att", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, ID: "m1", Payload: []byte("x")})
	requireNoErr(t, err)
	if hr.Prompt == nil || hr.Prompt.ID == "" || hr.Prompt.Tenant != "att" || hr.Prompt.Created.IsZero() {
		t.Fatalf("prompt: %+v", hr.Prompt)
	}
	hr2, err := h.s.Hold(ctx, HeldMessage{Tenant: "att", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, ID: "m2", Payload: []byte("y")})
	requireNoErr(t, err)
	testutil.RequireEqual(t, hr2.Prompt == nil, true, "second hold: no second prompt")
	disc, err := h.s.Disclaim(ctx, "dis", ChannelSMS, senderA, rcptA)
	requireNoErr(t, err)
	if disc == nil || disc.ID == "" || disc.Tenant != "dis" || disc.Created.IsZero() || disc.Kind != ReplyDisclaimer {
		t.Fatalf("disclaimer: %+v", disc)
	}
	h.reopen() // as after a crash before the sends
	p := pending()
	testutil.RequireEqual(t, len(p), 2, "pending replies")
	testutil.RequireEqual(t, p[hr.Prompt.ID], *hr.Prompt, "pending prompt")
	testutil.RequireEqual(t, p[disc.ID], *disc, "pending disclaimer")
	requireNoErr(t, h.s.ReplySent(hr.Prompt.ID))
	requireNoErr(t, h.s.ReplySent(disc.ID))
	deadline := time.Now().Add(5 * time.Second) // removals are batched
	for len(pending()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("replies still pending after ReplySent")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
