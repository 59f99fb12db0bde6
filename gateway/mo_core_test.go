package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// An MO is counted the same way whatever channel brought it (one MO
// consent core): a STOP by SMS and one by WhatsApp each count once in
// optgate_gateway_mo_total{outcome="keyword"} and once as received in
// optgate_gateway_messages_total of their channel.
func TestMOCoreCountsChannelsAlike(t *testing.T) {
	env := newWAEnv(t)
	if err := env.mo(handset, "STOP"); err != nil {
		t.Fatal(err)
	}
	if _, st, err := env.g.WhatsAppMock().Inbound(mockPhoneID, "+447700900456", "STOP"); err != nil || st != 200 {
		t.Fatalf("inbound: %d %v", st, err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		for _, c := range []struct {
			name, labels string
			want         float64
		}{
			{"optgate_gateway_mo_total", `outcome="keyword",tenant="acme"`, 2},
			{"optgate_gateway_messages_total", `channel="sms",direction="mo",outcome="received"`, 1},
			{"optgate_gateway_messages_total", `channel="whatsapp",direction="mo",outcome="received"`, 1},
		} {
			if got := metricValue(env, c.name, c.labels); got != c.want {
				return fmt.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		return nil
	})
}
