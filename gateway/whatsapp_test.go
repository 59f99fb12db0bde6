package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/testutil"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

func newWAEnv(t *testing.T) *testEnv {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := configYAML(dir, smsc.Addr(), "", "") + "whatsapp_simulator: {enabled: true}\n"
	return startEnv(t, y, smsc, dir)
}

// waRequestsTo returns what the mock Graph API received for a recipient.
func waRequestsTo(env *testEnv, to string) []whatsapptest.Request {
	var out []whatsapptest.Request
	for _, r := range env.g.WhatsAppMock().Requests() {
		if strings.TrimPrefix(r.To, "+") == strings.TrimPrefix(to, "+") && r.Status == 200 {
			out = append(out, r)
		}
	}
	return out
}

// STOP over WhatsApp: the confirmation goes back over WhatsApp, and the
// next outbound message is blocked.
func TestE2EWhatsAppStop(t *testing.T) {
	env := newWAEnv(t)
	mock := env.g.WhatsAppMock()
	user := "+447700900123"
	// Outside the window a free-form message is refused before Meta is called.
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","text":"hello","channel":"whatsapp"}`)
	if code != 403 || errCode(m) != "whatsapp_window_closed" {
		t.Fatalf("outside window: %d %v", code, m)
	}
	if n := len(waRequestsTo(env, user)); n != 0 {
		t.Fatalf("Meta was called %d times outside the window", n)
	}
	// A template goes out regardless.
	code, m = env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","channel":"whatsapp","template":{"name":"interview_reminder","language":"en_US","params":["Tuesday"]}}`)
	if code != 202 {
		t.Fatalf("template: %d %v", code, m)
	}
	// The user writes: the window opens, a free-form message goes.
	if _, st, err := mock.Inbound(mockPhoneID, user, "Hi, is the job still open?"); err != nil || st != 200 {
		t.Fatalf("inbound: %d %v", st, err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","text":"Yes it is","channel":"whatsapp"}`)
		if code != 202 {
			return fmt.Errorf("in window: %d %v", code, m)
		}
		return nil
	})
	// STOP over WhatsApp.
	if _, st, err := mock.Inbound(mockPhoneID, user, "STOP"); err != nil || st != 200 {
		t.Fatalf("inbound STOP: %d %v", st, err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		for _, r := range waRequestsTo(env, user) {
			if r.Type == "text" && strings.Contains(string(r.Body), "unsubscribed") {
				return nil
			}
		}
		return fmt.Errorf("no confirmation over WhatsApp yet")
	})
	code, m = env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","text":"One more thing","channel":"whatsapp"}`)
	if code != 403 || errCode(m) != "recipient_opted_out" {
		t.Fatalf("after STOP: %d %v", code, m)
	}
}

// "Stop promotions" blocks marketing templates only.
func TestE2EWhatsAppStopPromotions(t *testing.T) {
	env := newWAEnv(t)
	mock := env.g.WhatsAppMock()
	user := "447700900456"
	body := whatsapptest.InboundWebhook(whatsapptest.Meta{PhoneNumberID: mockPhoneID},
		whatsapptest.Button(user, "wamid.BTN1", "stop", "Stop promotions", "wamid.ctx", time.Now()))
	if st, err := mock.PostWebhook(body); err != nil || st != 200 {
		t.Fatalf("button webhook: %d %v", st, err)
	}
	send := func(category string) (int, map[string]any) {
		return env.http("POST", "/v1/messages", acmeToken, `{"to":"+`+user+`","channel":"whatsapp","category":"`+category+`","template":{"name":"t","language":"en_US"}}`)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		code, m := send("marketing")
		if code == 403 && errCode(m) == "marketing_opt_out" {
			return nil
		}
		return fmt.Errorf("marketing template: %d %v", code, m)
	})
	if code, m := send("utility"); code != 202 {
		t.Fatalf("utility template after stop promotions: %d %v", code, m)
	}
}

