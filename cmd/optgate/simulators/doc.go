// Package simulators wires the test doubles the quick start runs on into
// a gateway: the SMSC simulator of smpp/smpptest (simulator.enabled) and
// the WhatsApp Graph API mock of whatsapp/whatsapptest
// (whatsapp_simulator.enabled).
//
// Its one job is Wire, which sets gateway.Options.StartSMSCSimulator and
// StartWhatsAppMock. It exists so that the gateway package takes the
// simulators through two small interfaces (gateway.SMSCSimulator,
// gateway.WhatsAppMock) and never imports a test double: cmd/optgate and
// the tests outside gateway import this package instead. It sits under
// cmd/optgate because wiring test doubles into a running gateway is the
// binary's business (only cmd/... and bench may import them), and it is
// a package of its own so that tests outside cmd (configs) can wire the
// same. (The gateway's own tests cannot import it: it imports gateway;
// they wire the same doubles in their helpers.)
package simulators
