package gateway

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/smpp"
)

// The one mapping from outcomes to the statuses platforms see in
// submit_sm_resp (and in the err: of refusal receipts): every outcome the
// chain makes, with the default statuses and an account's overrides.
func TestSMPPStatusTable(t *testing.T) {
	over := &Account{cfg: AccountConfig{Statuses: StatusOverrides{OptedOut: 0x4A1, MarketingOptOut: 0x4A2, NoConsent: 0x4A3,
		WhatsAppWindow: 0x4A4}}}
	blocked := func(r status.Reason) Outcome { return Outcome{Kind: Blocked, Reason: r} }
	rejected := func(r status.Reason) Outcome { return Outcome{Kind: Rejected, Reason: r} }
	for _, tc := range []struct {
		name     string
		o        Outcome
		want     smpp.CommandStatus
		override smpp.CommandStatus // with the account's statuses; 0: the same as want
	}{
		{"accepted", Outcome{Kind: Accepted}, smpp.StatusOK, 0},
		{"queued", Outcome{Kind: Queued}, smpp.StatusOK, 0},
		{"held", Outcome{Kind: Held, Reason: status.ReasonAttestationPending}, smpp.StatusOK, 0},

		{"opted out", blocked(status.ReasonOptedOut), smpp.StatusOptedOut, 0x4A1},
		{"opted out of all", blocked(status.ReasonOptedOutAll), smpp.StatusOptedOut, 0x4A1},
		{"no reason", blocked(status.ReasonNone), smpp.StatusOptedOut, 0x4A1},
		{"marketing", blocked(status.ReasonMarketingOptOut), smpp.StatusMarketingOptOut, 0x4A2},
		{"attestation pending", blocked(status.ReasonAttestationPending), smpp.StatusNoConsent, 0x4A3},
		{"no consent", blocked(status.ReasonNoConsent), smpp.StatusNoConsent, 0x4A3},
		{"window closed", blocked(ReasonWindowClosed), smpp.StatusWhatsAppWindow, 0x4A4},

		{"invalid number", rejected(ReasonInvalidNumber), smpp.StatusInvDstAdr, 0},
		{"ambiguous number", rejected(ReasonAmbiguousNumber), smpp.StatusInvDstAdr, 0},
		{"no route", rejected(ReasonNoRoute), smpp.StatusInvDstAdr, 0},
		{"invalid sender", rejected(ReasonInvalidSender), smpp.StatusInvSrcAdr, 0},
		{"too long", rejected(ReasonTooLong), smpp.StatusInvMsgLen, 0},
		{"bad encoding", rejected(ReasonBadEncoding), smpp.StatusInvMsgLen, 0},
		{"invalid template", rejected(ReasonInvalidTemplate), smpp.StatusInvMsgLen, 0},

		{"panic", Outcome{Kind: Failed, Reason: ReasonInternal, Err: errors.New("internal error")}, smpp.StatusSysErr, 0},
		{"consent store down", Outcome{Kind: Failed, Reason: ReasonInternal, Retry: true}, smpp.StatusXTAppn, 0},
		{"store unhealthy", Outcome{Kind: Failed, Reason: ReasonStoreUnavailable, Retry: true, Err: ErrStoreUnhealthy},
			smpp.StatusXTAppn, 0},
		{"not queued", Outcome{Kind: Failed, Reason: ReasonInternal, Retry: true,
			Err: fmt.Errorf("%w: %w", errNotQueued, context.Canceled)}, smpp.StatusMsgQFul, 0},
		{"smsc unreachable", Outcome{Kind: Failed, Reason: ReasonCarrier, Retry: true, Err: smpp.ErrNotBound}, smpp.StatusXTAppn, 0},
		{"smsc refused", Outcome{Kind: Failed, Reason: ReasonCarrier, CarrierCode: uint32(smpp.StatusInvDstAdr)},
			smpp.StatusInvDstAdr, 0},
		{"smsc throttled", Outcome{Kind: Failed, Reason: ReasonCarrier, CarrierCode: uint32(smpp.StatusThrottled)},
			smpp.StatusThrottled, 0},
		{"meta refused", Outcome{Kind: Failed, Reason: ReasonCarrier}, smpp.StatusDeliveryFailure, 0},
		{"meta marketing", Outcome{Kind: Failed, Reason: status.ReasonMarketingOptOut}, smpp.StatusDeliveryFailure, 0},
		{"expired in the queue", Outcome{Kind: Failed, Reason: status.ReasonExpired}, smpp.StatusDeliveryFailure, 0},
		{"no kind", Outcome{}, smpp.StatusSysErr, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := smppStatus(nil, tc.o); got != tc.want {
				t.Errorf("default: %v, want %v", got, tc.want)
			}
			want := tc.override
			if want == 0 {
				want = tc.want
			}
			if got := smppStatus(over, tc.o); got != want {
				t.Errorf("with the account's statuses: %v, want %v", got, want)
			}
		})
	}
}

// A queued message is retried when its failure is temporary for SMPP.
func TestQueueRetryable(t *testing.T) {
	for _, tc := range []struct {
		o    Outcome
		want bool
	}{
		{Outcome{Kind: Failed, Reason: ReasonCarrier, Retry: true}, true},
		{Outcome{Kind: Failed, Reason: ReasonCarrier, CarrierCode: uint32(smpp.StatusThrottled)}, true},
		{Outcome{Kind: Failed, Reason: ReasonCarrier, CarrierCode: uint32(smpp.StatusInvDstAdr)}, false},
		{Outcome{Kind: Failed, Reason: ReasonCarrier, CarrierCode: uint32(smpp.StatusInvDstAdr), Err: smpp.ErrClosed}, true},
		{Outcome{Kind: Failed, Reason: ReasonInternal}, true}, // ESME_RSYSERR is temporary
		{Outcome{Kind: Failed, Reason: ReasonCarrier}, false},
	} {
		if got := queueRetryable(tc.o); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.o, got, tc.want)
		}
	}
}
