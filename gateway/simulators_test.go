package gateway

import (
	"log/slog"
	"net"
	"time"

	"github.com/optgate/optgate/smpp/smpptest"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// withSimulators wires the built-in simulators into opt, as cmd/optgate
// does with cmd/optgate/simulators (which these tests cannot import: it
// imports gateway).
func withSimulators(opt *Options) {
	opt.StartSMSCSimulator = func(l net.Listener, c SimulatorConfig, log *slog.Logger) (SMSCSimulator, error) {
		var latency func() time.Duration
		if c.Latency > 0 {
			latency = func() time.Duration { return c.Latency }
		}
		s := smpptest.NewUnstartedServer(smpptest.Config{SystemID: c.SystemID, Password: c.Password, Receipts: c.Receipts,
			Latency: latency, Logger: log})
		return s, s.StartListener(l)
	}
	opt.StartWhatsAppMock = func(c WhatsAppMockConfig) (WhatsAppMock, error) {
		return whatsapptest.Listen(whatsapptest.Config{Token: c.Token, AppSecret: c.AppSecret, Addr: c.Addr, WebhookURL: c.WebhookURL,
			AutoStatuses: c.AutoStatuses, EnforceWindow: c.EnforceWindow, PhoneNumberIDs: c.PhoneNumberIDs, Templates: c.Templates})
	}
}

// WhatsAppMock returns the built-in Graph API mock withSimulators started,
// if enabled (a test-only accessor: the gateway itself knows the mock only
// as a WhatsAppMock).
func (g *Gateway) WhatsAppMock() *whatsapptest.Server {
	if g.wa == nil {
		return nil
	}
	m, _ := g.wa.mock.(*whatsapptest.Server)
	return m
}
