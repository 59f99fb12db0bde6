package simulators

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/optgate/optgate/gateway"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// Wire sets both hooks; the SMSC simulator serves on the listener it is
// given and binds only with the configured credentials.
func TestWireStartsSimulators(t *testing.T) {
	var opt gateway.Options
	Wire(&opt)
	if opt.StartSMSCSimulator == nil || opt.StartWhatsAppMock == nil {
		t.Fatal("Wire left a hook unset")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sim, err := opt.StartSMSCSimulator(ln, gateway.SimulatorConfig{SystemID: "optgate", Password: "simpw"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	if sim.Addr() != ln.Addr().String() {
		t.Fatalf("simulator on %s, want the listener's %s", sim.Addr(), ln.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	esme, err := smpptest.NewESME(ctx, smpp.ClientConfig{Addr: sim.Addr(), SystemID: "optgate", Password: "simpw"})
	if err != nil {
		t.Fatalf("bind: %v", err)
	}
	esme.Close()
	// Last: refused binds may count against the address.
	bctx, bcancel := context.WithTimeout(context.Background(), time.Second)
	defer bcancel()
	if bad, err := smpptest.NewESME(bctx, smpp.ClientConfig{Addr: sim.Addr(), SystemID: "optgate", Password: "wrong"}); err == nil {
		bad.Close()
		t.Fatal("bound with a wrong password")
	}

	mock, err := opt.StartWhatsAppMock(gateway.WhatsAppMockConfig{Token: "tok", AppSecret: "secret", PhoneNumberIDs: []string{"1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer mock.Close()
	resp, err := http.Get(mock.URL() + "/v21.0/1/messages")
	if err != nil {
		t.Fatalf("mock at %s: %v", mock.URL(), err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatalf("an unauthenticated GET of the mock answered 200")
	}
}
