package dlr

import (
	"strconv"
	"strings"
)

// State is an SMPP message state, with the values of the message_state TLV
// (0x0427) and of query_sm_resp (SMPP 3.4 §5.2.28; 0 and 9 are from v5.0).
type State uint8

// Message states.
const (
	Scheduled     State = 0 // v5.0: waiting for its scheduled delivery time
	Enroute       State = 1 // in transit; intermediate
	Delivered     State = 2
	Expired       State = 3
	Deleted       State = 4
	Undeliverable State = 5
	Accepted      State = 6 // see Final: treated as intermediate
	Unknown       State = 7
	Rejected      State = 8
	Skipped       State = 9 // v5.0
)

var stateNames = [...]string{
	Scheduled: "SCHEDULED", Enroute: "ENROUTE", Delivered: "DELIVERED", Expired: "EXPIRED",
	Deleted: "DELETED", Undeliverable: "UNDELIVERABLE", Accepted: "ACCEPTED", Unknown: "UNKNOWN",
	Rejected: "REJECTED", Skipped: "SKIPPED",
}

// stats are the 7-letter stat words of receipt text, by State. Scheduled has
// none of its own and is reported as ENROUTE, which receivers read as
// intermediate.
var stats = [...]string{
	Scheduled: "ENROUTE", Enroute: "ENROUTE", Delivered: "DELIVRD", Expired: "EXPIRED",
	Deleted: "DELETED", Undeliverable: "UNDELIV", Accepted: "ACCEPTD", Unknown: "UNKNOWN",
	Rejected: "REJECTD", Skipped: "SKIPPED",
}

// String returns the state's name as in the specification, e.g.
// "UNDELIVERABLE".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Stat returns the 7-letter stat word for receipt text, e.g. "UNDELIV".
// States outside 0–9 give "UNKNOWN".
func (s State) Stat() string {
	if int(s) < len(stats) {
		return stats[s]
	}
	return "UNKNOWN"
}

// Final reports whether no further receipt is expected for the message:
// false for Enroute, Accepted and Scheduled, true otherwise. SMPP 3.4 lists
// ACCEPTED as final, but SMSCs send ACCEPTD right after submission and
// Kannel treats it as buffered, so Final agrees with Outcome instead.
func (s State) Final() bool {
	return s.Outcome() != OutcomeBuffered
}

// Outcome classifies the state the way Kannel does for the message_state
// TLV: Delivered → OutcomeDelivered; Enroute, Accepted (and Scheduled) →
// OutcomeBuffered; everything else → OutcomeFailed.
func (s State) Outcome() Outcome {
	switch s {
	case Delivered:
		return OutcomeDelivered
	case Enroute, Accepted, Scheduled:
		return OutcomeBuffered
	}
	return OutcomeFailed
}

// statWords maps receipt stat words, standard and vendor, to states.
var statWords = []struct {
	word  string
	state State
}{
	{"DELIVRD", Delivered},
	{"UNDELIV", Undeliverable},
	{"ACCEPTD", Accepted},
	{"ENROUTE", Enroute},
	{"EXPIRED", Expired},
	{"REJECTD", Rejected},
	{"DELETED", Deleted},
	{"UNKNOWN", Unknown},
	// Vendor words (smpp.md §9).
	{"BUFFRED", Enroute},
	{"BUFFERD", Enroute},
	{"ACKED", Enroute},
	{"FAILED", Undeliverable},
	{"NOCRED", Undeliverable},
	{"SYSERR", Undeliverable},
	// Full names some SMSCs write instead of the 7-letter forms.
	{"DELIVERED", Delivered},
	{"UNDELIVERABLE", Undeliverable},
	{"ACCEPTED", Accepted},
	{"REJECTED", Rejected},
	{"BUFFERED", Enroute},
	{"SCHEDULED", Scheduled},
	{"SKIPPED", Skipped},
}

// StateFromStat maps a receipt's stat word to a State, ignoring case and
// surrounding space: DELIVRD → Delivered, EXPIRED, DELETED, UNDELIV →
// Undeliverable, ACCEPTD → Accepted, UNKNOWN, REJECTD → Rejected, ENROUTE;
// the vendor words BUFFRED, BUFFERD and ACKED → Enroute and FAILED, NOCRED
// and SYSERR → Undeliverable; the full state names (DELIVERED, ...) too.
// Any other word gives Unknown.
func StateFromStat(stat string) State {
	stat = strings.TrimSpace(stat)
	for _, w := range statWords {
		if strings.EqualFold(stat, w.word) {
			return w.state
		}
	}
	return Unknown
}

// Outcome is what a receipt means for the sender. The values are the bits
// of Kannel's dlr-mask (1 delivered to phone, 2 not delivered, 4 queued on
// SMSC), so a mask can be tested with mask&uint8(outcome) != 0.
type Outcome uint8

// Outcomes.
const (
	OutcomeDelivered Outcome = 1
	OutcomeFailed    Outcome = 2
	OutcomeBuffered  Outcome = 4
)

func (o Outcome) String() string {
	switch o {
	case OutcomeDelivered:
		return "delivered"
	case OutcomeFailed:
		return "failed"
	case OutcomeBuffered:
		return "buffered"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// OutcomeOf classifies a stat word by Kannel's rule (smpp.md §9): DELIVRD
// is delivered; ACCEPTD, ACKED, BUFFRED, BUFFERD and ENROUTE are buffered;
// anything else is failed. It is StateFromStat(stat).Outcome(), so the full
// names that StateFromStat accepts are classified by their state.
func OutcomeOf(stat string) Outcome {
	return StateFromStat(stat).Outcome()
}
