package smpp

import (
	"testing"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp/dlr"
)

func TestDeliverReceiptForms(t *testing.T) {
	// Text form only.
	d := &DeliverSM{SM: SM{ESMClass: ESMClassReceipt,
		ShortMessage: []byte("id:0123456789 sub:001 dlvrd:001 submit date:2411221030 done date:2411221031 stat:DELIVRD err:000 text:hello")}}
	r, ok := d.Receipt()
	testutil.RequireEqual(t, ok, true)
	testutil.RequireEqual(t, [3]any{r.ID, r.State, r.Err}, [3]any{"0123456789", dlr.Delivered, "000"})
	// TLVs win over the text; the text fills the rest.
	requireNoErr(t, d.TLVs.SetCString(TagReceiptedMessageID, "abc"))
	requireNoErr(t, d.TLVs.SetUint8(TagMessageState, uint8(dlr.Undeliverable)))
	requireNoErr(t, d.TLVs.Set(TagNetworkErrorCode, []byte{3, 0, 34}))
	r, ok = d.Receipt()
	testutil.RequireEqual(t, ok, true)
	testutil.RequireEqual(t, [4]any{r.ID, r.State, r.Stat, r.Err}, [4]any{"abc", dlr.Undeliverable, "UNDELIV", "034"}) // the text form's three digits
	testutil.RequireEqual(t, r.Text, "hello")
	// Neither form.
	_, ok = (&DeliverSM{SM: SM{ShortMessage: []byte("just a message")}}).Receipt()
	testutil.RequireEqual(t, ok, false)
}

// A receipt with an id but no state anywhere (no message_state TLV, text
// that does not parse) is not reported as State 0 (SCHEDULED): ok is false
// and the state is Unknown.
func TestReceiptWithoutState(t *testing.T) {
	d := &DeliverSM{SM: SM{ESMClass: ESMClassReceipt, ShortMessage: []byte("garbled \x01 receipt")}}
	requireNoErr(t, d.TLVs.SetCString(TagReceiptedMessageID, "abc"))
	r, ok := d.Receipt()
	testutil.RequireEqual(t, ok, false)
	testutil.RequireEqual(t, [3]any{r.ID, r.State, r.Stat}, [3]any{"abc", dlr.Unknown, ""})
	// The state alone from the TLV is enough; codes over 999 keep their digits.
	requireNoErr(t, d.TLVs.SetUint8(TagMessageState, uint8(dlr.Delivered)))
	requireNoErr(t, d.TLVs.Set(TagNetworkErrorCode, []byte{3, 0x04, 0xD2}))
	r, ok = d.Receipt()
	testutil.RequireEqual(t, ok, true)
	testutil.RequireEqual(t, [3]any{r.State, r.Stat, r.Err}, [3]any{dlr.Delivered, "DELIVRD", "1234"})
	requireNoErr(t, d.TLVs.Set(TagNetworkErrorCode, []byte{3, 0, 0}))
	r, _ = d.Receipt()
	testutil.RequireEqual(t, r.Err, "000")
}
