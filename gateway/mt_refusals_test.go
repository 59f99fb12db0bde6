package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// A marketing opt-out refuses the submits of a marketing account with
// 0x00000402 and lets transactional ones through; per-account statuses:
// override each refusal's status.
func TestSMPPRefusalsAndOverrides(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	env := startEnv(t, configYAML(dir, smsc.Addr(), "", `  - {system_id: mkt, password: mktpw, tenant: acme, marketing: true}
  - {system_id: over, password: overpw, tenant: acme, marketing: true, statuses: {opted_out: 0x66, marketing_opt_out: 0x67, no_consent: 0x68}}
`), smsc, dir)
	mkt := env.bindAs("mkt", "mktpw")
	over := env.bindAs("over", "overpw")
	promo := "+15145550161"
	if code, m := env.http("POST", "/v1/consent/"+promo+"/opt-out", acmeToken, `{"marketing":true}`); code != 200 {
		t.Fatalf("marketing opt-out: %d %v", code, m)
	}
	if _, err := submitVia(mkt, promo, "Big sale"); smpp.StatusOf(err) != smpp.StatusMarketingOptOut {
		t.Fatalf("marketing submit after a marketing opt-out: %v, want 0x402", err)
	}
	if _, err := env.submit(promo, "Your interview is at 10"); err != nil {
		t.Fatalf("transactional submit after a marketing opt-out: %v", err)
	}
	if _, err := submitVia(over, promo, "Big sale"); smpp.StatusOf(err) != 0x67 {
		t.Fatalf("overridden marketing_opt_out: %v, want 0x67", err)
	}
	stopped := "+15145550162"
	if code, m := env.http("POST", "/v1/consent/"+stopped+"/opt-out", acmeToken, ""); code != 200 {
		t.Fatalf("opt-out: %d %v", code, m)
	}
	if _, err := env.submit(stopped, "x"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("opted out: %v, want 0x401", err)
	}
	if _, err := submitVia(over, stopped, "x"); smpp.StatusOf(err) != 0x66 {
		t.Fatalf("overridden opted_out: %v, want 0x66 (ESME_RX_R_APPN)", err)
	}
}

// An attestation tenant holds the messages to a recipient who has not
// answered the prompt; past the per-recipient cap a submit is refused
// 0x00000403 (or the account's no_consent override), not 0x64.
func TestSMPPRefusalAttestationPending(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	y := strings.Replace(configYAML(dir, smsc.Addr(), "", "  - {system_id: over, password: overpw, tenant: acme, statuses: {no_consent: 0x68}}\n"),
		"    api_token:", "    attestation: attestation\n    api_token:", 1)
	env := startEnv(t, y, smsc, dir)
	over := env.bindAs("over", "overpw")
	const maxHeld = 100 // consent.DefaultMaxHeld
	for i := range maxHeld {
		if _, err := env.submit(handset, fmt.Sprintf("held %d", i)); err != nil {
			t.Fatalf("held submit %d: %v", i, err)
		}
	}
	if _, err := env.submit(handset, "one too many"); smpp.StatusOf(err) != smpp.StatusNoConsent {
		t.Fatalf("submit while attestation is pending, past the cap: %v, want 0x403", err)
	}
	if _, err := submitVia(over, handset, "one too many"); smpp.StatusOf(err) != 0x68 {
		t.Fatalf("overridden no_consent: %v, want 0x68", err)
	}
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"over HTTP"}`)
	if code != 403 || errCode(m) != "no_consent" {
		t.Fatalf("over HTTP: %d %v", code, m)
	}
}

// data_sm from a platform is screened like submit_sm: an opted-out
// recipient gets 0x401; another is sent, a short message_payload as
// short_message with the other TLVs kept.
func TestDataSMIngress(t *testing.T) {
	env := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dsm := func(to, text string) (smpp.Header, smpp.PDU, error) {
		d := &smpp.DataSM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(to[1:])}}
		_ = d.TLVs.Set(smpp.TagMessagePayload, []byte(text))
		_ = d.TLVs.SetUint16(smpp.TagSourcePort, 1234)
		return env.esme.Send(ctx, d)
	}
	if _, resp, err := dsm(handset, "data hello"); err != nil {
		t.Fatalf("data_sm: %v", err)
	} else if r, ok := resp.(*smpp.DataSMResp); !ok || len(r.MessageID) == 0 {
		t.Fatalf("data_sm_resp: %v", resp)
	}
	s, text := env.nextSubmitTo(handset)
	if text != "data hello" {
		t.Fatalf("at the SMSC: %q", text)
	}
	if p, ok := s.PDU.TLVs.SourcePort(); !ok || p != 1234 {
		t.Fatalf("source_port not kept: %v", s.PDU.TLVs)
	}
	if s.PDU.TLVs.Has(smpp.TagMessagePayload) {
		t.Fatal("message_payload sent along with short_message")
	}
	if code, _ := env.http("POST", "/v1/consent/"+handset+"/opt-out", acmeToken, ""); code != 200 {
		t.Fatal(code)
	}
	if _, _, err := dsm(handset, "blocked?"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("data_sm to an opted-out recipient: %v, want 0x401", err)
	}
}

// A receipt for a message sent over HTTP reaches the tenant as a signed
// message.status webhook carrying our id.
func TestHTTPReceiptWebhook(t *testing.T) {
	var mu sync.Mutex
	var events []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte("hook-secret"))
		mac.Write([]byte(r.Header.Get("X-Optgate-Timestamp") + "." + string(body)))
		if r.Header.Get("X-Optgate-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			w.WriteHeader(401)
			return
		}
		var ev map[string]any
		json.Unmarshal(body, &ev)
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}))
	defer hook.Close()
	smsc := smpptest.NewServer(smpptest.Config{Receipts: true})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := strings.Replace(configYAML(dir, smsc.Addr(), "", ""), "    numbers: [",
		"    webhook: {url: \""+hook.URL+"\", secret: hook-secret}\n    numbers: [", 1)
	env := startEnv(t, y, smsc, dir)
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"receipt by webhook"}`)
	if code != 202 {
		t.Fatalf("send: %d %v", code, m)
	}
	id := m["id"].(string)
	testutil.CheckFor(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range events {
			d, _ := ev["data"].(map[string]any)
			if ev["type"] == "message.status" && d["id"] == id && d["state"] == "delivered" {
				return nil
			}
		}
		return fmt.Errorf("no signed message.status for %s in %v", id, events)
	})
}

