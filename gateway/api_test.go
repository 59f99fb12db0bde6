package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/internal/testutil"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
	"github.com/optgate/optgate/smpp/dlr"
	"github.com/optgate/optgate/smpp/smpptest"
)

func TestImportExportReadyMetrics(t *testing.T) {
	env := newEnv(t)
	csv := "recipient,scope,class\n+15145550111,tenant,all\nnot-a-number,tenant,all\n+15145550112,tenant,marketing\n"
	code, m := env.http("POST", "/v1/consent/import", acmeToken, csv)
	if code != 400 {
		t.Fatalf("import without a stated source: %d %v", code, m)
	}
	code, m = env.http("POST", "/v1/consent/import?source=previous_provider&proof_ref=export-2026-11", acmeToken, csv)
	if code != 200 || m["applied"].(float64) != 2 || m["error_count"].(float64) != 1 {
		t.Fatalf("import: %d %v", code, m)
	}
	errs := m["errors"].([]any)
	if errs[0].(map[string]any)["line"].(float64) != 3 {
		t.Fatalf("bad row not reported with its line: %v", errs)
	}
	if _, err := env.submit("+15145550111", "x"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("imported opt-out not applied: %v", err)
	}
	req, _ := http.NewRequest("GET", "http://"+env.g.HTTPAddr()+"/v1/consent/export", nil)
	req.Header.Set("Authorization", "Bearer "+acmeToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "+15145550111") || !strings.Contains(string(body), "+15145550112") {
		t.Fatalf("export: %s", body)
	}
	if code, _ := env.http("GET", "/readyz", "", ""); code != 200 {
		t.Fatalf("readyz: %d", code)
	}
	_, m = env.http("GET", "/metrics", "", "")
	raw := m["raw"].(string)
	for _, want := range []string{"optgate_smpp_smsc_sessions{smsc=\"carrier\"} 2", "optgate_smpp_smsc_up{smsc=\"carrier\"} 1", "optgate_consent_"} {
		if !strings.Contains(raw, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(raw, "5145550111") {
		t.Error("a phone number appears in the metrics")
	}
	// Another tenant's token cannot read this tenant: admin can.
	if code, _ := env.http("GET", "/v1/consent/+15145550111?tenant=other", acmeToken, ""); code != 403 {
		t.Errorf("tenant token acting on another tenant: %d", code)
	}
	if code, _ := env.http("GET", "/v1/consent/+15145550111?tenant=acme", adminTok, ""); code != 200 {
		t.Errorf("admin: %d", code)
	}
}

// reject: receipt accepts the submit, then sends stat:REJECTD err:401.
func TestRejectAsReceipt(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	env := startEnv(t, configYAML(dir, smsc.Addr(), "", "  - {system_id: rr, password: rrpw, tenant: acme, reject: receipt}\n"), smsc, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if code, _ := env.http("POST", "/v1/consent/"+handset+"/opt-out", acmeToken, ""); code != 200 {
		t.Fatalf("opt-out: %d", code)
	}
	rr := env.bindAs("rr", "rrpw")
	id, err := rr.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
		Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(handset[1:])}, ShortMessage: []byte("hi"), RegisteredDelivery: 1}})
	if err != nil || id == "" {
		t.Fatalf("reject: receipt should accept: %q %v", id, err)
	}
	d, err := rr.NextDeliver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := dlr.Parse(string(d.ShortMessage))
	if err != nil || r.ID != id || r.Stat != "REJECTD" || r.Err != "401" {
		t.Fatalf("receipt %q: %+v %v", d.ShortMessage, r, err)
	}
}

// When the consent store cannot record an MO, the SMSC is asked to retry
// (ESME_RX_T_APPN) rather than told it was stored.
func TestMOStoreFailureAsksRetry(t *testing.T) {
	env := newEnv(t)
	if err := env.g.consent.Close(); err != nil {
		t.Fatal(err)
	}
	err := env.mo(handset, "STOP")
	if smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("MO with a failed store: %v, want ESME_RX_T_APPN", err)
	}
	// And nothing is sent while the store cannot screen: fail closed.
	if _, err := env.submit(handset, "x"); smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("submit with a closed consent store: %v, want ESME_RX_T_APPN", err)
	}
}

