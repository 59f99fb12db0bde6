package whatsapptest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func call(t *testing.T, url, auth, body string) (int, map[string]any) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod("POST")
	req.Header.SetContentType("application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.SetBodyString(body)
	if err := fasthttp.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.Unmarshal(resp.Body(), &out)
	return resp.StatusCode(), out
}

func code(m map[string]any) float64 {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(float64)
	return c
}

func TestServerWireFormat(t *testing.T) {
	s := NewServer(Config{})
	defer s.Close()
	u := s.URL() + "/v24.0/106540352242922/messages"
	text := `{"messaging_product":"whatsapp","to":"+16505551234","type":"text","text":{"body":"hi"}}`

	st, out := call(t, u, "", text)
	if st != 401 || code(out) != 190 || out["error"].(map[string]any)["type"] != "OAuthException" {
		t.Fatalf("no token: %d %v", st, out)
	}
	if st, _ := call(t, u+"?access_token=test-token", "", text); st != 200 {
		t.Fatalf("query token: %d", st)
	}
	st, out = call(t, u, "Bearer test-token", text)
	if st != 200 || out["messaging_product"] != "whatsapp" {
		t.Fatalf("success: %d %v", st, out)
	}
	c := out["contacts"].([]any)[0].(map[string]any)
	if c["input"] != "+16505551234" || c["wa_id"] != "16505551234" {
		t.Fatalf("contacts: %v", c)
	}
	if id := out["messages"].([]any)[0].(map[string]any)["id"].(string); !strings.HasPrefix(id, "wamid.") {
		t.Fatalf("id %q", id)
	}
	_, out = call(t, u, "Bearer test-token", `{"messaging_product":"whatsapp","to":"1","type":"template","template":{"name":"x","language":{"code":"en"}}}`)
	if out["messages"].([]any)[0].(map[string]any)["message_status"] != "accepted" {
		t.Fatalf("template: %v", out)
	}
	if st, out := call(t, u, "Bearer test-token", `{"to":"1","type":"text"}`); st != 400 || code(out) != 100 {
		t.Fatalf("no messaging_product: %d %v", st, out)
	}
	if _, out := call(t, u, "Bearer test-token", `{"messaging_product":"whatsapp","status":"read","message_id":"wamid.x"}`); out["success"] != true {
		t.Fatalf("mark as read: %v", out)
	}
	if st, _ := call(t, s.URL()+"/v24.0/messages", "Bearer test-token", text); st != 400 {
		t.Fatalf("bad path: %d", st)
	}

	s.FailNext(1, Failure{Code: 131056, HTTPStatus: 429, Recipient: "2"})
	s.FailNext(1, Failure{Code: 130429})
	if st, out := call(t, u, "Bearer test-token", strings.Replace(text, "+16505551234", "+2", 1)); st != 429 || code(out) != 131056 {
		t.Fatalf("pair limit for recipient 2: %d %v", st, out)
	}
	if st, out := call(t, u, "Bearer test-token", text); st != 400 || code(out) != 130429 {
		t.Fatalf("throughput: %d %v", st, out)
	}
	if st, _ := call(t, u, "Bearer test-token", text); st != 200 {
		t.Fatalf("after scripts: %d", st)
	}
	if n := len(s.Requests()); n != 10 {
		t.Fatalf("recorded %d requests", n)
	}
}

func TestServerWindow(t *testing.T) {
	s := NewServer(Config{EnforceWindow: true, PhoneNumberIDs: []string{"1"}})
	defer s.Close()
	u := s.URL() + "/v25.0/1/messages"
	text := `{"messaging_product":"whatsapp","to":"16505551234","type":"text","text":{"body":"hi"}}`
	if st, out := call(t, u, "Bearer test-token", text); st != 400 || code(out) != 131047 {
		t.Fatalf("outside window: %d %v", st, out)
	}
	s.OpenWindow("1", "+16505551234", time.Now())
	if st, _ := call(t, u, "Bearer test-token", text); st != 200 {
		t.Fatalf("inside window: %d", st)
	}
}

