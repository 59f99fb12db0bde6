package smpp

import (
	"testing"

	"github.com/optgate/optgate/smpp/dlr"
)

func TestDeliverReceiptForms(t *testing.T) {
	// Text form only.
	d := &DeliverSM{SM: SM{ESMClass: ESMClassReceipt,
		ShortMessage: []byte("id:0123456789 sub:001 dlvrd:001 submit date:2411221030 done date:2411221031 stat:DELIVRD err:000 text:hello")}}
	r, ok := d.Receipt()
	requireEqual(t, ok, true)
	requireEqual(t, [3]any{r.ID, r.State, r.Err}, [3]any{"0123456789", dlr.Delivered, "000"})
	// TLVs win over the text; the text fills the rest.
	requireNoErr(t, d.TLVs.SetCString(TagReceiptedMessageID, "abc"))
	requireNoErr(t, d.TLVs.SetUint8(TagMessageState, uint8(dlr.Undeliverable)))
	requireNoErr(t, d.TLVs.Set(TagNetworkErrorCode, []byte{3, 0, 34}))
	r, ok = d.Receipt()
	requireEqual(t, ok, true)
	requireEqual(t, [4]any{r.ID, r.State, r.Stat, r.Err}, [4]any{"abc", dlr.Undeliverable, "UNDELIV", "34"})
	requireEqual(t, r.Text, "hello")
	// Neither form.
	_, ok = (&DeliverSM{SM: SM{ShortMessage: []byte("just a message")}}).Receipt()
	requireEqual(t, ok, false)
}