const betaToken = "beta-test-api-token"

const betaTenant = `  - id: beta
    brand: Beta
    help_contact: help@beta.example
    api_token: ` + betaToken + `
    numbers: ["+15145550288"]
`

// A second tenant's token can neither read nor change the first tenant's
// messages or consent.
func TestTenantIsolation(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	env := startEnv(t, configYAML(dir, smsc.Addr(), betaTenant, ""), smsc, dir)
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"acme only"}`)
	if code != 202 {
		t.Fatalf("send: %d %v", code, m)
	}
	id := m["id"].(string)
	if code, m := env.http("GET", "/v1/messages/"+id, betaToken, ""); code != 404 {
		t.Fatalf("beta reads acme's message: %d %v", code, m)
	}
	if code, _ := env.http("POST", "/v1/consent/"+handset+"/opt-out", acmeToken, ""); code != 200 {
		t.Fatal(code)
	}
	// beta's view of the same number is its own (not opted out)...
	code, m = env.http("GET", "/v1/consent/"+handset, betaToken, "")
	if code != 200 || m["tenant_wide"].(map[string]any)["state"] == "opted_out" {
		t.Fatalf("beta sees acme's consent: %d %v", code, m)
	}
	if code, m := env.http("GET", "/v1/consent/"+handset+"/history", betaToken, ""); code != 200 || len(m["evidence"].([]any)) != 0 {
		t.Fatalf("beta sees acme's evidence: %d %v", code, m)
	}
	// ...and it cannot act on acme's by naming it.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/consent/" + handset + "?tenant=acme", ""},
		{"POST", "/v1/consent/" + handset + "/opt-in?tenant=acme", `{"source":"signed_form","proof_ref":"x"}`},
		{"POST", "/v1/consent/import?tenant=acme&source=x", "recipient\n+15145550177\n"},
		{"GET", "/v1/consent/export?tenant=acme", ""},
		{"POST", "/v1/messages?tenant=acme", `{"to":"` + handset + `","text":"as acme"}`},
	} {
		if code, m := env.http(c.method, c.path, betaToken, c.body); code != 403 {
			t.Errorf("beta %s %s: %d %v", c.method, c.path, code, m)
		}
	}
	// Nor send from acme's number.
	if code, m := env.http("POST", "/v1/messages", betaToken, `{"to":"`+handset+`","from":"`+ourNumber+`","text":"spoof"}`); code != 403 {
		t.Errorf("beta sends as acme's number: %d %v", code, m)
	}
	// acme is still opted out; beta's own export has nothing of acme's.
	if _, err := env.submit(handset, "x"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("acme's opt-out changed: %v", err)
	}
	code, m = env.http("GET", "/v1/consent/export", betaToken, "")
	if code != 200 || strings.Contains(fmt.Sprint(m["raw"]), handset) {
		t.Fatalf("beta's export: %d %v", code, m)
	}
}

// /v1/simulator/mo takes a tenant token only for the tenant's own numbers.
func TestSimulatorMOChecksTenant(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // held, not closed: another test could take a closed port
	if err != nil {
		t.Fatal(err)
	}
	simAddr := ln.Addr().String()
	dir := t.TempDir()
	y := fmt.Sprintf(`
store: {dir: %q}
http: {admin_token: %q}
simulator: {enabled: true, listen: %q, system_id: optgate, password: simpw}
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: %q, numbers: [%q]}
  - {id: beta, brand: Beta, help_contact: help@beta.example, api_token: %q, numbers: ["+15145550288"]}
accounts:
  - {system_id: acme, password: acmepw, tenant: acme}
`, dir, adminTok, simAddr, acmeToken, ourNumber, betaToken)
	env := startEnvOpt(t, y, nil, dir, Options{SimulatorListener: ln})
	stop := `{"from":"` + handset + `","to":"` + ourNumber + `","text":"STOP"}`
	if code, m := env.http("POST", "/v1/simulator/mo", betaToken, stop); code != 403 {
		t.Fatalf("beta injects an MO to acme's number: %d %v", code, m)
	}
	if code, m := env.http("GET", "/v1/consent/"+handset+"?tenant=acme", adminTok, ""); code != 200 ||
		m["tenant_wide"].(map[string]any)["state"] == "opted_out" {
		t.Fatalf("the refused MO changed acme's consent: %d %v", code, m)
	}
	if code, m := env.http("POST", "/v1/simulator/mo", acmeToken, stop); code != 200 {
		t.Fatalf("acme on its own number: %d %v", code, m)
	}
	if code, m := env.http("POST", "/v1/simulator/mo", adminTok, `{"from":"`+handset+`","to":"+15145550288","text":"hi"}`); code != 200 {
		t.Fatalf("admin: %d %v", code, m)
	}
}
