package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
	"github.com/optgate/optgate/smpp/smpptest"
)

// The whole loop over SMPP, in several languages: STOP from the handset,
// the confirmation in the keyword's language at the SMSC, the upstream's
// next submit refused with 0x00000401, START, allowed again.
func TestE2EOptOutLanguagesSMPP(t *testing.T) {
	env := newEnv(t)
	cases := []struct {
		handset, keyword, confirmWord string
	}{
		{"+15145550101", "STOP", "unsubscribed"},
		{"+15145550102", "ARRET", "désabonné"},
		{"+15145550103", "ARRÊT", "désabonné"}, // arrives UCS-2
		{"+15145550104", "STOPP", "abgemeldet"},
		{"+15145550105", "stop please", ""}, // exact mode: not a keyword
	}
	for _, tc := range cases {
		t.Run(tc.keyword, func(t *testing.T) {
			_, err := env.submit(tc.handset, "Your interview is at 10:00")
			if err != nil {
				t.Fatalf("first submit: %v", err)
			}
			env.nextSubmitTo(tc.handset)
			if err := env.mo(tc.handset, tc.keyword); err != nil {
				t.Fatalf("MO: %v", err)
			}
			if tc.confirmWord == "" {
				if _, err := env.submit(tc.handset, "still allowed"); err != nil {
					t.Fatalf("a non-keyword message blocked the recipient: %v", err)
				}
				return
			}
			_, text := env.nextSubmitTo(tc.handset)
			if !strings.Contains(text, tc.confirmWord) || !strings.Contains(text, "Acme Recruiting") {
				t.Fatalf("confirmation %q does not contain %q", text, tc.confirmWord)
			}
			_, err = env.submit(tc.handset, "Another offer")
			if st := smpp.StatusOf(err); st != smpp.StatusOptedOut {
				t.Fatalf("submit after STOP: got %v (%s), want 0x401", err, st)
			}
			if err := env.mo(tc.handset, "START"); err != nil {
				t.Fatal(err)
			}
			_, text = env.nextSubmitTo(tc.handset)
			if text == "" {
				t.Fatal("no START confirmation")
			}
			if _, err := env.submit(tc.handset, "Welcome back"); err != nil {
				t.Fatalf("submit after START: %v", err)
			}
		})
	}
}

func TestE2EOptOutHTTP(t *testing.T) {
	env := newEnv(t)
	body := `{"to":"` + handset + `","text":"Interview tomorrow"}`
	code, m := env.http("POST", "/v1/messages", acmeToken, body)
	if code != 202 || m["status"] != "accepted" {
		t.Fatalf("send: %d %v", code, m)
	}
	if err := env.mo(handset, "UNSUBSCRIBE"); err != nil {
		t.Fatal(err)
	}
	env.nextSubmitTo(handset) // the first message
	env.nextSubmitTo(handset) // the confirmation
	code, m = env.http("POST", "/v1/messages", acmeToken, body)
	if code != 403 || errCode(m) != "recipient_opted_out" {
		t.Fatalf("after STOP: %d %v", code, m)
	}
	code, m = env.http("GET", "/v1/consent/"+handset, acmeToken, "")
	if code != 200 || m["tenant_wide"].(map[string]any)["state"] != "opted_out" {
		t.Fatalf("consent: %d %v", code, m)
	}
	code, m = env.http("GET", "/v1/consent/"+handset+"/history", acmeToken, "")
	ev := m["evidence"].([]any)
	if code != 200 || len(ev) == 0 || ev[0].(map[string]any)["keyword"] != "UNSUBSCRIBE" {
		t.Fatalf("history: %d %v", code, m)
	}
	// Operator opt-in needs evidence.
	code, m = env.http("POST", "/v1/consent/"+handset+"/opt-in", adminTok+"", `{"operator":"jane"}`)
	if code != 400 || errCode(m) != "evidence_required" {
		t.Fatalf("opt-in without evidence: %d %v", code, m)
	}
	code, _ = env.http("POST", "/v1/consent/"+handset+"/opt-in?tenant=acme", adminTok, `{"operator":"jane","source":"signed_form","proof_ref":"doc-123"}`)
	if code != 200 {
		t.Fatalf("opt-in with evidence: %d", code)
	}
	code, m = env.http("POST", "/v1/messages", acmeToken, body)
	if code != 202 {
		t.Fatalf("after opt-in: %d %v", code, m)
	}
	// Bad input.
	for _, tc := range []struct{ body, field string }{
		{`{"to":"not a number","text":"x"}`, "to"},
		{`{"to":"` + handset + `"}`, "text"},
		{`{"to":1}`, "to"},
		{`{"to":"` + handset + `","text":"x","bogus":1}`, "bogus"},
		{`{`, ""},
	} {
		code, m := env.http("POST", "/v1/messages", acmeToken, tc.body)
		e, _ := m["error"].(map[string]any)
		if code != 400 || (tc.field != "" && e["field"] != tc.field) {
			t.Errorf("body %s: %d %v, want 400 naming %q", tc.body, code, m, tc.field)
		}
	}
	if code, _ := env.http("POST", "/v1/messages", "wrong-token", body); code != 401 {
		t.Errorf("wrong token: %d", code)
	}
}

