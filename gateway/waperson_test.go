package gateway

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/testutil"

	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// postSigned posts a webhook body signed as Meta does and wants 200.
func postSigned(t *testing.T, env *testEnv, body []byte) {
	t.Helper()
	if st, err := env.g.WhatsAppMock().PostWebhook(body); err != nil || st != 200 {
		t.Fatalf("webhook: %d %v", st, err)
	}
}

// waitBlocked waits until a marketing template to rcpt is refused as opted out.
func waitBlocked(t *testing.T, env *testEnv, rcpt string) {
	t.Helper()
	testutil.CheckFor(t, 20*time.Second, func() error {
		code, m := marketingTemplate(env, rcpt)
		if code == 403 && errCode(m) == "recipient_opted_out" {
			return nil
		}
		return fmt.Errorf("marketing template to %s: %d %v", rcpt, code, m)
	})
}

func marketingTemplate(env *testEnv, rcpt string) (int, map[string]any) {
	return env.http("POST", "/v1/messages", acmeToken, `{"to":"`+rcpt+`","channel":"whatsapp","category":"marketing",`+
		`"template":{"name":"spring_sale","language":"en_US"}}`)
}

// lastWAEvidence is the newest WhatsApp evidence entry of rcpt, as the API shows it.
func lastWAEvidence(t *testing.T, env *testEnv, rcpt string) map[string]any {
	t.Helper()
	code, m := env.http("GET", "/v1/consent/"+rcpt+"/history?channel=whatsapp", acmeToken, "")
	ev, _ := m["evidence"].([]any)
	if code != 200 || len(ev) == 0 {
		t.Fatalf("history of %s: %d %v", rcpt, code, m)
	}
	return ev[0].(map[string]any)
}

// waDeadLetters returns the bodies in the receiver's dead letters.
func waDeadLetters(t *testing.T, env *testEnv) [][]byte {
	t.Helper()
	var out [][]byte
	err := env.g.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte("wa/dead/")
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A STOP from any wa_id form Meta uses blocks sends to every E.164 form
// of the same line, on WhatsApp and (cross-channel tenant) SMS, and the
// evidence keeps the wa_id as Meta sent it. Issue 12 item 1.
func TestWhatsAppWaIDForms(t *testing.T) {
	env := newWAEnvWith(t, "    cross_channel: true\n", "", "")
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	for i, tc := range []struct {
		name, waID string
		sendTo     []string // the forms a platform may send to
		key        string
	}{
		{"mexico 521", "5215512345678", []string{"+525512345678", "+5215512345678"}, "+525512345678"},
		{"mexico canonical", "525512345679", []string{"+5215512345679", "+525512345679"}, "+525512345679"},
		{"argentina 549", "5491123456789", []string{"+541123456789", "+5491123456789", "+54 9 11 2345-6789"}, "+5491123456789"},
		{"argentina without 9", "541123456780", []string{"+5491123456780", "+541123456780"}, "+5491123456780"},
		{"brazil old eight digits", "551187654321", []string{"+5511987654321", "+551187654321"}, "+5511987654321"},
		{"brazil ninth digit", "5521987654322", []string{"+552187654322", "+5521987654322"}, "+5521987654322"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, to := range tc.sendTo {
				if code, m := marketingTemplate(env, to); code != 202 {
					t.Fatalf("before STOP, template to %s: %d %v", to, code, m)
				}
			}
			postSigned(t, env, whatsapptest.InboundText(meta, tc.waID, fmt.Sprintf("wamid.FORM%d", i), "STOP", time.Now()))
			for _, to := range tc.sendTo {
				waitBlocked(t, env, to)
			}
			// Cross-channel tenant: SMS to the line is refused too.
			code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+tc.sendTo[0]+`","channel":"sms","text":"hello"}`)
			if code != 403 || errCode(m) != "recipient_opted_out" {
				t.Fatalf("SMS to %s after WhatsApp STOP: %d %v", tc.sendTo[0], code, m)
			}
			ev := lastWAEvidence(t, env, tc.key)
			if ev["wa_id"] != tc.waID || ev["recipient"] != tc.key || ev["keyword"] != "STOP" {
				t.Fatalf("evidence %v: want wa_id %s as received, recipient %s", ev, tc.waID, tc.key)
			}
		})
	}
}