// Webhook verification handshake and signatures on the gateway's server.
func TestWhatsAppWebhookVerifyAndSignature(t *testing.T) {
	env := newWAEnv(t)
	code, m := env.http("GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token="+mockVerifyToken+"&hub.challenge=1158201444", "", "")
	if code != 200 || m["raw"] != "1158201444" {
		t.Fatalf("verification: %d %v (the challenge must come back raw)", code, m)
	}
	if code, _ := env.http("GET", "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1", "", ""); code != 403 {
		t.Fatalf("wrong verify token: %d", code)
	}
	// Unsigned and wrongly signed STOPs: 401, and nothing is processed.
	stopper := "447700900789"
	body := whatsapptest.InboundText(whatsapptest.Meta{PhoneNumberID: mockPhoneID}, stopper, "wamid.X", "STOP", time.Now())
	code, _ = env.http("POST", "/webhooks/whatsapp", "", string(body)) // unsigned
	if code != 401 {
		t.Fatalf("unsigned webhook: %d", code)
	}
	url := "http://" + env.g.HTTPAddr() + "/webhooks/whatsapp"
	if st, err := whatsapptest.Post(nil, url, "not-the-app-secret", body); err != nil || st != 401 {
		t.Fatalf("wrongly signed webhook: %d %v", st, err)
	}
	if got := metricValue(env, "optgate_whatsapp_webhook_requests_total", `result="bad_signature"`); got != 2 {
		t.Fatalf("bad signatures counted %v, want 2", got)
	}
	// A signed message after them is processed, and it is the only one.
	before := metricValue(env, "optgate_whatsapp_webhook_events_total", "")
	if _, st, err := env.g.WhatsAppMock().Inbound(mockPhoneID, "+447700900790", "Hello"); err != nil || st != 200 {
		t.Fatalf("signed inbound: %d %v", st, err)
	}
	waitEvents(t, env, "message", before, 1)
	if got := metricValue(env, "optgate_whatsapp_webhook_events_total", ""); got != before+1 {
		t.Fatalf("%v events handled, want %v: a refused body was processed", got, before+1)
	}
	hist, err := env.g.Consent().History("acme", ChannelWhatsApp, "+"+stopper, 0)
	if err != nil || len(hist) != 0 {
		t.Fatalf("a refused STOP left consent evidence: %+v %v", hist, err)
	}
	code, m = env.http("POST", "/v1/messages", acmeToken, `{"to":"+`+stopper+`","channel":"whatsapp","template":{"name":"t","language":"en_US"}}`)
	if code != 202 {
		t.Fatalf("a refused STOP blocked the recipient: %d %v", code, m)
	}
	if ch, _ := env.g.lastChannel(env.g.tenants["acme"], "+"+stopper); ch != "" {
		t.Fatalf("a refused body set the last channel: %q", ch)
	}
}

// Without an explicit channel: the channel the recipient last wrote on
// wins; a recipient in the SMS bank's country who never wrote gets SMS,
// one abroad gets WhatsApp.
func TestChannelChoice(t *testing.T) {
	env := newWAEnv(t)
	mock := env.g.WhatsAppMock()
	send := func(to string) (int, map[string]any) {
		return env.http("POST", "/v1/messages", acmeToken, `{"to":"`+to+`","text":"Interview at 10:00"}`)
	}
	if code, m := send("+15145550177"); code != 202 || m["channel"] != "sms" {
		t.Fatalf("same country as our SMS number: %d %v", code, m)
	}
	// Abroad: WhatsApp is chosen, and with no open window a free-form text
	// is refused before Meta is called.
	if code, m := send("+447700900999"); code != 403 || errCode(m) != "whatsapp_window_closed" {
		t.Fatalf("abroad: %d %v", code, m)
	}
	// A Canadian who writes to us on WhatsApp is answered on WhatsApp.
	if _, st, err := mock.Inbound(mockPhoneID, "+15145550188", "Hello"); err != nil || st != 200 {
		t.Fatalf("inbound: %d %v", st, err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		if code, m := send("+15145550188"); code != 202 || m["channel"] != "whatsapp" {
			return fmt.Errorf("after a WhatsApp message: %d %v", code, m)
		}
		return nil
	})
}

// newWAEnvWith starts a gateway with the WhatsApp mock; tenant is added to
// the acme tenant's fields, account to the accounts, extra at the top level.
func newWAEnvWith(t *testing.T, tenant, account, extra string) *testEnv {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := configYAML(dir, smsc.Addr(), tenant, account) + "whatsapp_simulator: {enabled: true}\n" + extra
	return startEnv(t, y, smsc, dir)
}

// windowClosed reports the API's refusal of a free-form message outside
// the 24-hour window.
func windowClosed(code int, m map[string]any) bool {
	return code >= 400 && code < 500 && errCode(m) == "whatsapp_window_closed"
}

