package gateway

import (
	"context"
	"fmt"
	"net"
)

// SMSCSimulator is the built-in SMSC simulator (simulator.enabled) as the
// gateway uses it: its address (MOs from a link to it are marked
// simulated), fake handset MOs for POST /v1/simulator/mo, and Close at
// shutdown. The gateway does not import the simulator: cmd/optgate wires
// smpp/smpptest in through Options.StartSMSCSimulator, so no test double
// is linked into the gateway package.
type SMSCSimulator interface {
	Addr() string
	SendMO(ctx context.Context, systemID, from, to, text string) error
	Close()
}

// WhatsAppMock is the built-in WhatsApp Graph API mock
// (whatsapp_simulator.enabled) as the gateway uses it: the base URL its
// clients send to, and Close at shutdown. cmd/optgate wires
// whatsapp/whatsapptest in through Options.StartWhatsAppMock.
type WhatsAppMock interface {
	URL() string
	Close()
}

// WhatsAppMockConfig is what the gateway asks of its WhatsApp mock.
type WhatsAppMockConfig struct {
	Addr           string   // whatsapp_simulator.listen ("" for a free loopback port)
	Token          string   // the bearer token it accepts
	AppSecret      string   // signs the webhooks it posts
	WebhookURL     string   // the gateway's webhook receiver
	PhoneNumberIDs []string // the business numbers it knows
	Templates      []string // approved template names; nil approves every name
	AutoStatuses   []string // statuses posted for every accepted message, in order
	EnforceWindow  bool     // refuse free-form messages outside the 24-hour window
}

// startSMSCSimulator starts the built-in SMSC simulator, when enabled,
// on Options.SimulatorListener or on simulator.listen.
func (g *Gateway) startSMSCSimulator() error {
	if !g.cfg.Simulator.Enabled {
		return nil
	}
	if g.startSim == nil {
		return fmt.Errorf("simulator.enabled: %w", errNoSimulator)
	}
	ln := g.simLn
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", g.cfg.Simulator.Listen); err != nil {
			return fmt.Errorf("simulator: listen %s: %w", g.cfg.Simulator.Listen, err)
		}
	}
	sim, err := g.startSim(ln, g.cfg.Simulator, g.log.With("component", "simulator"))
	if err != nil {
		ln.Close()
		return fmt.Errorf("simulator: %w", err)
	}
	g.sim = sim
	return nil
}
