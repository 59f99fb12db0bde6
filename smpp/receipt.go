package smpp

import (
	"strconv"

	"github.com/optgate/optgate/smpp/dlr"
)

// Receipt reads a delivery receipt from a deliver_sm (or data_sm turned
// into one): the TLV form first (receipted_message_id, message_state,
// network_error_code), then the text form of the short_message or
// message_payload for whatever the TLVs did not carry. ok is false when
// neither gives a message id.
func (p *DeliverSM) Receipt() (r dlr.Receipt, ok bool) {
	if id, has := p.TLVs.ReceiptedMessageID(); has && len(id) > 0 {
		r.ID = string(id)
	}
	if st, has := p.TLVs.MessageState(); has {
		r.State = dlr.State(st)
		r.Stat = r.State.Stat()
	}
	if _, code, has := p.TLVs.NetworkErrorCode(); has {
		r.Err = strconv.Itoa(int(code))
	}
	if t, err := dlr.Parse(string(p.Text())); err == nil {
		if r.ID == "" {
			r.ID = t.ID
		}
		if r.Stat == "" {
			r.Stat, r.State = t.Stat, t.State
		}
		if r.Err == "" {
			r.Err = t.Err
		}
		r.Submitted, r.Delivered, r.SubmitDate, r.DoneDate, r.Text = t.Submitted, t.Delivered, t.SubmitDate, t.DoneDate, t.Text
	}
	return r, r.ID != ""
}
