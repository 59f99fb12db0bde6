package receipt

import (
	"time"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// Synthetic is the one constructor of the receipts optgate makes itself
// rather than relays: for a whole message it accepted and will not
// deliver (a submit refused under reject: receipt, a held message that
// will never be sent, a queued one that expired or failed). It returns t
// as the target of a whole message (part 1 of 1) and a report of state,
// which is dlr.Rejected, dlr.Expired or dlr.Undeliverable, with our id
// (t.MsgID), the state's stat: word, done at at, and as err: the low three
// hex digits of status, the SMPP status that decided the outcome
// (0x00000401 reads err:401).
func Synthetic(t Target, state dlr.State, status smpp.CommandStatus, at time.Time) (Target, Report) {
	t.Part, t.Parts = 1, 1
	return t, Report{ID: t.MsgID, State: state, Stat: state.Stat(), Err: errField(uint32(status)), Done: at}
}

// errField is the receipt err: field for a status: its low three hex
// digits, so 0x00000401 reads err:401.
func errField(code uint32) string {
	const hexd = "0123456789ABCDEF"
	return string([]byte{hexd[code>>8&0xF], hexd[code>>4&0xF], hexd[code&0xF]})
}