// metricValue sums the samples of a metric whose label text contains
// labels, from the gateway's /metrics.
func metricValue(env *testEnv, name, labels string) float64 {
	env.t.Helper()
	_, m := env.http("GET", "/metrics", "", "")
	raw, _ := m["raw"].(string)
	sum := 0.0
	for _, line := range strings.Split(raw, "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || rest[0] != '{' && rest[0] != ' ' || !strings.Contains(rest, labels) {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(rest[strings.LastIndexByte(rest, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// waitProcessed waits until the receiver handled n more events than before.
func waitEvents(t *testing.T, env *testEnv, kind string, before float64, n int) {
	t.Helper()
	testutil.CheckFor(t, 20*time.Second, func() error {
		if got := metricValue(env, "optgate_whatsapp_webhook_events_total", `kind="`+kind+`"`); got < before+float64(n) {
			return fmt.Errorf("%v %s events handled, want %v", got, kind, before+float64(n))
		}
		return nil
	})
}

// Over SMPP, a tenant with WhatsApp gets the same channel choice as over
// the API: a recipient who last wrote on WhatsApp is sent to on WhatsApp
// even in the SMS bank's country, and when that window has closed the
// submit is refused with 0x00000404 (or the account's override) before Meta
// is called. A recipient who never wrote there still gets SMS.
func TestE2EWhatsAppChannelOverSMPP(t *testing.T) {
	env := newWAEnvWith(t, "", "  - {system_id: acme2, password: acmepw2, tenant: acme, statuses: {whatsapp_window_closed: 0x00000460}}\n"+
		"  - {system_id: acmesms, password: acmepw3, tenant: acme, channel: sms}\n", "")
	mock := env.g.WhatsAppMock()
	tenant := env.g.tenants["acme"]
	stale, fresh, smsOnly := "+15145550177", "+15145550178", "+15145550179"

	// stale wrote on WhatsApp 25 hours ago: its window is closed.
	old := whatsapptest.InboundWebhook(whatsapptest.Meta{PhoneNumberID: mockPhoneID},
		whatsapptest.Text(stale[1:], "wamid.STALE1", "Hello", time.Now().Add(-25*time.Hour)))
	if st, err := mock.PostWebhook(old); err != nil || st != 200 {
		t.Fatalf("old inbound: %d %v", st, err)
	}
	if _, st, err := mock.Inbound(mockPhoneID, fresh, "Hi there"); err != nil || st != 200 {
		t.Fatalf("inbound: %d %v", st, err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		for _, n := range []string{stale, fresh} {
			if ch, _ := env.g.lastChannel(tenant, n); ch != ChannelWhatsApp {
				return fmt.Errorf("%s: last channel %q", n, ch)
			}
		}
		return nil
	})

	_, err := env.submit(stale, "Your interview is at 10:00")
	if st := smpp.StatusOf(err); st != smpp.StatusWhatsAppWindow {
		t.Fatalf("submit to a closed window: %v (%s), want 0x404", err, st)
	}
	if n := len(waRequestsTo(env, stale)); n != 0 {
		t.Fatalf("Meta was called %d times for a closed window", n)
	}
	// The account's status override applies.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	esme2 := env.bindAs("acme2", "acmepw2")
	enc, dc := encodeText("Your interview is at 10:00")
	_, err = esme2.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
		Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(stale[1:])}, DataCoding: dc, ShortMessage: enc}})
	if st := smpp.StatusOf(err); st != 0x460 {
		t.Fatalf("override: %v (%s), want 0x460", err, st)
	}

	// In the window: sent over WhatsApp, decoded, from the business number.
	if _, err := env.submit(fresh, "Your interview is at 10:00 ✓"); err != nil {
		t.Fatalf("submit in the window: %v", err)
	}
	reqs := waRequestsTo(env, fresh)
	if len(reqs) != 1 || reqs[0].Type != "text" || reqs[0].PhoneNumberID != mockPhoneID {
		t.Fatalf("WhatsApp requests for %s: %+v", fresh, reqs)
	}
	var body struct {
		Text struct{ Body string } `json:"text"`
	}
	if err := json.Unmarshal(reqs[0].Body, &body); err != nil || body.Text.Body != "Your interview is at 10:00 ✓" {
		t.Fatalf("text sent: %s (%v)", reqs[0].Body, err)
	}
	// Never wrote on WhatsApp, in the SMS bank's country: SMS.
	if _, err := env.submit(smsOnly, "Your interview is at 10:00"); err != nil {
		t.Fatalf("SMS submit: %v", err)
	}
	if _, text := env.nextSubmitTo(smsOnly); text != "Your interview is at 10:00" {
		t.Fatalf("SMS text %q", text)
	}
	// Never wrote on WhatsApp, in a country outside the SMS bank: the number
	// bank rule would pick WhatsApp, where a free-form text could only be
	// refused (no window, no template over SMPP), so SMPP keeps it on SMS.
	const foreign = "+447911123456"
	if _, err := env.submit(foreign, "Your interview is at 11:00"); err != nil {
		t.Fatalf("submit to a foreign number that never wrote: %v", err)
	}
	if _, text := env.nextSubmitTo(foreign); text != "Your interview is at 11:00" {
		t.Fatalf("SMS text %q", text)
	}
	// An account with channel: sms stays on SMS even for a recipient whose
	// window is open.
	esmeSMS := env.bindAs("acmesms", "acmepw3")
	enc, dc = encodeText("Over SMS please")
	if _, err := esmeSMS.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
		Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(fresh[1:])}, DataCoding: dc, ShortMessage: enc}}); err != nil {
		t.Fatalf("channel: sms submit: %v", err)
	}
	if _, text := env.nextSubmitTo(fresh); text != "Over SMS please" {
		t.Fatalf("SMS text %q", text)
	}
	if n := len(waRequestsTo(env, fresh)); n != 1 {
		t.Fatalf("%d WhatsApp requests for %s, want the first one only", n, fresh)
	}
}

