package gateway

import (
	"errors"

	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/smpp"
)

// The outcome vocabulary lives in gateway/status (so the API and the
// status book share it without importing the root); these aliases keep
// the chain's code short.
type (
	// Outcome is what happened to a message (status.Outcome).
	Outcome = status.Outcome
	// OutcomeKind classifies outcomes (status.Kind).
	OutcomeKind = status.Kind
	// MessageStatus is what the API reports about a message.
	MessageStatus = status.MessageStatus
)

// Outcome kinds.
const (
	Accepted = status.Accepted
	Queued   = status.Queued
	Blocked  = status.Blocked
	Held     = status.Held
	Rejected = status.Rejected
	Failed   = status.Failed
)

// Reasons the chain gives (Outcome.Reason); consent's come through
// status.FromConsent.
const (
	ReasonInvalidNumber    = status.ReasonInvalidNumber
	ReasonAmbiguousNumber  = status.ReasonAmbiguousNumber
	ReasonInvalidSender    = status.ReasonInvalidSender
	ReasonTooLong          = status.ReasonTooLong
	ReasonBadEncoding      = status.ReasonBadEncoding
	ReasonInvalidTemplate  = status.ReasonInvalidTemplate
	ReasonNoRoute          = status.ReasonNoRoute
	ReasonWindowClosed     = status.ReasonWindowClosed
	ReasonCarrier          = status.ReasonCarrier
	ReasonInternal         = status.ReasonInternal
	ReasonStoreUnavailable = status.ReasonStoreUnavailable
)

// smppStatus is the command_status for outcome o of a message of account
// a (nil: the defaults): the one mapping from Outcome to SMPP, used for
// submit_sm_resp and data_sm_resp, for the err: of the receipts that
// report a refusal, and for the queue's retry decision. The account's
// smpp.statuses override the consent refusals' statuses.
func smppStatus(a *Account, o Outcome) smpp.CommandStatus {
	switch o.Kind {
	case Accepted, Queued, Held:
		return smpp.StatusOK
	case Blocked:
		return blockStatus(a, o.Reason)
	case Rejected:
		switch o.Reason {
		case ReasonInvalidSender:
			return smpp.StatusInvSrcAdr
		case ReasonTooLong, ReasonBadEncoding, ReasonInvalidTemplate:
			return smpp.StatusInvMsgLen
		}
		return smpp.StatusInvDstAdr // invalid or ambiguous number, no route
	case Failed:
		switch {
		case o.CarrierCode != 0:
			return smpp.CommandStatus(o.CarrierCode) // the SMSC's own answer, relayed
		case errors.Is(o.Err, errNotQueued):
			return smpp.StatusMsgQFul
		case o.Retry:
			return smpp.StatusXTAppn
		case o.Reason == ReasonInternal:
			return smpp.StatusSysErr
		}
		return smpp.StatusDeliveryFailure // refused by a carrier that gave no code (Meta), or expired
	}
	return smpp.StatusSysErr
}

// blockStatus is the status of a message blocked for reason r: 0x401 (opted
// out), 0x402 (marketing opt-out), 0x403 (no consent yet) or 0x404 (the
// WhatsApp window), unless account a configures its own.
func blockStatus(a *Account, r status.Reason) smpp.CommandStatus {
	var st smpp.CommandStatus
	var over uint32
	var ov StatusOverrides
	if a != nil {
		ov = a.cfg.Statuses
	}
	switch r {
	case ReasonWindowClosed:
		st, over = smpp.StatusWhatsAppWindow, ov.WhatsAppWindow
	case status.ReasonMarketingOptOut:
		st, over = smpp.StatusMarketingOptOut, ov.MarketingOptOut
	case status.ReasonAttestationPending, status.ReasonNoConsent:
		st, over = smpp.StatusNoConsent, ov.NoConsent
	default:
		st, over = smpp.StatusOptedOut, ov.OptedOut
	}
	if over != 0 {
		return smpp.CommandStatus(over)
	}
	return st
}

// bookTenants is the status book's view of the gateway's tenants.
type bookTenants struct{ g *Gateway }

func (b bookTenants) TenantIndex(id string) uint16 {
	if t := b.g.tenants[id]; t != nil {
		return t.idx
	}
	return 0
}

func (b bookTenants) TenantID(i uint16) string {
	if t := b.g.tenantAt(i); t != nil {
		return t.ID
	}
	return ""
}
