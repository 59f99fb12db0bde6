package gateway

import (
	"fmt"
	"strconv"
	"time"

	"testing"

	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp/smpptest"
)

// A message's status survives a restart: GET /v1/messages/{id} answers
// its final state from the store; a state change that comes after the
// restart (a late receipt) moves the stored status on.
func TestMessageStatusSurvivesRestart(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{Receipts: true})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := configYAML(dir, smsc.Addr(), "", "")
	env := startEnv(t, y, smsc, dir)
	const to = "+15145550181"
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+to+`","text":"hello","receipt":true}`)
	if code != 202 {
		t.Fatalf("send: %d %v", code, m)
	}
	id, _ := m["id"].(string)
	var before map[string]any
	testutil.CheckFor(t, 10*time.Second, func() error {
		var c int
		c, before = env.http("GET", "/v1/messages/"+id, acmeToken, "")
		if c != 200 || before["state"] != "delivered" {
			return fmt.Errorf("status %d %v", c, before)
		}
		return nil
	})
	// A blocked message's status too.
	code, m = env.http("POST", "/v1/consent/+15145550182/opt-out", acmeToken, "")
	if code != 200 {
		t.Fatalf("opt-out: %d %v", code, m)
	}
	code, m = env.http("POST", "/v1/messages", acmeToken, `{"to":"+15145550182","text":"hello"}`)
	if code != 403 {
		t.Fatalf("send to opted out: %d %v", code, m)
	}
	blocked := m["error"].(map[string]any)["id"].(string)

	env.stop()
	env = startEnv(t, y, smsc, dir)
	code, after := env.http("GET", "/v1/messages/"+id, acmeToken, "")
	if code != 200 || after["state"] != before["state"] || after["to"] != to || after["updated"] != before["updated"] || after["channel"] != "sms" {
		t.Fatalf("after the restart: %d %v, before %v", code, after, before)
	}
	if code, st := env.http("GET", "/v1/messages/"+blocked, acmeToken, ""); code != 200 || st["state"] != "blocked" || st["reason"] != "opted_out" {
		t.Fatalf("blocked message after the restart: %d %v", code, st)
	}
	// Another tenant's token does not see it (the stored tenant is kept).
	if code, _ := env.http("GET", "/v1/messages/"+id, "nobody-token-1234", ""); code != 401 {
		t.Fatalf("unknown token: %d", code)
	}

	// A receipt for a message from before the restart (the book knows
	// only its new state): the answer keeps who and where from the store,
	// and the merged record is what is stored next.
	code, m = env.http("POST", "/v1/messages", acmeToken, `{"to":"+15145550183","text":"hello","receipt":false}`)
	if code != 202 {
		t.Fatalf("send: %d %v", code, m)
	}
	id2 := m["id"].(string)
	env.stop()
	env = startEnv(t, y, smsc, dir)
	env.g.statuses.Update(id2, status.StateUndeliverable, status.ReasonNone)
	code, st := env.http("GET", "/v1/messages/"+id2, acmeToken, "")
	if code != 200 || st["state"] != "undeliverable" || st["to"] != "+15145550183" {
		t.Fatalf("late state change after the restart: %d %v", code, st)
	}
	env.stop()
	env = startEnv(t, y, smsc, dir)
	if code, st := env.http("GET", "/v1/messages/"+id2, acmeToken, ""); code != 200 || st["state"] != "undeliverable" || st["to"] != "+15145550183" {
		t.Fatalf("merged state after a second restart: %d %v", code, st)
	}
}

// Many messages in a row (several store entries, each holding a run of
// ids) and later changes to some of them all come back after a restart.
func TestMessageStatusesManySurviveRestart(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := configYAML(dir, smsc.Addr(), "", "")
	env := startEnv(t, y, smsc, dir)
	const n = 300
	base := env.g.ids.next()
	first, _ := parseID(base)
	id := func(i int) string { return strconv.FormatUint(first+uint64(i), 16) }
	at := time.Now()
	for i := 0; i < n; i++ {
		env.g.statuses.Put(MessageStatus{ID: id(i), Tenant: "acme", Channel: ChannelSMS, To: fmt.Sprintf("+1514555%04d", i),
			State: status.StateAccepted, Updated: at})
	}
	// Let the writer store them, then change every third one: its entry
	// is written again with the others kept.
	testutil.CheckFor(t, 10*time.Second, func() error {
		if _, ok := env.g.statuses.Stored(id(n - 1)); !ok {
			return fmt.Errorf("not stored yet")
		}
		return nil
	})
	for i := 0; i < n; i += 3 {
		env.g.statuses.Update(id(i), status.StateDelivered, status.ReasonNone)
	}
	env.stop()
	env = startEnv(t, y, smsc, dir)
	for i := 0; i < n; i++ {
		want := "accepted"
		if i%3 == 0 {
			want = "delivered"
		}
		code, st := env.http("GET", "/v1/messages/"+id(i), acmeToken, "")
		if code != 200 || st["state"] != want || st["to"] != fmt.Sprintf("+1514555%04d", i) {
			t.Fatalf("message %d after the restart: %d %v, want %s", i, code, st, want)
		}
	}
	if code, _ := env.http("GET", "/v1/messages/"+id(n), acmeToken, ""); code != 404 {
		t.Fatalf("a message never sent: %d", code)
	}
}