const secondPhoneID = "100000000000002"

// A tenant with two WhatsApp numbers: a STOP to the second one is
// confirmed from the second one, and each number has its own window.
func TestE2EWhatsAppTwoNumbers(t *testing.T) {
	env := newWAEnvWith(t, "", "", `whatsapp:
  numbers:
    - {phone_number_id: "`+mockPhoneID+`", number: "`+ourNumber+`", tenant: acme}
    - {phone_number_id: "`+secondPhoneID+`", number: "+447700900001", tenant: acme}
`)
	mock := env.g.WhatsAppMock()
	user := "+447700900222"
	if _, st, err := mock.Inbound(secondPhoneID, user, "Hello"); err != nil || st != 200 {
		t.Fatalf("inbound: %d %v", st, err)
	}
	send := func(from string) (int, map[string]any) {
		return env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","from":"`+from+`","text":"Thanks","channel":"whatsapp"}`)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		if code, m := send("+447700900001"); code != 202 {
			return fmt.Errorf("from the number the user wrote to: %d %v", code, m)
		}
		return nil
	})
	reqs := waRequestsTo(env, user)
	if len(reqs) != 1 || reqs[0].PhoneNumberID != secondPhoneID {
		t.Fatalf("sent from %+v, want phone-number id %s", reqs, secondPhoneID)
	}
	// The first number's window with this user is closed.
	if code, m := send(ourNumber); !windowClosed(code, m) {
		t.Fatalf("from the other number: %d %v", code, m)
	}
	if code, m := send("+15145550100"); code != 400 || errCode(m) != ReasonInvalidSender.String() {
		t.Fatalf("from a number that is not the tenant's: %d %v", code, m)
	}
	// STOP to the second number: the confirmation comes from the second number.
	if _, st, err := mock.Inbound(secondPhoneID, user, "STOP"); err != nil || st != 200 {
		t.Fatalf("inbound STOP: %d %v", st, err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		for _, r := range waRequestsTo(env, user) {
			if r.Type == "text" && strings.Contains(string(r.Body), "unsubscribed") {
				if r.PhoneNumberID != secondPhoneID {
					return fmt.Errorf("confirmation from %s, want %s", r.PhoneNumberID, secondPhoneID)
				}
				return nil
			}
		}
		return fmt.Errorf("no confirmation yet")
	})
	// An SMPP submit to the user goes to WhatsApp from the number the user wrote to.
	before := len(waRequestsTo(env, user))
	_, err := env.submit(user, "One more thing")
	if st := smpp.StatusOf(err); st != smpp.StatusOptedOut {
		t.Fatalf("SMPP submit after STOP: %v (%s)", err, st)
	}
	if n := len(waRequestsTo(env, user)); n != before {
		t.Fatalf("Meta called for an opted-out recipient")
	}
}

// A template configured as marketing is screened as marketing even when
// the request does not say so; a utility template still goes; a template
// not configured takes the request's category (and the mock, which knows
// only the configured templates, refuses it with 132001).
func TestE2EWhatsAppTemplateCategories(t *testing.T) {
	env := newWAEnvWith(t, "    whatsapp_templates: {spring_sale: marketing, interview_update: utility, login_code: authentication}\n", "", "")
	mock := env.g.WhatsAppMock()
	user := "447700900457"
	body := whatsapptest.InboundWebhook(whatsapptest.Meta{PhoneNumberID: mockPhoneID},
		whatsapptest.Button(user, "wamid.BTN2", "Stop promotions", "Stop promotions", "wamid.ctx", time.Now()))
	if st, err := mock.PostWebhook(body); err != nil || st != 200 {
		t.Fatalf("button webhook: %d %v", st, err)
	}
	send := func(name, category string) (int, map[string]any) {
		cat := ""
		if category != "" {
			cat = `"category":"` + category + `",`
		}
		return env.http("POST", "/v1/messages", acmeToken, `{"to":"+`+user+`","channel":"whatsapp",`+cat+`"template":{"name":"`+name+`","language":"en_US"}}`)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		if code, m := send("spring_sale", ""); code != 403 || errCode(m) != "marketing_opt_out" {
			return fmt.Errorf("marketing template without a category: %d %v", code, m)
		}
		return nil
	})
	if code, m := send("spring_sale", "utility"); code != 403 || errCode(m) != "marketing_opt_out" {
		t.Fatalf("marketing template sent as utility: %d %v", code, m)
	}
	if code, m := send("interview_update", ""); code != 202 {
		t.Fatalf("utility template: %d %v", code, m)
	}
	if code, m := send("login_code", ""); code != 202 {
		t.Fatalf("authentication template: %d %v", code, m)
	}
	if code, m := send("not_configured", "marketing"); code != 403 || errCode(m) != "marketing_opt_out" {
		t.Fatalf("unconfigured template sent as marketing: %d %v", code, m)
	}
	code, m := send("not_configured", "")
	if code != 502 || !strings.Contains(fmt.Sprint(m), "132001") {
		t.Fatalf("unconfigured template as transactional: %d %v (want Meta's 132001)", code, m)
	}
	// The "Stop promotions" tap counts as the user's last channel.
	if ch, _ := env.g.lastChannel(env.g.tenants["acme"], "+"+user); ch != ChannelWhatsApp {
		t.Fatalf("last channel after the button: %q", ch)
	}
}

