package gateway

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/whatsapp"
)

// Unit tests of the MT stages, each run alone on a Gateway built without
// New or Start (stageGateway): no listener, no SMSC, no HTTP.

const (
	stageNumber     = "+15145550199" // acme's
	stageBetaNumber = "+15145550111" // beta's
	stageTo         = "+15145550123"
)

const stageYAML = `
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, numbers: ["+15145550199"],
     whatsapp_templates: {promo: marketing, receipt: utility}}
  - {id: beta, brand: Beta, help_contact: help@beta.example, numbers: ["+15145550111"], sender_ids: [BETA]}
smscs: [{name: a, address: "127.0.0.1:1", system_id: x, password: y}]
routes: [{prefix: "+", smscs: [a]}]
`

// stageGateway is the least Gateway the MT stages need: the tenants and
// indexes of stageYAML, metrics registered nowhere, a discarding logger
// and, with withConsent, a real consent store in t.TempDir().
func stageGateway(t *testing.T, withConsent bool) *Gateway {
	t.Helper()
	cfg, err := ParseConfig([]byte(stageYAML), "stage.yaml", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.metrics = newMetrics(nil, g)
	g.addTenants(cfg)
	if withConsent {
		ct, err := ConsentTenants(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if g.consent, err = consent.Open(consent.Config{Dir: t.TempDir(), Tenants: ct, Logger: g.log}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.consent.Close() })
	}
	return g
}

// runStage runs m through stage mw alone: it reports the outcome m was
// finished with (if it was) and whether the stage handed m on instead.
func runStage(mw Middleware, m *Message) (o Outcome, finished, passed bool) {
	m.done = func(_ *Message, out Outcome) { o, finished = out, true }
	mw(HandlerFunc(func(context.Context, *Message) { passed = true })).Handle(context.Background(), m)
	return o, finished, passed
}

// stageMsg is an HTTP SMS from acme's number to stageTo.
func stageMsg(g *Gateway) *Message {
	return &Message{ID: "1", Tenant: g.tenants["acme"], Origin: OriginHTTP, Channel: ChannelSMS, From: stageNumber, To: stageTo,
		Text: "hello", Received: time.Now()}
}

// wantStage checks a stage's verdict: pass, or finished with kind,
// reason and status.
func wantStage(t *testing.T, name string, a *Account, o Outcome, finished, passed bool, kind OutcomeKind, reason status.Reason, st smpp.CommandStatus) {
	t.Helper()
	if kind == 0 {
		if !passed || finished {
			t.Errorf("%s: finished %v (%+v), want handed on", name, finished, o)
		}
		return
	}
	if got := smppStatus(a, o); passed || !finished || o.Kind != kind || o.Reason != reason || got != st {
		t.Errorf("%s: passed %v, outcome %v %q %v, want %v %q %v", name, passed, o.Kind, o.Reason, got, kind, reason, st)
	}
}

// stageCase is one message edit and the stage's verdict on it (kind 0:
// handed on).
type stageCase struct {
	name   string
	edit   func(m *Message)
	kind   OutcomeKind
	reason status.Reason
	st     smpp.CommandStatus
}

func TestStageValidate(t *testing.T) {
	g := stageGateway(t, false)
	var payload smpp.TLVs
	if err := payload.Set(smpp.TagMessagePayload, make([]byte, 2*consent.DefaultMaxLength+1)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []stageCase{
		{"valid", func(*Message) {}, 0, status.ReasonNone, 0},
		{"recipient not E.164", func(m *Message) { m.To = "5145550123" }, Rejected, ReasonInvalidNumber, smpp.StatusInvDstAdr},
		{"recipient too short", func(m *Message) { m.To = "+123456" }, Rejected, ReasonInvalidNumber, smpp.StatusInvDstAdr},
		{"no sender", func(m *Message) { m.From = "" }, Rejected, ReasonInvalidSender, smpp.StatusInvSrcAdr},
		{"another tenant's number", func(m *Message) { m.From = stageBetaNumber }, Rejected, ReasonInvalidSender, smpp.StatusInvSrcAdr},
		{"another tenant's sender id", func(m *Message) { m.From = "BETA" }, Rejected, ReasonInvalidSender, smpp.StatusInvSrcAdr},
		{"internal message skips the sender rule", func(m *Message) { m.From, m.Origin = stageBetaNumber, OriginInternal }, 0, status.ReasonNone, 0},
		{"whatsapp skips the SMS sender rule", func(m *Message) { m.From, m.Channel = "+15550000000", ChannelWhatsApp }, 0, status.ReasonNone, 0},
		{"short_message over 254", func(m *Message) { m.Body = make([]byte, smpp.MaxShortMessage+1) }, Rejected, ReasonTooLong, smpp.StatusInvMsgLen},
		{"message_payload over the tenant's maximum", func(m *Message) { m.Body, m.TLVs = []byte{}, payload.Bytes() }, Rejected, ReasonTooLong, smpp.StatusInvMsgLen},
		{"text not UTF-8", func(m *Message) { m.Text = "\xff\xfe" }, Rejected, ReasonBadEncoding, smpp.StatusInvMsgLen},
		{"empty text", func(m *Message) { m.Text = "" }, Rejected, ReasonBadEncoding, smpp.StatusInvMsgLen},
		{"empty text of a template", func(m *Message) { m.Text, m.WA = "", &WAContent{TemplateName: "receipt"} }, 0, status.ReasonNone, 0},
	} {
		m := stageMsg(g)
		tc.edit(m)
		o, fin, passed := runStage(g.validate, m)
		wantStage(t, tc.name, m.Account, o, fin, passed, tc.kind, tc.reason, tc.st)
	}
}

func TestStageScreen(t *testing.T) {
	g := stageGateway(t, true)
	res, err := g.consent.Inbound(context.Background(), consent.InboundMessage{Tenant: "acme", Channel: ChannelSMS,
		Sender: stageNumber, Recipient: stageTo, Text: "STOP", ReceivedAt: time.Now()})
	if err != nil || !res.Changed {
		t.Fatalf("STOP: %+v %v", res, err)
	}
	acct := &Account{cfg: AccountConfig{SystemID: "acme", Statuses: StatusOverrides{OptedOut: 0x4F1}}}
	for _, tc := range []stageCase{
		{"opted out", func(*Message) {}, Blocked, status.FromConsent(consent.ReasonOptedOut), smpp.StatusOptedOut},
		{"opted out, the account's status", func(m *Message) { m.Account = acct }, Blocked, status.FromConsent(consent.ReasonOptedOut), 0x4F1},
		{"another recipient", func(m *Message) { m.To = "+15145550124" }, 0, status.ReasonNone, 0},
		{"a confirmation goes to everyone", func(m *Message) { m.Origin = OriginInternal }, 0, status.ReasonNone, 0},
	} {
		m := stageMsg(g)
		tc.edit(m)
		o, fin, passed := runStage(g.screen, m)
		wantStage(t, tc.name, m.Account, o, fin, passed, tc.kind, tc.reason, tc.st)
	}
	// A store refusing writes (diskfault.go): the opted-out recipient is
	// still refused for good, anyone else for now.
	g.disk = &diskGuard{}
	g.disk.bad.Store(1)
	o, fin, passed := runStage(g.screen, stageMsg(g))
	wantStage(t, "opted out, store unhealthy", nil, o, fin, passed, Blocked, status.FromConsent(consent.ReasonOptedOut), smpp.StatusOptedOut)
	m := stageMsg(g)
	m.To = "+15145550124"
	o, fin, passed = runStage(g.screen, m)
	wantStage(t, "another recipient, store unhealthy", nil, o, fin, passed, Failed, ReasonStoreUnavailable, smpp.StatusXTAppn)
	// A store that cannot answer: fail closed.
	g.disk = nil
	g.consent.Close()
	m = stageMsg(g)
	m.To = "+15145550124"
	o, fin, passed = runStage(g.screen, m)
	wantStage(t, "consent store closed", nil, o, fin, passed, Failed, ReasonInternal, smpp.StatusXTAppn)
}

func TestStageFooter(t *testing.T) {
	g := stageGateway(t, true)
	bulk := stageMsg(g)
	bulk.Bulk = true
	o, fin, passed := runStage(g.footer, bulk)
	wantStage(t, "bulk text", nil, o, fin, passed, 0, status.ReasonNone, 0)
	if !strings.HasPrefix(bulk.Text, "hello\n") || len(bulk.Text) <= len("hello\n") {
		t.Errorf("bulk text: %q, want hello and the opt-out footer", bulk.Text)
	}
	for _, tc := range []struct {
		name string
		edit func(m *Message)
	}{
		{"not bulk", func(*Message) {}},
		{"relayed body", func(m *Message) { m.Body, m.DataCoding = []byte("hello"), 0 }},
		{"a part the platform split", func(m *Message) { m.Bulk, m.Body, m.ESMClass = true, []byte{5, 0, 3, 1, 2, 1, 'h'}, smpp.ESMClassUDHI }},
		{"whatsapp", func(m *Message) { m.Bulk, m.Channel = true, ChannelWhatsApp }},
		{"internal", func(m *Message) { m.Bulk, m.Origin = true, OriginInternal }},
	} {
		m := stageMsg(g)
		tc.edit(m)
		text, body := m.Text, string(m.Body)
		o, fin, passed := runStage(g.footer, m)
		wantStage(t, tc.name, m.Account, o, fin, passed, 0, status.ReasonNone, 0)
		if m.Text != text || string(m.Body) != body {
			t.Errorf("%s: changed to %q %q", tc.name, m.Text, m.Body)
		}
	}
	// A bulk body decoded, given its footer, and sent as text.
	m := stageMsg(g)
	m.Bulk, m.Text, m.Body, m.DataCoding = true, "", []byte("hi"), 0
	if _, _, passed := runStage(g.footer, m); !passed || m.Body != nil || !strings.HasPrefix(m.Text, "hi\n") {
		t.Errorf("bulk body: passed %v, body %q, text %q", passed, m.Body, m.Text)
	}
	long := stageMsg(g)
	long.Bulk, long.Text = true, strings.Repeat("a", consent.DefaultMaxLength)
	o, fin, passed = runStage(g.footer, long)
	wantStage(t, "bulk text with no room for its footer", nil, o, fin, passed, Rejected, ReasonTooLong, smpp.StatusInvMsgLen)
}

// waStageGateway adds a WhatsApp channel with one business number (acme's
// stageNumber, phone_number_id "pn1") and its window in a Badger store.
func waStageGateway(t *testing.T) *Gateway {
	t.Helper()
	g := stageGateway(t, true)
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	acme := g.tenants["acme"]
	n := &waNumber{cfg: WANumberConfig{PhoneNumberID: "pn1", Number: stageNumber, Tenant: "acme"}, tenant: acme}
	g.wa = &waChannel{g: g, numbers: map[string]*waNumber{"pn1": n}, byTenant: map[string]*waNumber{"acme": n},
		bySender: map[waSender]*waNumber{{"acme", stageNumber}: n}, window: whatsapp.NewWindow(db, g.log)}
	return g
}

func TestStageWhatsAppWindow(t *testing.T) {
	g := waStageGateway(t)
	wa := func(edit func(m *Message)) *Message {
		m := stageMsg(g)
		m.Channel = ChannelWhatsApp
		edit(m)
		return m
	}
	sms := stageMsg(g)
	o, fin, passed := runStage(g.waWindow, sms)
	wantStage(t, "SMS", nil, o, fin, passed, 0, status.ReasonNone, 0)
	o, fin, passed = runStage(g.waWindow, wa(func(m *Message) { m.From = "+15145550100" }))
	wantStage(t, "not the tenant's WhatsApp number", nil, o, fin, passed, Rejected, ReasonInvalidSender, smpp.StatusInvSrcAdr)
	o, fin, passed = runStage(g.waWindow, wa(func(*Message) {}))
	wantStage(t, "free-form, window closed", nil, o, fin, passed, Blocked, ReasonWindowClosed, smpp.StatusWhatsAppWindow)
	o, fin, passed = runStage(g.waWindow, wa(func(m *Message) { m.WA = &WAContent{TemplateName: "receipt", Language: "en"} }))
	wantStage(t, "template, window closed", nil, o, fin, passed, 0, status.ReasonNone, 0)
	promo := wa(func(m *Message) { m.WA = &WAContent{TemplateName: "promo", Language: "en"} })
	o, fin, passed = runStage(g.waWindow, promo)
	wantStage(t, "marketing template", nil, o, fin, passed, 0, status.ReasonNone, 0)
	if promo.Category != consent.CategoryMarketing {
		t.Errorf("a template configured as marketing goes as %v", promo.Category)
	}
	if err := g.wa.window.Record("pn1", strings.TrimPrefix(stageTo, "+"), time.Now()); err != nil {
		t.Fatal(err)
	}
	o, fin, passed = runStage(g.waWindow, wa(func(*Message) {}))
	wantStage(t, "free-form, window open", nil, o, fin, passed, 0, status.ReasonNone, 0)
}
