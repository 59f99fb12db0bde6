package status

// Outcome is what happened to a message's submit: how the chain finished
// it. It is channel-neutral: the edges map it (the SMPP server to a
// command_status, the HTTP API to a status code, the book to a State).
type Outcome struct {
	Kind   Kind
	Reason Reason // why it was blocked, rejected or failed; ReasonNone when accepted
	// Retry marks a Failed outcome as temporary: a store or the carrier
	// could not take it now, and the same message may go through later.
	Retry bool
	// CarrierCode is the carrier's own code for a Failed message it refused (an
	// SMSC's command_status, relayed to the platform as is); 0 when the
	// carrier gave none. Only the carrier's link sets it.
	CarrierCode uint32
	Err         error
	SMSC        string // which SMSC took it ("whatsapp" for Meta)
	SMSCID      string // the carrier's message id
	Parts       int
}

// Kind classifies outcomes.
type Kind uint8

// Outcome kinds. Each is also the name of the State it leaves the message
// in (Kind.State).
const (
	Accepted Kind = iota + 1 // a carrier (SMSC or Meta) accepted it
	Queued                   // durably queued (ack: store), will be sent
	Blocked                  // refused for consent reasons, nothing sent
	Held                     // held until the recipient answers the attestation prompt
	Rejected                 // invalid (bad number, too long, bad encoding)
	Failed                   // could not be sent (temporary or permanent carrier error)

	// NumKinds bounds the kinds, for arrays indexed by Kind.
	NumKinds = Failed + 1
)

// String returns the kind's name ("accepted"); "" for the zero Kind,
// "unknown" for a value out of range.
func (k Kind) String() string {
	if k < NumKinds {
		return stateNames[k]
	}
	return "unknown"
}

// State is the state an outcome of kind k leaves its message in.
func (k Kind) State() State {
	if k >= Accepted && k < NumKinds {
		return State(k)
	}
	return StateNone
}