// Template header, body (positional and named, in name order) and button
// parameters reach Meta as components.
func TestE2EWhatsAppTemplateComponents(t *testing.T) {
	env := newWAEnv(t)
	user := "+447700900458"
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","channel":"whatsapp","template":{"name":"order_update","language":"en_US",
		"header_media":{"type":"image","id":"media-1"},"params":["A-1001"],"named_params":{"zeta":"z","alpha":"a","mid":"m"},
		"buttons":[{"index":0,"payload":"keep"},{"index":1,"sub_type":"url","text":"A-1001"}]}}`)
	if code != 202 {
		t.Fatalf("template: %d %v", code, m)
	}
	reqs := waRequestsTo(env, user)
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	var sent struct {
		Template struct {
			Components []struct {
				Type       string  `json:"type"`
				SubType    string  `json:"sub_type"`
				Index      *string `json:"index"`
				Parameters []struct {
					Type  string `json:"type"`
					Name  string `json:"parameter_name"`
					Text  string `json:"text"`
					Pay   string `json:"payload"`
					Image *struct {
						ID string `json:"id"`
					} `json:"image"`
				} `json:"parameters"`
			} `json:"components"`
		} `json:"template"`
	}
	if err := json.Unmarshal(reqs[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	c := sent.Template.Components
	if len(c) != 4 || c[0].Type != "header" || c[0].Parameters[0].Image == nil || c[0].Parameters[0].Image.ID != "media-1" {
		t.Fatalf("header: %s", reqs[0].Body)
	}
	var names []string
	for _, p := range c[1].Parameters {
		names = append(names, p.Name+"="+p.Text)
	}
	if c[1].Type != "body" || strings.Join(names, ",") != "=A-1001,alpha=a,mid=m,zeta=z" {
		t.Fatalf("body parameters %v", names)
	}
	if c[2].Type != "button" || c[2].SubType != "quick_reply" || *c[2].Index != "0" || c[2].Parameters[0].Pay != "keep" ||
		c[3].SubType != "url" || *c[3].Index != "1" || c[3].Parameters[0].Text != "A-1001" {
		t.Fatalf("buttons: %s", reqs[0].Body)
	}
	// A media header without media is refused before Meta.
	code, m = env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","channel":"whatsapp","template":{"name":"order_update","language":"en_US",
		"header_media":{"type":"image"}}}`)
	if code != 400 || errCode(m) != ReasonInvalidTemplate.String() {
		t.Fatalf("header without media: %d %v", code, m)
	}
}

// WhatsApp statuses arriving out of order never move a message's state
// back: read stays read when delivered and sent come after it.
func TestE2EWhatsAppStatusesOutOfOrder(t *testing.T) {
	env := newWAEnv(t)
	mock := env.g.WhatsAppMock()
	user := "+447700900459"
	before := metricValue(env, "optgate_whatsapp_webhook_events_total", `kind="status"`)
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","channel":"whatsapp","template":{"name":"order_update","language":"en_US"}}`)
	if code != 202 {
		t.Fatalf("template: %d %v", code, m)
	}
	id, _ := m["id"].(string)
	waitEvents(t, env, "status", before, 2) // the mock's own sent and delivered
	wamid := waRequestsTo(env, user)[0].WamID
	opaque := sentOpaque(t, waRequestsTo(env, user)[0])
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	now := time.Now()
	for _, st := range []string{"read", "delivered", "sent"} {
		body := whatsapptest.StatusWebhook(meta, whatsapptest.Status{ID: wamid, Status: st, RecipientID: user[1:], BizOpaque: opaque, Timestamp: now})
		if code, err := mock.PostWebhook(body); err != nil || code != 200 {
			t.Fatalf("status %s: %d %v", st, code, err)
		}
	}
	// sent and delivered repeat the mock's (dropped as duplicates): one more event.
	waitEvents(t, env, "status", before, 3)
	if code, m := env.http("GET", "/v1/messages/"+id, acmeToken, ""); code != 200 || m["state"] != "read" {
		t.Fatalf("state after read, delivered, sent: %d %v", code, m)
	}
}

