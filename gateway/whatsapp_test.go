package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

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
	waitFor(t, 20*time.Second, func() error {
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
	waitFor(t, 20*time.Second, func() error {
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
	waitFor(t, 20*time.Second, func() error {
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
	body := whatsapptest.InboundText(whatsapptest.Meta{PhoneNumberID: mockPhoneID}, "447700900789", "wamid.X", "STOP", time.Now())
	code, _ = env.http("POST", "/webhooks/whatsapp", "", string(body)) // unsigned
	if code != 401 {
		t.Fatalf("unsigned webhook: %d", code)
	}
	code, m = env.http("GET", "/v1/consent/+447700900789?channel=whatsapp", acmeToken, "")
	b, _ := json.Marshal(m)
	if code != 200 || strings.Contains(string(b), "opted_out\"") && strings.Contains(string(b), `"state":"opted_out"`) {
		t.Fatalf("an unsigned STOP changed consent: %s", b)
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
	waitFor(t, 20*time.Second, func() error {
		if code, m := send("+15145550188"); code != 202 || m["channel"] != "whatsapp" {
			return fmt.Errorf("after a WhatsApp message: %d %v", code, m)
		}
		return nil
	})
}