// Sends go to the wa_id the person last wrote from: Meta delivers to the
// account, whose id it wrote; the consent key stays the E.164 number.
func TestWhatsAppSendsToLastWaID(t *testing.T) {
	env := newWAEnv(t)
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	// The mock (like Meta) knows the window by the account's id, the wa_id.
	env.g.WhatsAppMock().OpenWindow(mockPhoneID, "5215512340001", time.Now())
	before := metricValue(env, "optgate_whatsapp_webhook_events_total", `kind="message"`)
	postSigned(t, env, whatsapptest.InboundText(meta, "5215512340001", "wamid.HELLO1", "Hola", time.Now()))
	waitEvents(t, env, "message", before, 1)
	testutil.CheckFor(t, 20*time.Second, func() error {
		code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"+525512340001","channel":"whatsapp","text":"Gracias"}`)
		if code != 202 {
			return fmt.Errorf("free-form in the window the 521 form opened: %d %v", code, m)
		}
		return nil
	})
	testutil.CheckFor(t, 20*time.Second, func() error {
		if n := len(waRequestsTo(env, "5215512340001")); n != 1 {
			return fmt.Errorf("%d sends to the wa_id 5215512340001", n)
		}
		return nil
	})
	if n := len(waRequestsTo(env, "525512340001")); n != 0 {
		t.Fatalf("%d sends to the E.164 form instead of the wa_id", n)
	}
	// Someone who never wrote gets the number as given.
	if code, m := marketingTemplate(env, "+525512340002"); code != 202 {
		t.Fatalf("template: %d %v", code, m)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		if n := len(waRequestsTo(env, "+525512340002")); n != 1 {
			return fmt.Errorf("%d sends to +525512340002", n)
		}
		return nil
	})
}

// user_changed_number moves the opt-out to the new number, with evidence
// saying why, and counts the event.
func TestWhatsAppUserChangedNumber(t *testing.T) {
	env := newWAEnv(t)
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	oldID, newID := "447700900301", "447700900302"
	postSigned(t, env, whatsapptest.InboundText(meta, oldID, "wamid.CHG1", "STOP", time.Now()))
	waitBlocked(t, env, "+"+oldID)
	if code, m := marketingTemplate(env, "+"+newID); code != 202 {
		t.Fatalf("new number before the change: %d %v", code, m)
	}
	postSigned(t, env, whatsapptest.InboundWebhook(meta, whatsapptest.SystemNumberChange(oldID, "wamid.CHG2", newID, time.Now())))
	waitBlocked(t, env, "+"+newID)
	ev := lastWAEvidence(t, env, "+"+newID)
	if ev["source"] != "whatsapp_number_change" || !strings.Contains(fmt.Sprint(ev["detail"]), oldID) {
		t.Fatalf("evidence of the move: %v", ev)
	}
	if code, m := marketingTemplate(env, "+"+oldID); code != 403 {
		t.Fatalf("old number after the move: %d %v (its opt-out is kept)", code, m)
	}
	// Counted once the handler returns, which may be just after the move
	// is visible.
	testutil.CheckFor(t, 10*time.Second, func() error {
		if got := metricValue(env, "optgate_whatsapp_number_changes_total", ""); got != 1 {
			return fmt.Errorf("number changes counted: %v", got)
		}
		return nil
	})
}

// A user known by business-scoped user id: the id's number is learnt from
// a webhook carrying both; a STOP with the user id alone is then that
// person's. A STOP from an unmapped user id is kept as a dead letter and
// applied once a webhook maps the id. Issue 12 item 1.
func TestWhatsAppUserIDOnly(t *testing.T) {
	env := newWAEnv(t)
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	postSigned(t, env, whatsapptest.InboundTextUser(meta, "447700900311", "US.1311", "wamid.U1", "hello", time.Now().Add(-30*time.Hour)))
	env.g.WhatsAppMock().OpenWindow(mockPhoneID, "447700900311", time.Now()) // Meta's side of the STOP below
	postSigned(t, env, whatsapptest.InboundTextUser(meta, "", "US.1311", "wamid.U2", "STOP", time.Now()))
	waitBlocked(t, env, "+447700900311")
	// The user_id-only message opened the window of the person's number
	// (recorded by the handler, which may finish just after the opt-out is
	// visible).
	testutil.CheckFor(t, 10*time.Second, func() error {
		if !env.g.wa.window.Open(mockPhoneID, "447700900311", time.Now()) {
			at, ok, err := env.g.wa.window.LastInbound(mockPhoneID, "447700900311")
			return fmt.Errorf("window not opened by a message from a mapped user_id: last inbound %v %v %v, dead %d", at, ok, err, len(waDeadLetters(t, env)))
		}
		return nil
	})
	if ev := lastWAEvidence(t, env, "+447700900311"); ev["user_id"] != "US.1311" || ev["wa_id"] != nil {
		t.Fatalf("evidence: %v (user_id as received, no wa_id)", ev)
	}

	before := metricValue(env, "optgate_inbound_unkeyed_total", `reason="user_id_unmapped"`)
	stop := whatsapptest.InboundTextUser(meta, "", "US.1312", "wamid.U3", "STOP", time.Now())
	postSigned(t, env, stop)
	testutil.CheckFor(t, 20*time.Second, func() error {
		if got := metricValue(env, "optgate_inbound_unkeyed_total", `reason="user_id_unmapped"`); got != before+1 {
			return fmt.Errorf("unkeyed count %v", got)
		}
		for _, b := range waDeadLetters(t, env) {
			if bytes.Equal(b, stop) {
				return nil
			}
		}
		return fmt.Errorf("STOP body not in dead letters")
	})
	if code, m := marketingTemplate(env, "+447700900312"); code != 202 {
		t.Fatalf("before the user id is mapped: %d %v", code, m)
	}
	postSigned(t, env, whatsapptest.InboundTextUser(meta, "447700900312", "US.1312", "wamid.U4", "hi", time.Now()))
	waitBlocked(t, env, "+447700900312")
}

// A message whose sender has neither wa_id nor user id is answered 200
// only once its raw body is durable; it is kept as a dead letter, counted
// and logged, never dropped.
func TestWhatsAppUnkeyedDeadLetter(t *testing.T) {
	env := newWAEnv(t)
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	body := whatsapptest.InboundTextUser(meta, "", "", "wamid.NOKEY", "STOP", time.Now())
	before := metricValue(env, "optgate_inbound_unkeyed_total", `channel="whatsapp",reason="no_sender"`)
	postSigned(t, env, body)
	bad := whatsapptest.InboundText(meta, "12", "wamid.BADKEY", "STOP", time.Now()) // no possible number
	postSigned(t, env, bad)
	testutil.CheckFor(t, 20*time.Second, func() error {
		if got := metricValue(env, "optgate_inbound_unkeyed_total", `channel="whatsapp",reason="no_sender"`); got != before+1 {
			return fmt.Errorf("no_sender count %v", got)
		}
		if got := metricValue(env, "optgate_inbound_unkeyed_total", `channel="whatsapp",reason="invalid_wa_id"`); got != 1 {
			return fmt.Errorf("invalid_wa_id count %v", got)
		}
		found := 0
		for _, b := range waDeadLetters(t, env) {
			if bytes.Equal(b, body) || bytes.Equal(b, bad) {
				found++
			}
		}
		if found != 2 {
			return fmt.Errorf("%d of 2 bodies in dead letters", found)
		}
		return nil
	})
	// Both label values of the series exist from the start.
	if !strings.Contains(metricsText(env), `optgate_inbound_unkeyed_total{channel="sms"`) {
		t.Fatal("no channel=\"sms\" series")
	}
}

func metricsText(env *testEnv) string {
	_, m := env.http("GET", "/metrics", "", "")
	s, _ := m["raw"].(string)
	return s
}

// Status webhooks only touch a message of the tenant whose business
// number they came for, through the biz_opaque optgate signed, and only
// with a documented status value. Issue 13 item 7.
func TestWhatsAppStatusOtherTenant(t *testing.T) {
	env := newWAEnvWith(t, betaTenant, "", `whatsapp:
  numbers:
    - {phone_number_id: "`+mockPhoneID+`", number: "`+ourNumber+`", tenant: acme}
    - {phone_number_id: "`+secondPhoneID+`", number: "+15145550288", tenant: beta}
`)
	user := "+447700900321"
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+user+`","channel":"whatsapp","template":{"name":"order_update","language":"en_US"}}`)
	if code != 202 {
		t.Fatalf("template: %d %v", code, m)
	}
	id, _ := m["id"].(string)
	var req whatsapptest.Request
	testutil.CheckFor(t, 20*time.Second, func() error {
		if r := waRequestsTo(env, user); len(r) == 1 {
			req = r[0]
			return nil
		}
		return fmt.Errorf("not sent yet")
	})
	opaque := sentOpaque(t, req)
	if opaque == id || !strings.HasPrefix(opaque, id+".") {
		t.Fatalf("biz_opaque %q: want the id and a MAC", opaque)
	}
	state := func() string {
		_, m := env.http("GET", "/v1/messages/"+id, acmeToken, "")
		s, _ := m["state"].(string)
		return s
	}
	testutil.CheckFor(t, 20*time.Second, func() error { // the mock's own sent and delivered
		if s := state(); s != "delivered" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
	before := metricValue(env, "optgate_whatsapp_statuses_ignored_total", `reason="not_tenant"`)
	now := time.Now()
	for i, tc := range []struct {
		pid, opaque, status string
	}{
		{secondPhoneID, opaque, "failed"}, // beta's number, acme's message
		{mockPhoneID, id, "failed"},       // the bare (guessable) id
		{mockPhoneID, id + ".00000000000000000000000000000000", "failed"},
		{mockPhoneID, opaque, "exploded"}, // not a documented status
	} {
		body := whatsapptest.StatusWebhook(whatsapptest.Meta{PhoneNumberID: tc.pid},
			whatsapptest.Status{ID: fmt.Sprintf("wamid.FORGED%d", i), Status: tc.status, RecipientID: user[1:], BizOpaque: tc.opaque, Timestamp: now})
		postSigned(t, env, body)
	}
	testutil.CheckFor(t, 20*time.Second, func() error {
		nt := metricValue(env, "optgate_whatsapp_statuses_ignored_total", `reason="not_tenant"`)
		us := metricValue(env, "optgate_whatsapp_statuses_ignored_total", `reason="unknown_status"`)
		if nt != before+3 || us != 1 {
			return fmt.Errorf("ignored: not_tenant %v, unknown_status %v", nt-before, us)
		}
		return nil
	})
	if s := state(); s != "delivered" {
		t.Fatalf("state %q after forged statuses, want delivered", s)
	}
	postSigned(t, env, whatsapptest.StatusWebhook(whatsapptest.Meta{PhoneNumberID: mockPhoneID},
		whatsapptest.Status{ID: req.WamID, Status: "read", RecipientID: user[1:], BizOpaque: opaque, Timestamp: now}))
	testutil.CheckFor(t, 20*time.Second, func() error {
		if s := state(); s != "read" {
			return fmt.Errorf("state %q after the real read", s)
		}
		return nil
	})
}

// Consent changes from webhooks apply in event order: a signed START dated
// 2020 does not cancel a STOP dated 2023; a START dated after it does.
// Issue 13 item 8.
func TestWhatsAppStartBeforeStop(t *testing.T) {
	env := newWAEnv(t)
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	user := "447700900331"
	postSigned(t, env, whatsapptest.InboundText(meta, user, "wamid.ORD1", "STOP", time.Date(2023, 5, 1, 12, 0, 0, 0, time.UTC)))
	waitBlocked(t, env, "+"+user)
	postSigned(t, env, whatsapptest.InboundText(meta, user, "wamid.ORD2", "START", time.Date(2020, 5, 1, 12, 0, 0, 0, time.UTC)))
	// The START is in the evidence as received and ignored.
	testutil.CheckFor(t, 20*time.Second, func() error {
		ev := lastWAEvidence(t, env, "+"+user)
		if ev["message_id"] != "wamid.ORD2" {
			return fmt.Errorf("START not handled yet: %v", ev)
		}
		if ev["old"] != ev["new"] || !strings.Contains(fmt.Sprint(ev["detail"]), "no change") {
			t.Fatalf("the 2020 START changed consent: %v", ev)
		}
		return nil
	})
	if code, m := marketingTemplate(env, "+"+user); code != 403 {
		t.Fatalf("after a START dated before the STOP: %d %v", code, m)
	}
	postSigned(t, env, whatsapptest.InboundText(meta, user, "wamid.ORD4", "START", time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)))
	testutil.CheckFor(t, 20*time.Second, func() error {
		if code, m := marketingTemplate(env, "+"+user); code != 202 {
			return fmt.Errorf("after a START dated after the STOP: %d %v", code, m)
		}
		return nil
	})
}

// A webhook Meta redelivers after 7 days is still a duplicate: the
// de-duplication memory is kept for 8 days (configurable), so the replay
// of an old STOP's body changes nothing. Issue 13 item 8.
func TestWhatsAppReplayAfterSevenDays(t *testing.T) {
	env := newWAEnv(t)
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	user := "447700900341"
	stop := whatsapptest.InboundText(meta, user, "wamid.REPLAY1", "STOP", time.Now().Add(-time.Hour))
	postSigned(t, env, stop)
	waitBlocked(t, env, "+"+user)
	postSigned(t, env, whatsapptest.InboundText(meta, user, "wamid.REPLAY2", "START", time.Now()))
	testutil.CheckFor(t, 20*time.Second, func() error {
		if code, m := marketingTemplate(env, "+"+user); code != 202 {
			return fmt.Errorf("after START: %d %v", code, m)
		}
		return nil
	})
	// The dedup record of the STOP outlives Meta's 7-day retry horizon.
	var expires uint64
	if err := env.g.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte("wa/dedup/m/wamid.REPLAY1"))
		if err != nil {
			return err
		}
		expires = it.ExpiresAt()
		return nil
	}); err != nil {
		t.Fatalf("dedup record: %v", err)
	}
	if left := time.Until(time.Unix(int64(expires), 0)); left < 7*24*time.Hour+23*time.Hour {
		t.Fatalf("dedup record expires in %s, want about 8 days", left)
	}
	drops := metricValue(env, "optgate_whatsapp_dedup_drops_total", "")
	postSigned(t, env, stop) // the redelivery
	testutil.CheckFor(t, 20*time.Second, func() error {
		if got := metricValue(env, "optgate_whatsapp_dedup_drops_total", ""); got < drops+1 {
			return fmt.Errorf("replay not dropped yet")
		}
		return nil
	})
	if code, m := marketingTemplate(env, "+"+user); code != 202 {
		t.Fatalf("a replayed STOP was applied again: %d %v", code, m)
	}
}

