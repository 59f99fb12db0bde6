//go:build !race

package consent

import "testing"

// TestCheckAllocs guards the hot path: a Check with a canonical E.164 (or
// wa_id) recipient allocates nothing, suppressed or not.
func TestCheckAllocs(t *testing.T) {
	h := newHarness(t)
	h.mo("acme", ChannelSMS, senderA, rcptA, "STOP")
	for _, tc := range []struct{ ch, rcpt string }{
		{ChannelSMS, rcptA}, {ChannelSMS, "+13035550123"}, {ChannelWhatsApp, "447700900123"},
	} {
		n := testing.AllocsPerRun(1000, func() {
			h.s.Check("acme", tc.ch, senderA, tc.rcpt, CategoryMarketing)
		})
		if n != 0 {
			t.Errorf("Check(%s, %s): %v allocs/op, want 0", tc.ch, tc.rcpt, n)
		}
	}
}
