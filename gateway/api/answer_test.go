package api

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/valyala/fasthttp"
)

// The one mapping from a message's outcome to the answer of POST
// /v1/messages: status, "status" or error code, and the field at fault.
func TestAnswerSent(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sent        Sent
		interactive bool
		status      int
		state, code string // the body's "status", or its error code
		field       string
	}{
		{"accepted", Sent{Outcome: Outcome{State: "accepted", Parts: 2}}, false, 202, "accepted", "", ""},
		{"queued", Sent{Outcome: Outcome{State: "queued"}}, false, 202, "queued", "", ""},
		{"held", Sent{Outcome: Outcome{State: "held"}}, false, 202, "held", "", ""},
		{"pending", Sent{Pending: true}, false, 202, "pending", "", ""},
		{"opted out", Sent{Outcome: Outcome{State: "blocked", Reason: "opted_out"}}, false, 403, "", "recipient_opted_out", ""},
		{"marketing", Sent{Outcome: Outcome{State: "blocked", Reason: "marketing_opt_out"}}, false, 403, "", "marketing_opt_out", ""},
		{"attestation", Sent{Outcome: Outcome{State: "blocked", Reason: "attestation_pending"}}, false, 403, "", "no_consent", ""},
		{"window", Sent{Outcome: Outcome{State: "blocked", Reason: reasonWindowClosed}}, false, 403, "", reasonWindowClosed, ""},
		{"invalid number", Sent{Outcome: Outcome{State: "rejected", Reason: "invalid_number"}}, false, 400, "", "invalid_number", "to"},
		{"no route", Sent{Outcome: Outcome{State: "rejected", Reason: "no_route"}}, false, 400, "", "no_route", "to"},
		{"invalid sender", Sent{Outcome: Outcome{State: "rejected", Reason: "invalid_sender"}}, false, 400, "", "invalid_sender", "from"},
		{"too long", Sent{Outcome: Outcome{State: "rejected", Reason: "too_long"}}, false, 400, "", "too_long", "text"},
		{"template", Sent{Outcome: Outcome{State: "rejected", Reason: "invalid_template"}}, false, 400, "", "invalid_template", "text"},
		{"interactive", Sent{Outcome: Outcome{State: "rejected", Reason: "invalid_template"}}, true, 400, "", "invalid_template", "interactive"},
		{"failed", Sent{Outcome: Outcome{State: "failed", Reason: "carrier_error", Err: errors.New("ESME_RSYSERR")}}, false, 502, "", "carrier_error", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.sent.ID = "m1"
			var ctx fasthttp.RequestCtx
			answerSent(&ctx, tc.sent, tc.interactive)
			var body map[string]any
			if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil {
				t.Fatal(err)
			}
			a := answer{status: ctx.Response.StatusCode(), body: body}
			requireEqual(t, a.status, tc.status)
			state, _ := body["status"].(string)
			requireEqual(t, state, tc.state)
			requireEqual(t, a.errCode(), tc.code)
			requireEqual(t, a.errField(), tc.field)
			if tc.code != "" && tc.code != "invalid_number" && tc.code != "no_route" && tc.code != "invalid_sender" &&
				tc.code != "too_long" && tc.code != "invalid_template" {
				e := body["error"].(map[string]any)
				requireEqual(t, e["id"], any("m1"))
			}
		})
	}
}

// A refusal's code decides its status, in one table.
func TestStatusOf(t *testing.T) {
	for code, want := range map[string]int{
		"invalid_request": 400, "invalid_number": 400, "invalid_sender": 400, "forbidden": 403, "sender_not_allowed": 403,
		"not_found": 404, "idempotency_in_progress": 409, "idempotency_key_reused": 422, "simulator_error": 502,
		"store_unavailable": 503,
	} {
		if got := statusOf(code); got != want {
			t.Errorf("%s: %d, want %d", code, got, want)
		}
	}
}