// A STOP split over two concatenated MO parts is recognised.
func TestE2EConcatenatedStop(t *testing.T) {
	env := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, part := range []string{"ST", "OP"} {
		d := &smpp.DeliverSM{SM: smpp.SM{
			Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(handset[1:])}, Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
			ESMClass: smpp.ESMClassUDHI, ShortMessage: append([]byte{5, 0, 3, 0x42, 2, byte(i + 1)}, part...)}}
		if err := env.smsc.SendDeliver(ctx, "optgate", d); err != nil {
			t.Fatal(err)
		}
	}
	_, text := env.nextSubmitTo(handset)
	if !strings.Contains(text, "unsubscribed") {
		t.Fatalf("confirmation: %q", text)
	}
	if _, err := env.submit(handset, "hi"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("want 0x401, got %v", err)
	}
}

// Receipts from the SMSC come back to the upstream ESME with our id.
func TestE2EReceiptsForwarded(t *testing.T) {
	env := newEnv(t)
	id, err := env.submit(handset, "Receipt please")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := env.esme.NextDeliver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !d.IsReceipt() {
		t.Fatalf("not a receipt: %s", d)
	}
	rid, _ := d.TLVs.ReceiptedMessageID()
	r, err := dlr.Parse(string(d.ShortMessage))
	if err != nil || string(rid) != id || r.ID != id || r.Stat != "DELIVRD" {
		t.Fatalf("receipt %s (parsed %+v, %v) does not carry our id %s", d, r, err, id)
	}
	code, m := env.http("GET", "/v1/messages/"+id, acmeToken, "")
	if code != 200 || m["state"] != "delivered" {
		t.Fatalf("status: %d %v", code, m)
	}
}

