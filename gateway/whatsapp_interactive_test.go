package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// interactiveBody is a POST /v1/messages body with reply buttons.
func interactiveBody(to, extra, interactive string) string {
	return `{"to":"` + to + `","channel":"whatsapp"` + extra + `,"interactive":` + interactive + `}`
}

const tuesdayButtons = `{"body":"Can you make Tuesday 10:00?","buttons":[{"id":"yes","title":"Yes"},{"id":"no","title":"No"}]}`

// Reply buttons over POST /v1/messages: refused outside the window before
// Meta is called, sent inside it as Meta's interactive request, refused
// after STOP.
func TestWhatsAppInteractiveAPI(t *testing.T) {
	env := newWAEnv(t)
	mock := env.g.WhatsAppMock()
	user := "+447911123456"
	body := interactiveBody(user, "", tuesdayButtons)

	code, m := env.http("POST", "/v1/messages", acmeToken, body)
	if code != 403 || errCode(m) != "whatsapp_window_closed" {
		t.Fatalf("outside the window: %d %v, want 403 whatsapp_window_closed", code, m)
	}
	if n := len(waRequestsTo(env, user)); n != 0 {
		t.Fatalf("Meta was called %d times outside the window", n)
	}

	if _, st, err := mock.Inbound(mockPhoneID, user, "Hi, about the interview"); err != nil || st != 200 {
		t.Fatalf("inbound: %d %v", st, err)
	}
	var id string
	testutil.CheckFor(t, 20*time.Second, func() error {
		code, m := env.http("POST", "/v1/messages", acmeToken, body)
		if code != 202 || m["status"] != "accepted" {
			return fmt.Errorf("in the window: %d %v", code, m)
		}
		id, _ = m["id"].(string)
		return nil
	})
	reqs := waRequestsTo(env, user)
	if len(reqs) != 1 || reqs[0].Type != "interactive" {
		t.Fatalf("Meta got %d requests (%+v), want one interactive", len(reqs), reqs)
	}
	want := `{"messaging_product":"whatsapp","recipient_type":"individual","to":"` + user + `","type":"interactive",` +
		`"biz_opaque_callback_data":"` + env.g.wa.opaque("acme", id) + `","interactive":{"type":"button","body":{"text":"Can you make Tuesday 10:00?"},` +
		`"action":{"buttons":[{"type":"reply","reply":{"id":"yes","title":"Yes"}},{"type":"reply","reply":{"id":"no","title":"No"}}]}}}`
	if got := string(reqs[0].Body); got != want {
		t.Fatalf("request to Meta:\n got %s\nwant %s", got, want)
	}

	// Without a channel, reply buttons go over WhatsApp (they exist nowhere else).
	code, m = env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","interactive":`+tuesdayButtons+`}`)
	if code != 202 || m["channel"] != ChannelWhatsApp {
		t.Fatalf("no channel: %d %v, want 202 over whatsapp", code, m)
	}
	if n := interactiveSent(env, user); n != 2 {
		t.Fatalf("Meta got %d interactive requests, want 2", n)
	}

	if _, st, err := mock.Inbound(mockPhoneID, user, "STOP"); err != nil || st != 200 {
		t.Fatalf("inbound STOP: %d %v", st, err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		code, m := env.http("POST", "/v1/messages", acmeToken, body)
		if code != 403 || errCode(m) != "recipient_opted_out" {
			return fmt.Errorf("after STOP: %d %v, want 403 recipient_opted_out", code, m)
		}
		return nil
	})
	// The STOP is handled asynchronously, so a send in the loop above may
	// have gone out before it; from now on none may.
	before := interactiveSent(env, user)
	code, m = env.http("POST", "/v1/messages", acmeToken, body)
	if code != 403 || errCode(m) != "recipient_opted_out" {
		t.Fatalf("after STOP: %d %v, want 403 recipient_opted_out", code, m)
	}
	if n := interactiveSent(env, user); n != before {
		t.Fatalf("Meta got %d interactive requests after STOP, had %d", n, before)
	}
}