// Marketing stop and resume take the time of the event, and an older one
// arriving after a newer one does not override it.
func TestE2EWhatsAppPreferenceOrder(t *testing.T) {
	env := newWAEnv(t)
	mock := env.g.WhatsAppMock()
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	user := "447700900460"
	marketing := func() (int, map[string]any) {
		return env.http("POST", "/v1/messages", acmeToken, `{"to":"+`+user+`","channel":"whatsapp","category":"marketing","template":{"name":"promo","language":"en_US"}}`)
	}
	pref := func(value string, at time.Time) {
		t.Helper()
		before := metricValue(env, "optgate_whatsapp_webhook_events_total", `kind="preference"`)
		if code, err := mock.PostWebhook(whatsapptest.UserPreference(meta, user, value, at)); err != nil || code != 200 {
			t.Fatalf("user_preferences %s: %d %v", value, code, err)
		}
		waitEvents(t, env, "preference", before, 1)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	// stop, then resume: allowed again.
	pref("stop", t0)
	if code, m := marketing(); code != 403 || errCode(m) != "marketing_opt_out" {
		t.Fatalf("after stop: %d %v", code, m)
	}
	pref("resume", t0.Add(time.Minute))
	if code, m := marketing(); code != 202 {
		t.Fatalf("after resume: %d %v", code, m)
	}
	// A stop older than the resume, delivered late, changes nothing.
	pref("stop", t0.Add(30*time.Second))
	if code, m := marketing(); code != 202 {
		t.Fatalf("after a late, older stop: %d %v", code, m)
	}
	// A newer stop does.
	pref("stop", t0.Add(2*time.Minute))
	if code, m := marketing(); code != 403 || errCode(m) != "marketing_opt_out" {
		t.Fatalf("after a newer stop: %d %v", code, m)
	}
	// The evidence carries the events' own times.
	hist, err := env.g.Consent().History("acme", ChannelWhatsApp, "+"+user, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for _, e := range hist {
		seen[e.Received.Unix()] = true
	}
	for _, at := range []time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Minute)} {
		if !seen[at.Unix()] {
			t.Fatalf("no evidence received at %v: %+v", at, hist)
		}
	}
	if seen[t0.Add(30*time.Second).Unix()] {
		t.Fatalf("the late, older stop was recorded: %+v", hist)
	}
}

// A 131047 failure stamped before the user's last message does not close
// the window the user reopened.
func TestE2EWhatsAppLateWindowClose(t *testing.T) {
	env := newWAEnv(t)
	mock := env.g.WhatsAppMock()
	user := "+447700900461"
	before := metricValue(env, "optgate_whatsapp_webhook_events_total", `kind="message"`)
	if _, st, err := mock.Inbound(mockPhoneID, user, "Hello again"); err != nil || st != 200 {
		t.Fatalf("inbound: %d %v", st, err)
	}
	waitEvents(t, env, "message", before, 1)
	before = metricValue(env, "optgate_whatsapp_webhook_events_total", `kind="status"`)
	late := whatsapptest.StatusWebhook(whatsapptest.Meta{PhoneNumberID: mockPhoneID}, whatsapptest.Status{ID: "wamid.OLD1",
		Status: "failed", RecipientID: user[1:], ErrorCode: 131047, Timestamp: time.Now().Add(-time.Hour)})
	if st, err := mock.PostWebhook(late); err != nil || st != 200 {
		t.Fatalf("late status: %d %v", st, err)
	}
	waitEvents(t, env, "status", before, 1)
	if code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","text":"Still there?","channel":"whatsapp"}`); code != 202 {
		t.Fatalf("after a late 131047: %d %v", code, m)
	}
	// A 131047 newer than the user's message closes it.
	before = metricValue(env, "optgate_whatsapp_webhook_events_total", `kind="status"`)
	fresh := whatsapptest.StatusWebhook(whatsapptest.Meta{PhoneNumberID: mockPhoneID}, whatsapptest.Status{ID: "wamid.NEW1",
		Status: "failed", RecipientID: user[1:], ErrorCode: 131047, Timestamp: time.Now().Add(time.Second)})
	if st, err := mock.PostWebhook(fresh); err != nil || st != 200 {
		t.Fatalf("status: %d %v", st, err)
	}
	waitEvents(t, env, "status", before, 1)
	// The event is counted when its handler returns; the receiver records
	// the closed window just after, in its own commit: poll for it.
	testutil.CheckFor(t, 20*time.Second, func() error {
		if code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","text":"Still there?","channel":"whatsapp"}`); !windowClosed(code, m) {
			return fmt.Errorf("after a 131047: %d %v", code, m)
		}
		return nil
	})
}

