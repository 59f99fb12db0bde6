package dlr

import (
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

func TestState(t *testing.T) {
	tests := []struct {
		s       State
		name    string
		stat    string
		final   bool
		outcome Outcome
	}{
		{Scheduled, "SCHEDULED", "ENROUTE", false, OutcomeBuffered},
		{Enroute, "ENROUTE", "ENROUTE", false, OutcomeBuffered},
		{Delivered, "DELIVERED", "DELIVRD", true, OutcomeDelivered},
		{Expired, "EXPIRED", "EXPIRED", true, OutcomeFailed},
		{Deleted, "DELETED", "DELETED", true, OutcomeFailed},
		{Undeliverable, "UNDELIVERABLE", "UNDELIV", true, OutcomeFailed},
		{Accepted, "ACCEPTED", "ACCEPTD", false, OutcomeBuffered},
		{Unknown, "UNKNOWN", "UNKNOWN", true, OutcomeFailed},
		{Rejected, "REJECTED", "REJECTD", true, OutcomeFailed},
		{Skipped, "SKIPPED", "SKIPPED", true, OutcomeFailed},
		{State(42), "State(42)", "UNKNOWN", true, OutcomeFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.RequireEqual(t, tt.s.String(), tt.name)
			testutil.RequireEqual(t, tt.s.Stat(), tt.stat)
			testutil.RequireEqual(t, len(tt.s.Stat()), 7)
			testutil.RequireEqual(t, tt.s.Final(), tt.final)
			testutil.RequireEqual(t, tt.s.Outcome(), tt.outcome)
		})
	}
}

func TestStateFromStat(t *testing.T) {
	tests := []struct {
		stat    string
		want    State
		outcome Outcome
	}{
		{"DELIVRD", Delivered, OutcomeDelivered},
		{"delivrd", Delivered, OutcomeDelivered},
		{" DELIVRD ", Delivered, OutcomeDelivered},
		{"EXPIRED", Expired, OutcomeFailed},
		{"DELETED", Deleted, OutcomeFailed},
		{"UNDELIV", Undeliverable, OutcomeFailed},
		{"ACCEPTD", Accepted, OutcomeBuffered},
		{"UNKNOWN", Unknown, OutcomeFailed},
		{"REJECTD", Rejected, OutcomeFailed},
		{"ENROUTE", Enroute, OutcomeBuffered},
		{"BUFFRED", Enroute, OutcomeBuffered},
		{"BUFFERD", Enroute, OutcomeBuffered},
		{"ACKED", Enroute, OutcomeBuffered},
		{"FAILED", Undeliverable, OutcomeFailed},
		{"NOCRED", Undeliverable, OutcomeFailed},
		{"SYSERR", Undeliverable, OutcomeFailed},
		{"DELIVERED", Delivered, OutcomeDelivered},
		{"UNDELIVERABLE", Undeliverable, OutcomeFailed},
		{"BOGUS", Unknown, OutcomeFailed},
		{"", Unknown, OutcomeFailed},
	}
	for _, tt := range tests {
		t.Run(tt.stat, func(t *testing.T) {
			testutil.RequireEqual(t, StateFromStat(tt.stat), tt.want)
			testutil.RequireEqual(t, OutcomeOf(tt.stat), tt.outcome)
		})
	}
}

func TestReceiptOutcome(t *testing.T) {
	testutil.RequireEqual(t, Receipt{Stat: "ACKED", State: Delivered}.Outcome(), OutcomeBuffered)
	testutil.RequireEqual(t, Receipt{State: Delivered}.Outcome(), OutcomeDelivered)
	testutil.RequireEqual(t, OutcomeDelivered.String(), "delivered")
	testutil.RequireEqual(t, OutcomeBuffered.String(), "buffered")
	testutil.RequireEqual(t, OutcomeFailed.String(), "failed")
	// The values are Kannel's dlr-mask bits.
	testutil.RequireEqual(t, uint8(OutcomeDelivered|OutcomeFailed|OutcomeBuffered), uint8(7))
}
