package receipt

import (
	"testing"
	"time"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// Synthetic makes each kind of receipt optgate sends for a message it
// will not deliver: a whole message, our id, the state's stat word and
// the deciding status's low three hex digits as err. The text is the one
// the upstream ESME reads (the gateway formats the report so).
func TestSynthetic(t *testing.T) {
	at := time.Date(2026, 12, 7, 5, 30, 0, 0, time.UTC)
	in := target("18c2f0a1b2c3d4e5")
	in.Part, in.Parts = 2, 3
	for _, c := range []struct {
		state          dlr.State
		status         smpp.CommandStatus
		stat, err, txt string
	}{
		{dlr.Rejected, smpp.StatusNoConsent, "REJECTD", "403",
			"id:18c2f0a1b2c3d4e5 sub:001 dlvrd:000 submit date:2612070530 done date:2612070530 stat:REJECTD err:403 text:"},
		{dlr.Rejected, 0x401, "REJECTD", "401",
			"id:18c2f0a1b2c3d4e5 sub:001 dlvrd:000 submit date:2612070530 done date:2612070530 stat:REJECTD err:401 text:"},
		{dlr.Expired, smpp.StatusDeliveryFailure, "EXPIRED", "0FE",
			"id:18c2f0a1b2c3d4e5 sub:001 dlvrd:000 submit date:2612070530 done date:2612070530 stat:EXPIRED err:0FE text:"},
		{dlr.Undeliverable, smpp.StatusXTAppn, "UNDELIV", "064",
			"id:18c2f0a1b2c3d4e5 sub:001 dlvrd:000 submit date:2612070530 done date:2612070530 stat:UNDELIV err:064 text:"},
	} {
		tg, r := Synthetic(in, c.state, c.status, at)
		want := in
		want.Part, want.Parts = 1, 1
		if tg != want {
			t.Fatalf("%v: target %+v, want %+v", c.state, tg, want)
		}
		wantR := Report{ID: in.MsgID, State: c.state, Stat: c.stat, Err: c.err, Done: at}
		if r != wantR {
			t.Fatalf("%v: report %+v, want %+v", c.state, r, wantR)
		}
		txt := dlr.Format(dlr.Receipt{ID: tg.MsgID, Submitted: 1, SubmitDate: r.Done, DoneDate: r.Done, Stat: r.Stat, State: r.State, Err: r.Err})
		if txt != c.txt {
			t.Fatalf("%v: text %q, want %q", c.state, txt, c.txt)
		}
	}
}
