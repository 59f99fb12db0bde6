package simulators

import (
	"log/slog"
	"net"
	"time"

	"github.com/optgate/optgate/gateway"
	"github.com/optgate/optgate/smpp/smpptest"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// Wire sets opt's simulator hooks to SMSC and WhatsApp.
func Wire(opt *gateway.Options) {
	opt.StartSMSCSimulator = SMSC
	opt.StartWhatsAppMock = WhatsApp
}

// SMSC starts the smpptest SMSC simulator on l: binds must use c's
// system_id and password; it sends receipts when c.Receipts and answers
// each submit after c.Latency.
func SMSC(l net.Listener, c gateway.SimulatorConfig, log *slog.Logger) (gateway.SMSCSimulator, error) {
	s := smpptest.NewUnstartedServer(smpptest.Config{SystemID: c.SystemID, Password: c.Password, Receipts: c.Receipts, Logger: log})
	if lat := c.Latency; lat > 0 {
		s.SetLatency(func() time.Duration { return lat })
	}
	if err := s.StartListener(l); err != nil {
		return nil, err
	}
	return s, nil
}

// WhatsApp starts the whatsapptest Graph API mock as c says.
func WhatsApp(c gateway.WhatsAppMockConfig) (gateway.WhatsAppMock, error) {
	m, err := whatsapptest.Listen(whatsapptest.Config{Token: c.Token, AppSecret: c.AppSecret, Addr: c.Addr, WebhookURL: c.WebhookURL,
		AutoStatuses: c.AutoStatuses, EnforceWindow: c.EnforceWindow, PhoneNumberIDs: c.PhoneNumberIDs, Templates: c.Templates})
	if err != nil {
		return nil, err
	}
	return m, nil
}
