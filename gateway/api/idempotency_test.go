package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/optgate/optgate/internal/testutil"

	"github.com/optgate/optgate/gateway/status"
)

// doKey is do with an Idempotency-Key.
func doKey(t *testing.T, addr, key, body string) (answer, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+acmeToken)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal([]byte(b.String()), &a.body)
	return a, b.String()
}

// The key is reserved in the Store through Core.Send's Reserver, the
// answer stored after it, and a retry gets the stored answer replayed
// without a second Send; another body with the key is 422.
func TestIdempotencyReplay(t *testing.T) {
	core := &testCore{sent: Sent{ID: "m1", Outcome: status.Outcome{Kind: status.Accepted}}}
	addr := startServer(t, core, false, nil)
	const body = `{"to":"+15145550100","text":"hi"}`
	first, firstBody := doKey(t, addr, "k-1", body)
	testutil.RequireEqual(t, first.status, 202)
	again, againBody := doKey(t, addr, "k-1", body)
	testutil.RequireEqual(t, again.status, 202)
	testutil.RequireEqual(t, againBody, firstBody)
	testutil.RequireEqual(t, again.header.Get("Idempotent-Replayed"), "true")
	testutil.RequireEqual(t, len(core.sendsTo()), 1)
	other, _ := doKey(t, addr, "k-1", `{"to":"+15145550100","text":"other"}`)
	testutil.RequireEqual(t, other.status, 422)
	testutil.RequireEqual(t, other.errCode(), "idempotency_key_reused")
	testutil.RequireEqual(t, len(core.sendsTo()), 1)
}

// A reservation with no answer (a gateway that stopped in between) is
// never sent again.
func TestIdempotencyInterrupted(t *testing.T) {
	core := &testCore{}
	addr := startServer(t, core, false, nil)
	const body = `{"to":"+15145550100","text":"hi"}`
	// The Store is the core's: a reservation made by another server
	// over it is what a crashed process leaves.
	s := New(Config{Store: core})
	if err := s.ReserveIdempotencyKey("acme", "k-2", []byte(body), "feedbeef"); err != nil {
		t.Fatal(err)
	}
	a, raw := doKey(t, addr, "k-2", body)
	testutil.RequireEqual(t, a.status, 409)
	testutil.RequireEqual(t, a.errCode(), "idempotency_interrupted")
	if !strings.Contains(raw, "feedbeef") {
		t.Fatalf("no message id in %s", raw)
	}
	testutil.RequireEqual(t, len(core.sendsTo()), 0)
}
