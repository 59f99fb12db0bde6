package status

import (
	"encoding/json"
	"testing"

	"github.com/optgate/optgate/consent"
)

// The names are a contract with platforms (the API's error codes, the
// status book's reasons, the store): each one, exactly.
func TestReasonNames(t *testing.T) {
	want := map[Reason]string{
		ReasonNone: "", ReasonOptedOut: "opted_out", ReasonOptedOutAll: "opted_out_all",
		ReasonMarketingOptOut: "marketing_opt_out", ReasonAttestationPending: "attestation_pending",
		ReasonNoConsent: "no_consent", ReasonInvalidNumber: "invalid_number", ReasonAmbiguousNumber: "ambiguous_number",
		ReasonInvalidSender: "invalid_sender", ReasonTooLong: "too_long", ReasonBadEncoding: "bad_encoding",
		ReasonInvalidTemplate: "invalid_template", ReasonNoRoute: "no_route", ReasonWindowClosed: "whatsapp_window_closed",
		ReasonCarrier: "carrier_error", ReasonInternal: "internal_error", ReasonStoreUnavailable: "store_unavailable",
		ReasonExpired: "expired", ReasonHeldExpired: "held_expired", ReasonRecipientOptedOut: "recipient_opted_out",
	}
	if len(want) != int(NumReasons) {
		t.Fatalf("the table names %d reasons, there are %d", len(want), NumReasons)
	}
	for r := ReasonNone; r < NumReasons; r++ {
		if r.String() != want[r] {
			t.Errorf("Reason %d: %q, want %q", r, r.String(), want[r])
		}
		// The store reads a reason back by its name.
		if got := CarrierReason(r.String()); got != r {
			t.Errorf("CarrierReason(%q) = %d, want %d", r.String(), got, r)
		}
	}
}

func TestReasonFromConsent(t *testing.T) {
	for r := consent.ReasonNone; r <= consent.ReasonNoConsent; r++ {
		got := FromConsent(r)
		if got.String() != r.String() || got.Consent() != (r != consent.ReasonNone) {
			t.Errorf("FromConsent(%v) = %q (consent %v)", r, got, got.Consent())
		}
	}
	if FromConsent(consent.Reason(200)) != ReasonNone {
		t.Error("an unknown consent reason")
	}
	for r := ReasonNone; r < NumReasons; r++ {
		if r.Consent() != (r >= ReasonOptedOut && r <= ReasonNoConsent) {
			t.Errorf("%q: Consent %v", r, r.Consent())
		}
	}
}

// A carrier's error text is a Reason of its own, the same for the same
// text, and reads back as the text; JSON shows the name.
func TestCarrierReason(t *testing.T) {
	a, b := CarrierReason("err:0B"), CarrierReason("err:131047")
	if a < NumReasons || b < NumReasons || a == b || CarrierReason("err:0B") != a {
		t.Fatalf("carrier reasons %d %d", a, b)
	}
	if a.String() != "err:0B" || b.String() != "err:131047" {
		t.Fatalf("carrier reasons read %q %q", a, b)
	}
	if CarrierReason("") != ReasonNone {
		t.Fatal("an empty text")
	}
	out, err := json.Marshal(struct {
		R Reason `json:"reason,omitempty"`
		N Reason `json:"none,omitempty"`
		S State  `json:"state"`
	}{R: a, S: StateDelivered})
	if err != nil || string(out) != `{"reason":"err:0B","state":"delivered"}` {
		t.Fatalf("JSON %s %v", out, err)
	}
	if Reason(1<<16-1).String() != "" {
		t.Fatal("a reason never made")
	}
}