// MOs reach the tenant's bound ESME as deliver_sm.
func TestMOForwardedToUpstream(t *testing.T) {
	env := newEnv(t)
	if err := env.mo(handset, "Can we move the interview to Friday?"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := env.esme.NextDeliver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := coding.Decode(coding.DataCoding(d.DataCoding), d.ShortMessage)
	if d.IsReceipt() || text != "Can we move the interview to Friday?" || string(d.Source.Addr) != handset[1:] {
		t.Fatalf("forwarded MO: %s (%q)", d, text)
	}
}

// With two SMSCs on a route, traffic fails over when the first is down.
func TestFailoverBetweenSMSCs(t *testing.T) {
	a := smpptest.NewServer(smpptest.Config{})
	b := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	dir := t.TempDir()
	y := configYAML(dir, a.Addr(), "", "")
	y = strings.Replace(y, "routes:\n  - {prefix: \"+\", smscs: [carrier]}",
		fmt.Sprintf("  - {name: backup, address: %q, system_id: optgate, password: pw, timeout: 3s}\nroutes:\n  - {prefix: \"+\", smscs: [carrier, backup]}", b.Addr()), 1)
	env := startEnv(t, y, a, dir)
	// startEnv waits for one bound SMSC per route; the backup may bind first,
	// and a route uses whatever is bound, so wait for the primary too.
	testutil.CheckFor(t, 20*time.Second, func() error {
		if env.g.links["carrier"].up.Load() == 0 {
			return fmt.Errorf("carrier not bound yet")
		}
		return nil
	})
	if _, err := env.submit(handset, "via a"); err != nil {
		t.Fatal(err)
	}
	if a.Submits() != 1 || b.Submits() != 0 {
		t.Fatalf("primary not used first: a=%d b=%d", a.Submits(), b.Submits())
	}
	a.Close()
	testutil.CheckFor(t, 20*time.Second, func() error {
		if env.g.links["carrier"].up.Load() == 0 {
			return nil
		}
		return fmt.Errorf("carrier still up")
	})
	if _, err := env.submit(handset, "via b"); err != nil {
		t.Fatalf("failover: %v", err)
	}
	if b.Submits() != 1 {
		t.Fatalf("backup not used: %d", b.Submits())
	}
}

// A confirmation the carrier refused stays pending in the consent store and
// is sent again (as after a crash) by the pending-reply sweep.
func TestConfirmationRetriedUntilSent(t *testing.T) {
	env := newEnv(t)
	env.smsc.Fail(1, smpp.StatusSysErr) // the confirmation's first submit
	if err := env.mo(handset, "STOP"); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		n := 0
		env.g.consent.PendingReplies(time.Now().Add(time.Hour), func(consentReply) bool { n++; return true })
		if n != 1 {
			return fmt.Errorf("%d pending", n)
		}
		if _, busy := env.g.replying.Load(pendingID(env)); busy {
			return fmt.Errorf("first attempt still in flight")
		}
		return nil
	})
	env.g.resendPendingReplies(time.Now().Add(time.Minute))
	_, text := env.nextSubmitTo(handset)
	if !strings.Contains(text, "unsubscribed") {
		t.Fatalf("resent confirmation: %q", text)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		n := 0
		env.g.consent.PendingReplies(time.Now().Add(time.Hour), func(consentReply) bool { n++; return true })
		if n != 0 {
			return fmt.Errorf("%d still pending after it was sent", n)
		}
		return nil
	})
}

type consentReply = consent.Reply

func pendingID(env *testEnv) string {
	id := ""
	env.g.consent.PendingReplies(time.Now().Add(time.Hour), func(r consent.Reply) bool { id = r.ID; return false })
	return id
}

// Attestation tenant: the first message to an unknown recipient is held and
// the prompt goes out; YES releases it; another recipient's STOP drops it.
func TestAttestationHoldAndRelease(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := strings.Replace(configYAML(dir, smsc.Addr(), "", ""), "    api_token:", "    attestation: attestation\n    api_token:", 1)
	env := startEnv(t, y, smsc, dir)
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"Your offer letter is ready"}`)
	if code != 202 || m["status"] != "held" {
		t.Fatalf("first message: %d %v", code, m)
	}
	id := m["id"].(string)
	_, prompt := env.nextSubmitTo(handset)
	if !strings.Contains(prompt, "YES") {
		t.Fatalf("prompt: %q", prompt)
	}
	if err := env.mo(handset, "yes"); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for i := 0; i < 2; i++ { // the confirmation and the released message, in any order
		_, text := env.nextSubmitTo(handset)
		got[text] = true
	}
	if !got["Your offer letter is ready"] {
		t.Fatalf("held message not released: %v", got)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		if code, m := env.http("GET", "/v1/messages/"+id, acmeToken, ""); code != 200 || m["state"] != "accepted" {
			return fmt.Errorf("released message state: %d %v", code, m)
		}
		return nil
	})
	// Another recipient answers STOP: the held message is dropped, never sent.
	other := "+15145550133"
	code, m = env.http("POST", "/v1/messages", acmeToken, `{"to":"`+other+`","text":"Never to be sent"}`)
	if code != 202 || m["status"] != "held" {
		t.Fatalf("held: %d %v", code, m)
	}
	env.nextSubmitTo(other) // prompt
	if err := env.mo(other, "STOP"); err != nil {
		t.Fatal(err)
	}
	_, text := env.nextSubmitTo(other)
	if strings.Contains(text, "Never to be sent") {
		t.Fatal("a held message went out after STOP")
	}
	if _, err := env.submit(other, "x"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("after STOP: %v", err)
	}
}

// The quick start's loop with the built-in simulator: an MO STOP injected
// through /v1/simulator/mo blocks the next message.
func TestBuiltInSimulatorLoop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // held, not closed: another test could take a closed port
	if err != nil {
		t.Fatal(err)
	}
	simAddr := ln.Addr().String()
	dir := t.TempDir()
	y := fmt.Sprintf(`
store: {dir: %q}
simulator: {enabled: true, listen: %q, system_id: optgate, password: simpw, receipts: true}
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: %q, numbers: [%q]}
accounts:
  - {system_id: acme, password: acmepw, tenant: acme}
`, dir, simAddr, acmeToken, ourNumber)
	env := startEnvOpt(t, y, nil, dir, Options{SimulatorListener: ln})
	send := `{"to":"` + handset + `","text":"Interview at 10"}`
	if code, m := env.http("POST", "/v1/messages", acmeToken, send); code != 202 {
		t.Fatalf("send: %d %v", code, m)
	}
	if code, m := env.http("POST", "/v1/simulator/mo", acmeToken, `{"from":"`+handset+`","to":"`+ourNumber+`","text":"STOP"}`); code != 200 {
		t.Fatalf("simulated MO: %d %v", code, m)
	}
	if code, m := env.http("POST", "/v1/messages", acmeToken, send); code != 403 || errCode(m) != "recipient_opted_out" {
		t.Fatalf("after STOP: %d %v", code, m)
	}
	if code, _ := env.http("POST", "/v1/simulator/mo", acmeToken, `{"from":"x","to":"`+ourNumber+`","text":"STOP"}`); code != 400 {
		t.Fatalf("bad from: %d", code)
	}
}