// What the identity books hold survives a restart: the STOP under the
// canonical key, the user_id's number, and the biz_opaque key (statuses
// come for days after a send).
func TestWhatsAppIdentitySurvivesRestart(t *testing.T) {
	env := newWAEnv(t)
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	postSigned(t, env, whatsapptest.InboundText(meta, "5215512345611", "wamid.RS1", "STOP", time.Now()))
	postSigned(t, env, whatsapptest.InboundTextUser(meta, "447700900351", "US.1351", "wamid.RS2", "hello", time.Now()))
	waitBlocked(t, env, "+525512345611")
	testutil.CheckFor(t, 20*time.Second, func() error {
		if _, ok, err := env.g.wa.userKey(env.g.tenants["acme"], "US.1351"); !ok || err != nil {
			return fmt.Errorf("user id not mapped yet: %v", err)
		}
		return nil
	})
	opaque := env.g.wa.opaque("acme", "18eeda079969781f")
	env.stop()
	env2 := startEnv(t, env.yaml, env.smsc, env.dir)
	if got := env2.g.wa.opaque("acme", "18eeda079969781f"); got != opaque {
		t.Fatalf("biz_opaque key changed across a restart: %s, was %s", got, opaque)
	}
	if code, m := marketingTemplate(env2, "+5215512345611"); code != 403 {
		t.Fatalf("after restart: %d %v", code, m)
	}
	postSigned(t, env2, whatsapptest.InboundTextUser(meta, "", "US.1351", "wamid.RS3", "STOP", time.Now()))
	waitBlocked(t, env2, "+447700900351")
}