// An unregistered phone-number id gets Graph's "object does not exist" error, and a template
// that is not approved gets 132001; nothing is accepted.
func TestServerUnknownNumberAndTemplate(t *testing.T) {
	s := NewServer(Config{PhoneNumberIDs: []string{"222"}, Templates: []string{"order_update"}})
	defer s.Close()
	text := `{"messaging_product":"whatsapp","to":"16505551234","type":"text","text":{"body":"hi"}}`
	st, out := call(t, s.URL()+"/v25.0/999/messages", "Bearer test-token", text)
	e, _ := out["error"].(map[string]any)
	if st != 400 || code(out) != 100 || e["error_subcode"] != float64(33) || e["type"] != "GraphMethodException" ||
		!strings.HasPrefix(e["message"].(string), "Unsupported post request") || !strings.Contains(e["message"].(string), "'999' does not exist") {
		t.Fatalf("unknown phone-number id: %d %v", st, out)
	}
	// Registered ids: the configured one and Meta's default.
	for _, id := range []string{"222", "106540352242922"} {
		if st, out := call(t, s.URL()+"/v25.0/"+id+"/messages", "Bearer test-token", text); st != 200 {
			t.Fatalf("registered id %s: %d %v", id, st, out)
		}
	}
	// The token is checked before the object, as Graph does.
	if st, out := call(t, s.URL()+"/v25.0/999/messages", "Bearer wrong", text); st != 401 || code(out) != 190 {
		t.Fatalf("bad token on unknown id: %d %v", st, out)
	}
	tpl := func(name string) string {
		return `{"messaging_product":"whatsapp","to":"1","type":"template","template":{"name":"` + name + `","language":{"code":"en_US"}}}`
	}
	st, out = call(t, s.URL()+"/v25.0/222/messages", "Bearer test-token", tpl("no_such_template"))
	e, _ = out["error"].(map[string]any)
	details, _ := e["error_data"].(map[string]any)["details"].(string)
	if st != 404 || code(out) != 132001 || !strings.Contains(details, "no_such_template") || !strings.Contains(details, "en_US") {
		t.Fatalf("unknown template: %d %v", st, out)
	}
	if st, out := call(t, s.URL()+"/v25.0/222/messages", "Bearer test-token", tpl("order_update")); st != 200 {
		t.Fatalf("approved template: %d %v", st, out)
	}
	ok := 0
	for _, r := range s.Requests() {
		if r.Status == 200 {
			ok++
		}
	}
	if ok != 3 {
		t.Fatalf("%d accepted, want 3", ok)
	}
}

func TestServerListenAddr(t *testing.T) {
	s, err := Listen(Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Listen(Config{Addr: strings.TrimPrefix(s.URL(), "http://")}); err == nil {
		t.Fatal("a second mock on the same address started")
	}
}

func TestPayloadBuilders(t *testing.T) {
	meta := Meta{PhoneNumberID: "1"}
	var w struct {
		Object string `json:"object"`
		Entry  []struct {
			Changes []struct {
				Value map[string]json.RawMessage `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	body := InboundWebhook(meta, SystemNumberChange("16505551234", "wamid.sys", "16505559999", time.Now()))
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatal(err)
	}
	v := w.Entry[0].Changes[0].Value
	if _, ok := v["contacts"]; ok {
		t.Fatalf("system message with contacts: %s", body)
	}
	if !strings.Contains(string(v["messages"]), `"user_changed_number"`) || !strings.Contains(string(v["messages"]), `"wa_id":"16505559999"`) {
		t.Fatalf("system message: %s", v["messages"])
	}
	body = InboundWebhook(meta, Unsupported("16505551234", "wamid.u", time.Now()))
	if !strings.Contains(string(body), `"type":"unsupported"`) || !strings.Contains(string(body), `"code":131051`) {
		t.Fatalf("unsupported: %s", body)
	}
	body = ErrorsWebhook(meta, 130429, "Rate limit hit")
	if err := json.Unmarshal(body, &w); err != nil || w.Object != "whatsapp_business_account" {
		t.Fatalf("errors webhook: %v %s", err, body)
	}
	if !strings.Contains(string(w.Entry[0].Changes[0].Value["errors"]), `"code":130429`) {
		t.Fatalf("errors webhook: %s", body)
	}
}

func TestSignAndEscape(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[]}`)
	if got := Sign("test_app_secret", body); got != "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756" {
		t.Fatalf("Sign = %s", got)
	}
	if got := string(EscapeNonASCII([]byte(`{"t":"ä😀"}`))); got != `{"t":"\u00e4\ud83d\ude00"}` {
		t.Fatalf("EscapeNonASCII = %s", got)
	}
}
