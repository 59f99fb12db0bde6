package consent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// MoveNumber copies every kind of opt-out to the new number, with evidence
// naming the old one, and keeps the old number's.
func TestMoveNumber(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const oldN, newN, other = "+447700900501", "+447700900502", "+447700900503"
	h.mo("acme", ChannelWhatsApp, senderA, oldN, "STOP")
	_, err := h.s.SetMarketingPreference(ctx, MarketingPreference{Tenant: "acme", Sender: senderA, Recipient: other, Stop: true, At: time.Now()})
	requireNoErr(t, err, "marketing stop")
	for _, tc := range []struct{ from, to string }{{oldN, newN}, {other, "447700900504"}} {
		_, err := h.s.MoveNumber(ctx, NumberChange{Tenant: "acme", Channel: ChannelWhatsApp, Sender: senderA, From: tc.from, To: tc.to,
			MessageID: "wamid.chg", Detail: "test"})
		requireNoErr(t, err, "MoveNumber")
	}
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, newN, CategoryTransactional).Action, ActionBlock, "new number")
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, oldN, CategoryTransactional).Action, ActionBlock, "old number kept")
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, "+447700900504", CategoryMarketing).Action, ActionBlock, "marketing moved")
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, "+447700900504", CategoryTransactional).Action, ActionSend, "marketing only")
	hist, err := h.s.History("acme", ChannelWhatsApp, newN, 10)
	requireNoErr(t, err, "History")
	if len(hist) == 0 || hist[0].Source != SourceNumberChange || hist[0].MessageID != "wamid.chg" {
		t.Fatalf("evidence of the move: %+v", hist)
	}
}

// An opt-in older than NotBefore changes nothing; an opt-out always applies.
func TestInboundNotBefore(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	const rcpt = "+447700900511"
	stopAt := time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)
	in := func(text, id string, at time.Time) Result {
		res, err := h.s.Inbound(ctx, InboundMessage{Tenant: "acme", Channel: ChannelWhatsApp, Sender: senderA, Recipient: rcpt,
			Text: text, MessageID: id, ReceivedAt: at, NotBefore: stopAt, WaID: rcpt[1:]})
		requireNoErr(t, err, text)
		return res
	}
	in("STOP", "m1", stopAt)
	if res := in("START", "m2", stopAt.AddDate(-3, 0, 0)); !res.Stale || res.Changed || len(res.Replies) != 0 {
		t.Fatalf("old START: %+v", res)
	}
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, rcpt, CategoryTransactional).Action, ActionBlock, "after old START")
	if hist, _ := h.s.History("acme", ChannelWhatsApp, rcpt, 1); len(hist) != 1 || hist[0].MessageID != "m2" ||
		hist[0].Old != hist[0].New || !strings.Contains(hist[0].Detail, "no change") {
		t.Fatalf("the ignored START is not in the evidence: %+v", hist)
	}
	if res := in("STOP", "m3", stopAt.AddDate(-3, 0, 0)); res.Stale {
		t.Fatalf("an old STOP is applied whatever its time: %+v", res)
	}
	if res := in("START", "m4", stopAt.AddDate(1, 0, 0)); res.Stale || !res.Changed {
		t.Fatalf("newer START: %+v", res)
	}
	testutil.RequireEqual(t, h.check("acme", ChannelWhatsApp, senderA, rcpt, CategoryTransactional).Action, ActionSend, "after newer START")
	hist, err := h.s.History("acme", ChannelWhatsApp, rcpt, 10)
	requireNoErr(t, err, "History")
	if len(hist) == 0 || hist[len(hist)-1].WaID != rcpt[1:] {
		t.Fatalf("wa_id not in evidence: %+v", hist)
	}
}
