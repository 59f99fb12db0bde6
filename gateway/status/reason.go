package status

import (
	"sync"

	"github.com/optgate/optgate/consent"
)

// Reason says why a message was refused or failed, or what its carrier
// said of it. Its String is the name the API, the status book and the
// store use; those names are a contract with platforms.
//
// The values up to NumReasons are the fixed reasons below. Past them, a
// Reason is a carrier's own error text (CarrierReason), interned: the
// status book keeps one small number per message, not a string.
type Reason uint16

// Reasons. The first ones are consent's, in consent.Reason's order
// (FromConsent converts).
const (
	ReasonNone Reason = iota

	ReasonOptedOut           // a consent block: STOP, or an operator opt-out
	ReasonOptedOutAll        // a consent block: STOPALL family, the whole tenant
	ReasonMarketingOptOut    // a consent block: marketing to a marketing-only opt-out
	ReasonAttestationPending // a consent block: prompt sent, no answer yet
	ReasonNoConsent          // a consent block: attestation tenant, unknown recipient

	ReasonInvalidNumber     // the recipient is not a valid number
	ReasonAmbiguousNumber   // the recipient's national form fits more than one region
	ReasonInvalidSender     // the sender is missing or not the tenant's
	ReasonTooLong           // longer than the tenant or the carrier allows
	ReasonBadEncoding       // not valid text, or empty
	ReasonInvalidTemplate   // a WhatsApp template Meta would refuse
	ReasonNoRoute           // no carrier for the recipient (or channel)
	ReasonWindowClosed      // WhatsApp free-form text outside the 24-hour window
	ReasonCarrier           // the carrier refused or failed it
	ReasonInternal          // our failure (a store, a bug)
	ReasonStoreUnavailable  // a store refuses writes (disk full, read-only...)
	ReasonExpired           // queued (ack: store) past queue.max_age
	ReasonHeldExpired       // held for attestation past the hold time
	ReasonRecipientOptedOut // held, and the recipient said STOP

	// NumReasons is the number of fixed reasons; the Reasons of carrier
	// texts come after.
	NumReasons
)

var reasonNames = [NumReasons]string{
	"",
	"opted_out", "opted_out_all", "marketing_opt_out", "attestation_pending", "no_consent",
	"invalid_number", "ambiguous_number", "invalid_sender", "too_long", "bad_encoding", "invalid_template", "no_route",
	"whatsapp_window_closed", "carrier_error", "internal_error", "store_unavailable", "expired", "held_expired",
	"recipient_opted_out",
}

// String returns the reason's name: a fixed reason's ("opted_out"), or
// the carrier text it was made from.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	intern.mu.RLock()
	defer intern.mu.RUnlock()
	if i := int(r - NumReasons); i < len(intern.str) {
		return intern.str[i]
	}
	return ""
}

// MarshalText writes String, so JSON shows the name.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Consent reports whether r is a consent block's reason.
func (r Reason) Consent() bool { return r >= ReasonOptedOut && r <= ReasonNoConsent }

// FromConsent is the Reason of a consent block: the one conversion from
// consent's reasons (ReasonNone for consent.ReasonNone or an unknown one).
func FromConsent(r consent.Reason) Reason {
	switch r {
	case consent.ReasonOptedOut:
		return ReasonOptedOut
	case consent.ReasonOptedOutAll:
		return ReasonOptedOutAll
	case consent.ReasonMarketingOptOut:
		return ReasonMarketingOptOut
	case consent.ReasonAttestationPending:
		return ReasonAttestationPending
	case consent.ReasonNoConsent:
		return ReasonNoConsent
	}
	return ReasonNone
}

// CarrierReason is the Reason that reads text: a carrier's own error as
// the status book shows it ("err:0B", "err:131047"). A fixed reason's
// name gives that reason. Texts are kept for the life of the process, at
// most 1<<16-NumReasons-1 of them (carrier error codes are few); past
// that, ReasonCarrier.
func CarrierReason(text string) Reason {
	if text == "" {
		return ReasonNone
	}
	for r := ReasonNone + 1; r < NumReasons; r++ {
		if reasonNames[r] == text {
			return r
		}
	}
	intern.mu.RLock()
	r, ok := intern.idx[text]
	intern.mu.RUnlock()
	if ok {
		return r
	}
	intern.mu.Lock()
	defer intern.mu.Unlock()
	if r, ok := intern.idx[text]; ok {
		return r
	}
	if len(intern.str) >= 1<<16-1-int(NumReasons) {
		return ReasonCarrier
	}
	r = NumReasons + Reason(len(intern.str))
	intern.str = append(intern.str, text)
	intern.idx[text] = r
	return r
}

// intern holds the carrier texts of CarrierReason.
var intern = struct {
	mu  sync.RWMutex
	idx map[string]Reason // guarded by mu
	str []string          // guarded by mu; str[i] is Reason NumReasons+i
}{idx: map[string]Reason{}}
