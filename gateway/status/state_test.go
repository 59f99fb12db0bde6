package status

import (
	"testing"

	"github.com/optgate/optgate/smpp/dlr"
)

func TestStateNamesRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for s := StateNone; s < numStates; s++ {
		name := s.String()
		if seen[name] {
			t.Fatalf("two states named %q", name)
		}
		seen[name] = true
		got, ok := ParseState(name)
		if !ok || got != s {
			t.Errorf("ParseState(%q) = %v %v, want %v", name, got, ok, s)
		}
		if b, _ := s.MarshalText(); string(b) != name {
			t.Errorf("%v: MarshalText %q", s, b)
		}
	}
	if _, ok := ParseState("delivrd"); ok {
		t.Error("a name that is no state parsed")
	}
	if numStates.String() != "unknown" {
		t.Errorf("out of range: %q", numStates.String())
	}
}

// The ranking, as names, for every pair: the answer to the submit <
// enroute/sent < delivered < read; failures terminal, the first one kept.
func TestStateReplacesEveryPair(t *testing.T) {
	rank := map[string]int{
		"accepted": 0, "queued": 0, "blocked": 0, "held": 0, "pending": 0, "unknown": 0,
		"enroute": 1, "accepted_by_carrier": 1, "sent": 1,
		"delivered": 2,
		"read":      3,
		"rejected":  4, "failed": 4, "undeliverable": 4, "expired": 4, "deleted": 4,
	}
	if len(rank) != int(numStates)-1 {
		t.Fatalf("the table ranks %d states, there are %d", len(rank), numStates-1)
	}
	for cur := StateNone; cur < numStates; cur++ {
		for next := StateNone; next < numStates; next++ {
			want := true
			if cur != StateNone {
				c, n := rank[cur.String()], rank[next.String()]
				want = n > c || n == c && n != 4
			}
			if got := next.Replaces(cur); got != want {
				t.Errorf("%q replaces %q: %v, want %v", next, cur, got, want)
			}
		}
	}
}

func TestKindStates(t *testing.T) {
	for k, want := range map[Kind]string{Accepted: "accepted", Queued: "queued", Blocked: "blocked", Held: "held",
		Rejected: "rejected", Failed: "failed", 0: "", NumKinds: "unknown"} {
		if k.String() != want {
			t.Errorf("Kind %d: %q, want %q", k, k.String(), want)
		}
		if k > 0 && k < NumKinds && k.State().String() != want {
			t.Errorf("Kind %v leaves state %q", k, k.State())
		}
	}
	if Kind(0).State() != StateNone || NumKinds.State() != StateNone {
		t.Error("no kind, no state")
	}
}

func TestReceiptStates(t *testing.T) {
	for _, tc := range []struct {
		dlr  dlr.State
		want State
	}{
		{dlr.Delivered, StateDelivered}, {dlr.Expired, StateExpired}, {dlr.Deleted, StateDeleted},
		{dlr.Undeliverable, StateUndeliverable}, {dlr.Accepted, StateAcceptedByCarrier}, {dlr.Rejected, StateRejected},
		{dlr.Enroute, StateEnroute}, {dlr.Unknown, StateUnknown}, {dlr.Scheduled, StateUnknown}, {dlr.Skipped, StateUnknown},
		{dlr.State(200), StateUnknown},
	} {
		if got := FromReceipt(tc.dlr); got != tc.want {
			t.Errorf("FromReceipt(%v) = %v, want %v", tc.dlr, got, tc.want)
		}
	}
}

// query_sm's message_state for each of our states.
func TestMessageStates(t *testing.T) {
	want := map[State]dlr.State{
		StateDelivered: dlr.Delivered, StateExpired: dlr.Expired,
		StateUndeliverable: dlr.Undeliverable, StateFailed: dlr.Undeliverable,
		StateBlocked: dlr.Rejected, StateRejected: dlr.Rejected,
		StateAccepted: dlr.Enroute, StateQueued: dlr.Enroute, StateHeld: dlr.Enroute, StateEnroute: dlr.Enroute,
		StateAcceptedByCarrier: dlr.Enroute,
	}
	for s := StateNone; s < numStates; s++ {
		w, ok := want[s]
		if !ok {
			w = dlr.Unknown // pending, sent, read, deleted, unknown
		}
		if got := s.MessageState(); got != w {
			t.Errorf("%q: message_state %v, want %v", s, got, w)
		}
	}
}
