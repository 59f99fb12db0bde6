package status

import "github.com/optgate/optgate/smpp/dlr"

// State is where a message is: the answer to its submit (the first six
// share Kind's values and names), then what its carrier reports (SMSC
// receipts, WhatsApp statuses). Its String is the name the API and the
// store use.
type State uint8

// States.
const (
	StateNone              State = iota
	StateAccepted                // a carrier accepted it (Kind Accepted)
	StateQueued                  // durably queued (Kind Queued)
	StateBlocked                 // refused for consent reasons (Kind Blocked)
	StateHeld                    // held for attestation (Kind Held)
	StateRejected                // invalid, or a receipt's REJECTD (Kind Rejected)
	StateFailed                  // could not be sent (Kind Failed)
	StatePending                 // the HTTP API's answer before the carrier's
	StateEnroute                 // a receipt's ENROUTE
	StateAcceptedByCarrier       // a receipt's ACCEPTD
	StateSent                    // WhatsApp: sent
	StateDelivered               // a receipt's DELIVRD; WhatsApp: delivered
	StateRead                    // WhatsApp: read (or played)
	StateUndeliverable           // a receipt's UNDELIV; WhatsApp: failed
	StateExpired                 // a receipt's EXPIRED
	StateDeleted                 // a receipt's DELETED
	StateUnknown                 // a receipt's UNKNOWN (or a state we do not track)

	numStates
)

var stateNames = [numStates]string{
	"", "accepted", "queued", "blocked", "held", "rejected", "failed", "pending",
	"enroute", "accepted_by_carrier", "sent", "delivered", "read", "undeliverable", "expired", "deleted", "unknown",
}

// String returns the state's name ("delivered"); "unknown" for a value
// out of range.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "unknown"
}

// MarshalText writes String, so JSON shows the name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseState is the State named s; false for a name that is none.
func ParseState(s string) (State, bool) {
	for i, n := range stateNames {
		if n == s {
			return State(i), true
		}
	}
	return StateNone, false
}

// Progress ranks, for Replaces.
const (
	rankOther     = iota // the answer to the submit: accepted, queued, held, pending, unknown...
	rankEnroute          // enroute, accepted_by_carrier, sent
	rankDelivered        // delivered
	rankRead             // read (WhatsApp)
	rankFailed           // rejected, failed, undeliverable, expired, deleted: terminal
)

func (s State) rank() int {
	switch s {
	case StateEnroute, StateAcceptedByCarrier, StateSent:
		return rankEnroute
	case StateDelivered:
		return rankDelivered
	case StateRead:
		return rankRead
	case StateRejected, StateFailed, StateUndeliverable, StateExpired, StateDeleted:
		return rankFailed
	}
	return rankOther
}

// Replaces reports whether a message in state cur moves to s: the one
// ranking of states. Receipts and WhatsApp statuses arrive out of order
// (read before delivered, sent after delivered), so a state replaces only
// one of lower or equal rank (the answer to the submit < enroute/sent <
// delivered < read). A failure is terminal: nothing replaces it, not even
// a later delivered or read (a multi-device user can report both; the
// failure is what the platform must see), and it replaces any earlier
// progress. Equal ranks replace each other (refreshing the time), except
// between failures, where the first one stays. Anything replaces
// StateNone.
func (s State) Replaces(cur State) bool {
	if cur == StateNone {
		return true
	}
	c, n := cur.rank(), s.rank()
	return n > c || n == c && n != rankFailed
}

// FromReceipt is the State an SMSC receipt's state reports.
func FromReceipt(s dlr.State) State {
	switch s {
	case dlr.Delivered:
		return StateDelivered
	case dlr.Expired:
		return StateExpired
	case dlr.Deleted:
		return StateDeleted
	case dlr.Undeliverable:
		return StateUndeliverable
	case dlr.Accepted:
		return StateAcceptedByCarrier
	case dlr.Rejected:
		return StateRejected
	case dlr.Enroute:
		return StateEnroute
	}
	return StateUnknown
}

// MessageState is s as SMPP's message_state, for query_sm_resp: final
// states as themselves, blocked and rejected as REJECTED, anything still
// on its way as ENROUTE, the rest UNKNOWN.
func (s State) MessageState() dlr.State {
	switch s {
	case StateDelivered:
		return dlr.Delivered
	case StateExpired:
		return dlr.Expired
	case StateUndeliverable, StateFailed:
		return dlr.Undeliverable
	case StateBlocked, StateRejected:
		return dlr.Rejected
	case StateAccepted, StateQueued, StateHeld, StateEnroute, StateAcceptedByCarrier:
		return dlr.Enroute
	}
	return dlr.Unknown
}