// A webhook body left in the spool by a crash is replayed at start-up,
// after the WhatsApp clients exist: the STOP it carries is confirmed over
// WhatsApp (and, under -race, nothing races with the start-up).
func TestE2EWhatsAppSpoolReplayAtStart(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	user := "447700900462"
	db, err := badger.Open(badger.DefaultOptions(filepath.Join(dir, "gateway")).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	body := whatsapptest.InboundText(whatsapptest.Meta{PhoneNumberID: mockPhoneID}, user, "wamid.SPOOLED1", "STOP", time.Now())
	key := append([]byte("wa/spool/"), 0, 0, 0, 0, 0, 0, 0, 1) // the receiver's spool layout
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key, body) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	env := startEnv(t, configYAML(dir, smsc.Addr(), "", "")+"whatsapp_simulator: {enabled: true}\n", smsc, dir)
	// The mock never saw the user's message, so it may refuse the reply
	// with 131047; what matters is that the reply reached it.
	testutil.CheckFor(t, 20*time.Second, func() error {
		for _, r := range env.g.WhatsAppMock().Requests() {
			if strings.TrimPrefix(r.To, "+") == user && r.Type == "text" && strings.Contains(string(r.Body), "unsubscribed") {
				return nil
			}
		}
		return fmt.Errorf("no confirmation of the spooled STOP")
	})
	if code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"+`+user+`","channel":"whatsapp","template":{"name":"t","language":"en_US"}}`); code != 403 {
		t.Fatalf("after the spooled STOP: %d %v", code, m)
	}
}

// Meta's failures seen through the gateway's API.
func TestE2EWhatsAppMetaFailures(t *testing.T) {
	// A timeout well above a loaded machine's answer time and below the
	// held answer's 2 s: only that one may time out, or the counts differ.
	env := newWAEnvWith(t, "", "", "whatsapp: {timeout: 1s}\n")
	mock := env.g.WhatsAppMock()
	template := func(to, category string) (int, map[string]any) {
		return env.http("POST", "/v1/messages", acmeToken, `{"to":"`+to+`","channel":"whatsapp","category":"`+category+
			`","template":{"name":"order_update","language":"en_US"}}`)
	}
	count := func(to string) (all, ok int) {
		for _, r := range mock.Requests() {
			if strings.TrimPrefix(r.To, "+") == strings.TrimPrefix(to, "+") || strings.Contains(string(r.Body), to[1:]) {
				all++
				if r.Status == 200 {
					ok++
				}
			}
		}
		return all, ok
	}
	t.Run("500 then success", func(t *testing.T) {
		to := "+447700900470"
		mock.FailNext(1, whatsapptest.Failure{RawStatus: 500, RawBody: "<html>oops</html>", Recipient: to})
		if code, m := template(to, ""); code != 202 {
			t.Fatalf("%d %v", code, m)
		}
		if all, ok := count(to); all != 2 || ok != 1 {
			t.Fatalf("%d requests, %d accepted; want 2 and 1", all, ok)
		}
	})
	t.Run("timeout then success", func(t *testing.T) {
		to := "+447700900471"
		mock.FailNext(1, whatsapptest.Failure{Delay: 2 * time.Second, Code: 131000, Recipient: to})
		if code, m := template(to, ""); code != 202 {
			t.Fatalf("%d %v", code, m)
		}
		testutil.CheckFor(t, 10*time.Second, func() error { // the held answer is recorded when it ends
			if all, ok := count(to); all != 2 || ok != 1 {
				return fmt.Errorf("%d requests, %d accepted; want 2 and 1", all, ok)
			}
			return nil
		})
	})
	t.Run("pair rate limit retried for the recipient", func(t *testing.T) {
		to := "+447700900472"
		mock.FailNext(1, whatsapptest.Failure{Code: 131056, HTTPStatus: 429, Recipient: to})
		if code, m := template(to, ""); code != 202 {
			t.Fatalf("%d %v", code, m)
		}
		if all, ok := count(to); all != 2 || ok != 1 {
			t.Fatalf("%d requests, %d accepted; want 2 and 1", all, ok)
		}
	})
	t.Run("async 131050 records a marketing opt-out", func(t *testing.T) {
		to := "+447700900473"
		mock.FailNext(1, whatsapptest.Failure{Code: 131050, Async: true, Recipient: to})
		if code, m := template(to, "marketing"); code != 202 {
			t.Fatalf("%d %v", code, m)
		}
		testutil.CheckFor(t, 20*time.Second, func() error {
			if code, m := template(to, "marketing"); code != 403 || errCode(m) != "marketing_opt_out" {
				return fmt.Errorf("marketing after 131050: %d %v", code, m)
			}
			return nil
		})
		if code, m := template(to, "utility"); code != 202 {
			t.Fatalf("utility after 131050: %d %v", code, m)
		}
	})
	t.Run("unavailable country", func(t *testing.T) {
		code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"+5352123456","channel":"whatsapp","text":"hola"}`)
		e, _ := m["error"].(map[string]any)
		if msg, _ := e["message"].(string); code != 400 || !strings.Contains(msg, "unavailable") || !strings.Contains(msg, "CU") {
			t.Fatalf("Cuba on WhatsApp: %d %v", code, m)
		}
		if all, _ := count("+5352123456"); all != 0 {
			t.Fatal("Meta was called for Cuba")
		}
		if code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"+5352123456","text":"hola"}`); code != 202 || m["channel"] != ChannelSMS {
			t.Fatalf("Cuba without a channel: %d %v", code, m)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		to := "+447700900474"
		before := metricValue(env, "optgate_whatsapp_token_errors_total", "")
		mock.ExpireToken()
		defer mock.SetToken(mockToken)
		code, m := template(to, "")
		e, _ := m["error"].(map[string]any)
		if msg, _ := e["message"].(string); code != 502 || !strings.Contains(msg, "access token") || !strings.Contains(msg, "190") {
			t.Fatalf("expired token: %d %v", code, m)
		}
		if all, _ := count(to); all != 1 {
			t.Fatalf("an expired token was retried: %d requests", all)
		}
		if got := metricValue(env, "optgate_whatsapp_token_errors_total", ""); got != before+1 {
			t.Fatalf("token errors %v, want %v", got, before+1)
		}
	})
}

