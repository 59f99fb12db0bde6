package smpp

import (
	"strconv"

	"github.com/optgate/optgate/smpp/dlr"
)

// Receipt reads a delivery receipt from a deliver_sm (or data_sm turned
// into one): the TLV form first (receipted_message_id, message_state,
// network_error_code), then the text form of the short_message or
// message_payload for whatever the TLVs did not carry.
//
// ok is false when neither form gives a message id, or neither gives a
// state: a receipt that says nothing about the message's fate is not
// reported as any state (State 0 is SCHEDULED). State is then dlr.Unknown
// and Stat is empty.
//
// A network_error_code TLV sets Err to its error part in decimal, zero
// padded to the three digits of the text form's err: field ("034" for
// 34), so receipts read from either form compare alike; codes over 999
// keep all their digits. The text form's err: is kept as written.
func (p *DeliverSM) Receipt() (r dlr.Receipt, ok bool) {
	r.State = dlr.Unknown
	hasState := false
	if id, has := p.TLVs.ReceiptedMessageID(); has && len(id) > 0 {
		r.ID = string(id)
	}
	if st, has := p.TLVs.MessageState(); has {
		r.State = dlr.State(st)
		r.Stat = r.State.Stat()
		hasState = true
	}
	if _, code, has := p.TLVs.NetworkErrorCode(); has {
		r.Err = errCode3(code)
	}
	if t, err := dlr.Parse(string(p.Text())); err == nil {
		if r.ID == "" {
			r.ID = t.ID
		}
		if !hasState && t.Stat != "" {
			r.Stat, r.State = t.Stat, t.State
			hasState = true
		}
		if r.Err == "" {
			r.Err = t.Err
		}
		r.Submitted, r.Delivered, r.SubmitDate, r.DoneDate, r.Text = t.Submitted, t.Delivered, t.SubmitDate, t.DoneDate, t.Text
	}
	return r, r.ID != "" && hasState
}

// errCode3 formats a network error code as the text receipts' err: field
// does: three digits, zero padded.
func errCode3(code uint16) string {
	s := strconv.Itoa(int(code))
	for len(s) < 3 {
		s = "0" + s
	}
	return s
}
