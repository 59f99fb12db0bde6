package api

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/optgate/optgate/internal/testutil"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/gateway/status"
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
		{"accepted", Sent{Outcome: status.Outcome{Kind: status.Accepted, Parts: 2}}, false, 202, "accepted", "", ""},
		{"queued", Sent{Outcome: status.Outcome{Kind: status.Queued}}, false, 202, "queued", "", ""},
		{"held", Sent{Outcome: status.Outcome{Kind: status.Held}}, false, 202, "held", "", ""},
		{"pending", Sent{Pending: true}, false, 202, "pending", "", ""},
		{"opted out", Sent{Outcome: status.Outcome{Kind: status.Blocked, Reason: status.ReasonOptedOut}}, false, 403, "", "recipient_opted_out", ""},
		{"marketing", Sent{Outcome: status.Outcome{Kind: status.Blocked, Reason: status.ReasonMarketingOptOut}}, false, 403, "", "marketing_opt_out", ""},
		{"attestation", Sent{Outcome: status.Outcome{Kind: status.Blocked, Reason: status.ReasonAttestationPending}}, false, 403, "", "no_consent", ""},
		{"window", Sent{Outcome: status.Outcome{Kind: status.Blocked, Reason: status.ReasonWindowClosed}}, false, 403, "", reasonWindowClosed, ""},
		{"invalid number", Sent{Outcome: status.Outcome{Kind: status.Rejected, Reason: status.ReasonInvalidNumber}}, false, 400, "", "invalid_number", "to"},
		{"no route", Sent{Outcome: status.Outcome{Kind: status.Rejected, Reason: status.ReasonNoRoute}}, false, 400, "", "no_route", "to"},
		{"invalid sender", Sent{Outcome: status.Outcome{Kind: status.Rejected, Reason: status.ReasonInvalidSender}}, false, 400, "", "invalid_sender", "from"},
		{"too long", Sent{Outcome: status.Outcome{Kind: status.Rejected, Reason: status.ReasonTooLong}}, false, 400, "", "too_long", "text"},
		{"template", Sent{Outcome: status.Outcome{Kind: status.Rejected, Reason: status.ReasonInvalidTemplate}}, false, 400, "", "invalid_template", "text"},
		{"interactive", Sent{Outcome: status.Outcome{Kind: status.Rejected, Reason: status.ReasonInvalidTemplate}}, true, 400, "", "invalid_template", "interactive"},
		{"failed", Sent{Outcome: status.Outcome{Kind: status.Failed, Reason: status.ReasonCarrier, Err: errors.New("ESME_RSYSERR")}}, false, 502, "", "carrier_error", ""},
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
			testutil.RequireEqual(t, a.status, tc.status)
			state, _ := body["status"].(string)
			testutil.RequireEqual(t, state, tc.state)
			testutil.RequireEqual(t, a.errCode(), tc.code)
			testutil.RequireEqual(t, a.errField(), tc.field)
			if tc.code != "" && tc.code != "invalid_number" && tc.code != "no_route" && tc.code != "invalid_sender" &&
				tc.code != "too_long" && tc.code != "invalid_template" {
				e := body["error"].(map[string]any)
				testutil.RequireEqual(t, e["id"], any("m1"))
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