// value.errors[] notifications are logged and counted by class.
func TestE2EWhatsAppErrorNotification(t *testing.T) {
	env := newWAEnv(t)
	before := metricValue(env, "optgate_whatsapp_webhook_events_total", `kind="error"`)
	body := whatsapptest.ErrorsWebhook(whatsapptest.Meta{PhoneNumberID: mockPhoneID}, 130429, "Rate limit hit")
	if st, err := env.g.WhatsAppMock().PostWebhook(body); err != nil || st != 200 {
		t.Fatalf("errors webhook: %d %v", st, err)
	}
	waitEvents(t, env, "error", before, 1)
	if got := metricValue(env, "optgate_whatsapp_notification_errors_total", `class="throttle"`); got != 1 {
		t.Fatalf("notification errors counted %v, want 1", got)
	}
}

func TestWhatsAppTemplateConfigValidated(t *testing.T) {
	dir := t.TempDir()
	y := configYAML(dir, "127.0.0.1:1", "    whatsapp_templates: {spring_sale: promotional}\n", "") + "whatsapp_simulator: {enabled: true}\n"
	_, err := ParseConfig([]byte(y), "test.yaml", func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "whatsapp_templates.spring_sale") || !strings.Contains(err.Error(), "promotional") {
		t.Fatalf("bad template category accepted: %v", err)
	}
}

// A WhatsApp template held for an attestation tenant's unknown recipient
// keeps its template: once the recipient answers YES it goes out as that
// template (it went out as an empty text before).
func TestE2EWhatsAppHeldTemplateReleased(t *testing.T) {
	env := newWAEnvWith(t, "    attestation: attestation\n    whatsapp_templates: {interview_update: utility}\n", "", "")
	mock := env.g.WhatsAppMock()
	user := "447700900461"
	if _, st, err := mock.Inbound(mockPhoneID, user, "Hi"); err != nil || st != 200 {
		t.Fatalf("inbound: %d %v", st, err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		if ch, _ := env.g.lastChannel(env.g.tenants["acme"], "+"+user); ch != ChannelWhatsApp {
			return fmt.Errorf("last channel %q", ch)
		}
		return nil
	})
	code, m := env.http("POST", "/v1/messages", acmeToken,
		`{"to":"+`+user+`","channel":"whatsapp","template":{"name":"interview_update","language":"en_US","params":["Tuesday"]}}`)
	if code != 202 {
		t.Fatalf("send: %d %v", code, m)
	}
	// The prompt goes out; the template waits.
	testutil.CheckFor(t, 20*time.Second, func() error {
		for _, r := range waRequestsTo(env, user) {
			if r.Type == "template" {
				return fmt.Errorf("the template went out before YES")
			}
			if r.Type == "text" {
				return nil
			}
		}
		return fmt.Errorf("no attestation prompt yet")
	})
	if _, st, err := mock.Inbound(mockPhoneID, user, "YES"); err != nil || st != 200 {
		t.Fatalf("YES: %d %v", st, err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		for _, r := range waRequestsTo(env, user) {
			if r.Type == "template" {
				if !strings.Contains(string(r.Body), `"interview_update"`) || !strings.Contains(string(r.Body), "Tuesday") {
					return fmt.Errorf("released template: %s", r.Body)
				}
				return nil
			}
		}
		return fmt.Errorf("the held template was not released")
	})
}

// sentOpaque is the biz_opaque_callback_data optgate sent Meta in r.
func sentOpaque(t *testing.T, r whatsapptest.Request) string {
	t.Helper()
	var b struct {
		Opaque string `json:"biz_opaque_callback_data"`
	}
	if err := json.Unmarshal(r.Body, &b); err != nil || b.Opaque == "" {
		t.Fatalf("no biz_opaque in %s: %v", r.Body, err)
	}
	return b.Opaque
}