// interactiveSent counts the interactive requests Meta answered for to.
func interactiveSent(env *testEnv, to string) int {
	n := 0
	for _, r := range waRequestsTo(env, to) {
		if r.Type == "interactive" {
			n++
		}
	}
	return n
}

// Every violation of Meta's limits for reply buttons, or a misuse of the
// field, is a 400 naming the field, and Meta is not called.
func TestWhatsAppInteractiveAPIValidation(t *testing.T) {
	env := newWAEnv(t)
	mock := env.g.WhatsAppMock()
	user := "+447911123457"
	// Inside the window, so that nothing but the validation refuses.
	if _, st, err := mock.Inbound(mockPhoneID, user, "hello"); err != nil || st != 200 {
		t.Fatalf("inbound: %d %v", st, err)
	}
	button := func(id, title string) string { return `{"id":"` + id + `","title":"` + title + `"}` }
	buttons := func(bs ...string) string {
		return `{"body":"Pick one","buttons":[` + strings.Join(bs, ",") + `]}`
	}
	long := strings.Repeat("é", 21) // 21 characters, 42 bytes
	for _, tc := range []struct{ name, body, field string }{
		{"four buttons", interactiveBody(user, "", buttons(button("a", "A"), button("b", "B"), button("c", "C"), button("d", "D"))), "interactive.buttons"},
		{"no buttons", interactiveBody(user, "", buttons()), "interactive.buttons"},
		{"empty title", interactiveBody(user, "", buttons(button("a", "A"), button("b", ""))), "interactive.buttons[1].title"},
		{"title too long", interactiveBody(user, "", buttons(button("a", long))), "interactive.buttons[0].title"},
		{"duplicate id", interactiveBody(user, "", buttons(button("a", "A"), button("a", "B"))), "interactive.buttons[1].id"},
		{"duplicate title", interactiveBody(user, "", buttons(button("a", "A"), button("b", "A"))), "interactive.buttons[1].title"},
		{"empty id", interactiveBody(user, "", buttons(button("", "A"))), "interactive.buttons[0].id"},
		{"id too long", interactiveBody(user, "", buttons(button(strings.Repeat("i", 257), "A"))), "interactive.buttons[0].id"},
		{"body too long", interactiveBody(user, "", `{"body":"`+strings.Repeat("b", 1025)+`","buttons":[`+button("a", "A")+`]}`), "interactive.body"},
		{"empty body", interactiveBody(user, "", `{"body":"","buttons":[`+button("a", "A")+`]}`), "interactive.body"},
		{"channel sms", `{"to":"` + user + `","channel":"sms","interactive":` + tuesdayButtons + `}`, "interactive"},
		{"with text", interactiveBody(user, `,"text":"hello"`, tuesdayButtons), "interactive"},
		{"with template", interactiveBody(user, `,"template":{"name":"t","language":"en_US"}`, tuesdayButtons), "interactive"},
		{"unknown field", interactiveBody(user, "", `{"body":"x","buttons":[`+button("a", "A")+`],"footer":"f"}`), "footer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := env.http("POST", "/v1/messages", acmeToken, tc.body)
			e, _ := m["error"].(map[string]any)
			if code != 400 || e["field"] != tc.field {
				t.Errorf("%d %v, want 400 naming %q", code, m, tc.field)
			}
		})
	}
	// The limits themselves are allowed: 3 buttons, a 20-character title,
	// a 256-character id and a 1024-character body.
	max := `{"body":"` + strings.Repeat("b", 1024) + `","buttons":[` + button(strings.Repeat("i", 256), strings.Repeat("é", 20)) +
		`,` + button("b", "B") + `,` + button("c", "C") + `]}`
	testutil.CheckFor(t, 20*time.Second, func() error {
		code, m := env.http("POST", "/v1/messages", acmeToken, interactiveBody(user, "", max))
		if code != 202 {
			return fmt.Errorf("at the limits: %d %v", code, m)
		}
		return nil
	})
	if n := interactiveSent(env, user); n != 1 {
		t.Fatalf("Meta got %d interactive requests, want only the one at the limits", n)
	}
}
