package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/optgate/optgate/smpp"
)

// An SMSC that sends Latin-1 under data_coding 0: DÉSABONNER arrives as
// D\xC9SABONNER, which GSM 03.38 cannot hold (no septet is above 0x7F); the
// screen reads it as Latin-1 too and the opt-out is applied. With
// data_coding_0: latin1 it is read as Latin-1 outright.
func TestLatin1UnderDataCoding0(t *testing.T) {
	env := newEnv(t)
	for i, c := range []struct{ dc uint8 }{{0}, {1}} {
		from := "+1514555017" + string(rune('0'+i))
		d := &smpp.DeliverSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(from[1:])},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])}, DataCoding: c.dc, ShortMessage: []byte("D\xc9SABONNER")}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := env.smsc.SendDeliver(ctx, "optgate", d)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		ev := lastEvidence(t, env, from)
		want := "latin1 (data_coding " + string(rune('0'+c.dc)) + " holds latin1 octets)"
		if ev.New != "opted_out" || ev.Decoding != want {
			t.Fatalf("data_coding %d: evidence new=%q decoding=%q, want opted_out, %q", c.dc, ev.New, ev.Decoding, want)
		}
		if _, err := env.submit(from, "Another offer"); smpp.StatusOf(err) != smpp.StatusOptedOut {
			t.Fatalf("MT after DÉSABONNER in Latin-1: %v", err)
		}
	}
}
