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
	s := NewServer(Config{EnforceWindow: true})
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

func TestSignAndEscape(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[]}`)
	if got := Sign("test_app_secret", body); got != "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756" {
		t.Fatalf("Sign = %s", got)
	}
	if got := string(EscapeNonASCII([]byte(`{"t":"ä😀"}`))); got != `{"t":"\u00e4\ud83d\ude00"}` {
		t.Fatalf("EscapeNonASCII = %s", got)
	}
}
