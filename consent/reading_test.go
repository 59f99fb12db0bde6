package consent

import (
	"context"
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

// An MO whose labelled reading holds no keyword is screened in its other
// reading (AltText): the opt-out is applied, the evidence says which
// reading matched, Text stays as received. A labelled reading that
// matches wins.
func TestInboundAltReading(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	res, err := h.s.Inbound(ctx, InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA,
		Text: "D\x1fSABONNER", Reading: "ia5", AltText: "DÉSABONNER", AltReading: "gsm7 (data_coding 1 holds gsm7 octets)",
		ReceivedAt: h.clock.Now()})
	requireNoErr(t, err)
	testutil.RequireEqual(t, res.Matched, true, "matched")
	testutil.RequireEqual(t, res.Match.Keyword, "DESABONNER")
	testutil.RequireEqual(t, len(res.Replies), 1, "replies")
	ev, err := h.s.History("acme", ChannelSMS, rcptA, 1)
	requireNoErr(t, err)
	testutil.RequireEqual(t, ev[0].Decoding, "gsm7 (data_coding 1 holds gsm7 octets)")
	testutil.RequireEqual(t, ev[0].Text, "D\x1fSABONNER")
	testutil.RequireEqual(t, ev[0].Keyword, "DÉSABONNER")

	res, err = h.s.Inbound(ctx, InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: "+12025550124",
		Text: "STOP", Reading: "ia5", AltText: "something else", AltReading: "gsm7", ReceivedAt: h.clock.Now()})
	requireNoErr(t, err)
	testutil.RequireEqual(t, res.Match.Keyword, "STOP")
	ev, err = h.s.History("acme", ChannelSMS, "+12025550124", 1)
	requireNoErr(t, err)
	testutil.RequireEqual(t, ev[0].Decoding, "ia5")
}

// RememberMessage names an MO applied without an id: the same id given to
// Inbound afterwards is a Duplicate with no reply.
func TestRememberMessage(t *testing.T) {
	h := newHarness(t, testTenant("acme", func(c *TenantConfig) { c.RepeatConfirmWindow = RepeatConfirmAlways }))
	ctx := context.Background()
	in := InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: rcptA, Text: "STOP", ReceivedAt: h.clock.Now()}
	res, err := h.s.Inbound(ctx, in)
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(res.Replies), 1, "first STOP replies")
	requireNoErr(t, h.s.RememberMessage(ctx, "acme", ChannelSMS, senderA, "mo-retry:1"))
	h.reopen() // durable
	in.MessageID = "mo-retry:1"
	res, err = h.s.Inbound(ctx, in)
	requireNoErr(t, err)
	testutil.RequireEqual(t, res.Duplicate, true, "duplicate")
	testutil.RequireEqual(t, len(res.Replies), 0, "replies to the retry")
	in.MessageID = "mo-retry:2" // another id: a new STOP, confirmed again (repeat window off)
	res, err = h.s.Inbound(ctx, in)
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(res.Replies), 1, "replies to a new STOP")
	if err := h.s.RememberMessage(ctx, "acme", ChannelSMS, senderA, ""); err == nil {
		t.Fatal("empty id accepted")
	}
}
