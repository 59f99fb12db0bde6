package consent

import (
	"testing"
	"time"
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
	requireEqual(t, n, 0)
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
	requireEqual(t, len(h.mo("acme", ChannelSMS, senderA, "+15145550101", "hello").Replies), 0)
	requireEqual(t, len(pending()), 0)
}