// A receipt that overtakes the SMSC's submit_sm_resp (it came on another
// bind) reaches the platform after its submit_sm_resp, and the message's
// status ends delivered, not accepted. The platform's client logs both
// on its read goroutine, so the log is the order on the wire.
func TestE2EReceiptBeforeSubmitResp(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{Receipts: true, ReceiptFirst: true})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	env := startEnv(t, configYAML(dir, smsc.Addr(), "", ""), smsc, dir)
	env.esme.Close() // receipts go to the one receiver below
	env.esme = nil
	var mu sync.Mutex
	var wire []string
	note := func(s string) { mu.Lock(); wire = append(wire, s); mu.Unlock() }
	c := smpp.NewClient(smpp.ClientConfig{Addr: env.g.SMPPAddr(), SystemID: "acme", Password: "acmepw",
		Handler: smpp.HandlerFunc(func(r *smpp.Request) {
			if d, ok := r.PDU.(*smpp.DeliverSM); ok && d.IsReceipt() {
				rid, _ := d.TLVs.ReceiptedMessageID()
				note("receipt " + string(rid))
			}
			r.Respond(smpp.StatusOK, nil)
		})})
	c.Start()
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.WaitBound(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const n = 20
	ids := make(chan string, n)
	for i := range n {
		enc, dc := encodeText(fmt.Sprintf("Receipt first %d", i))
		c.SubmitAsync(ctx, &smpp.SubmitSM{SM: smpp.SM{
			Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])}, Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(handset[1:])},
			DataCoding: dc, ShortMessage: enc, RegisteredDelivery: 1}}, func(id string, err error) {
			if err != nil {
				note("error " + err.Error())
				return
			}
			note("resp " + id)
			ids <- id
		})
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(wire) < 2*n {
			return fmt.Errorf("%d of %d events: %v", len(wire), 2*n, wire)
		}
		return nil
	})
	mu.Lock()
	seen := map[string]bool{}
	for _, e := range wire {
		kind, id, _ := strings.Cut(e, " ")
		switch kind {
		case "resp":
			seen[id] = true
		case "receipt":
			if !seen[id] {
				t.Errorf("receipt for %s reached the platform before its submit_sm_resp (%v)", id, wire)
			}
		default:
			t.Errorf("%s", e)
		}
	}
	mu.Unlock()
	for range n {
		id := <-ids
		code, m := env.http("GET", "/v1/messages/"+id, acmeToken, "")
		if code != 200 || m["state"] != "delivered" || m["to"] != handset {
			t.Fatalf("status of %s: %d %v", id, code, m)
		}
	}
}

// Consent survives a restart of the gateway on the same store.
func TestE2EConsentSurvivesRestart(t *testing.T) {
	env := newEnv(t)
	if err := env.mo(handset, "STOP"); err != nil {
		t.Fatal(err)
	}
	env.stop()
	env2 := startEnv(t, env.yaml, env.smsc, env.dir)
	if _, err := env2.submit(handset, "hi"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("after restart: want 0x401, got %v", err)
	}
}

// Signed webhooks reach the tenant and are retried after a failure.
func TestE2EWebhookSignedAndRetried(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if calls.Add(1) == 1 {
			w.WriteHeader(500) // first attempt fails
			return
		}
		mac := hmac.New(sha256.New, []byte("hook-secret"))
		mac.Write([]byte(r.Header.Get("X-Optgate-Timestamp") + "." + string(body)))
		if r.Header.Get("X-Optgate-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			w.WriteHeader(401)
			return
		}
		var ev map[string]any
		json.Unmarshal(body, &ev)
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	defer hook.Close()
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := configYAML(dir, smsc.Addr(), "", "")
	y = strings.Replace(y, "    numbers: [", "    webhook: {url: \""+hook.URL+"\", secret: hook-secret}\n    numbers: [", 1)
	y += "webhooks: {max_backoff: 50ms}\n"
	env := startEnv(t, y, smsc, dir)
	if err := env.mo(handset, "STOP"); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		types := map[string]bool{}
		for _, ev := range got {
			types[ev["type"].(string)] = true
		}
		if types["consent.opted_out"] && types["message.received"] {
			return nil
		}
		return fmt.Errorf("events so far: %v", types)
	})
	if calls.Load() < 3 {
		t.Fatalf("expected a retry, %d calls", calls.Load())
	}
}

// With ack: store, an SMSC outage queues messages and they are delivered
// once it is back, without loss. The SMSC comes back behind the same
// address through a proxy the test keeps (no port reuse).
func TestE2EStoreAckSurvivesOutage(t *testing.T) {
	proxy := newSMSCProxy(t)
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	proxy.set(smsc.Addr())
	dir := t.TempDir()
	y := configYAML(dir, proxy.addr(), "", "  - {system_id: acmeq, password: acmepw, tenant: acme, ack: store}\n")
	y += "queue: {max_backoff: 100ms}\n"
	env := startEnv(t, y, smsc, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q := env.bindAs("acmeq", "acmepw")
	proxy.set("") // outage
	smsc.Close()
	const n = 20
	for i := 0; i < n; i++ {
		sm := &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(handset[1:])}, ShortMessage: []byte(fmt.Sprintf("queued %d", i))}}
		if _, err := q.Submit(ctx, sm); err != nil {
			t.Fatalf("submit %d during outage: %v", i, err)
		}
	}
	smsc2 := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc2.Close)
	proxy.set(smsc2.Addr())
	seen := map[string]int{}
	for len(seen) < n {
		s, err := smsc2.NextSubmit(ctx)
		if err != nil {
			t.Fatalf("only %d of %d delivered after the outage: %v", len(seen), n, err)
		}
		seen[string(s.PDU.ShortMessage)]++
	}
}

// sendPart has the SMSC deliver part seq of a 2-part concatenated MO (8-bit
// reference ref) from the handset and returns the gateway's answer.
func (e *testEnv) sendPart(ref byte, seq int, text string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := &smpp.DeliverSM{SM: smpp.SM{
		Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(handset[1:])}, Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
		ESMClass: smpp.ESMClassUDHI, ShortMessage: append([]byte{5, 0, 3, ref, 2, byte(seq)}, text...)}}
	return e.smsc.SendDeliver(ctx, "optgate", d)
}

// storedPartCount is how many parts of concatenated MOs the store holds.
func (e *testEnv) storedPartCount() int {
	e.t.Helper()
	parts, _, err := e.g.storedParts([]byte(partPrefix))
	if err != nil {
		e.t.Fatal(err)
	}
	return len(parts)
}

// A part of a concatenated MO is stored before it is acknowledged: after a
// restart between the parts (the reassembler's memory is gone), the set
// still completes when the SMSC delivers the last part, the STOP is
// recorded, and the stored part is removed.
func TestE2EConcatenatedStopSurvivesRestart(t *testing.T) {
	env := newEnv(t)
	if err := env.sendPart(0x51, 1, "ST"); err != nil {
		t.Fatalf("part 1: %v", err)
	}
	if n := env.storedPartCount(); n != 1 {
		t.Fatalf("%d parts stored after part 1 was acknowledged, want 1", n)
	}
	env.stop()
	env2 := startEnv(t, env.yaml, env.smsc, env.dir)
	if err := env2.sendPart(0x51, 2, "OP"); err != nil {
		t.Fatalf("part 2: %v", err)
	}
	if _, text := env2.nextSubmitTo(handset); !strings.Contains(text, "unsubscribed") {
		t.Fatalf("confirmation: %q", text)
	}
	if _, err := env2.submit(handset, "hi"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("want 0x401, got %v", err)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := env2.storedPartCount(); n != 0 {
			return fmt.Errorf("%d parts still stored after the set was handled", n)
		}
		return nil
	})
}

// When the reassembled MO cannot be handled (here a panic in its handling),
// the SMSC is asked to retry the last part, and the earlier part, already
// acknowledged, waits for it again: the retry completes the set.
func TestE2EConcatenatedStopRetriedAfterFailure(t *testing.T) {
	env := newEnv(t)
	var once sync.Once
	hook := func() { once.Do(func() { panic("injected failure") }) }
	testHookInbound.Store(&hook)
	t.Cleanup(func() { testHookInbound.Store(nil) })
	if err := env.sendPart(0x52, 1, "ST"); err != nil {
		t.Fatalf("part 1: %v", err)
	}
	if err := env.sendPart(0x52, 2, "OP"); smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("part 2 with a failing handler: %v, want ESME_RX_T_APPN", err)
	}
	if err := env.sendPart(0x52, 2, "OP"); err != nil {
		t.Fatalf("part 2 retried: %v", err)
	}
	if _, text := env.nextSubmitTo(handset); !strings.Contains(text, "unsubscribed") {
		t.Fatalf("confirmation: %q", text)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := env.storedPartCount(); n != 0 {
			return fmt.Errorf("%d parts still stored after the set was handled", n)
		}
		return nil
	})
}
