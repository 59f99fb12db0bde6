package api

import (
	"encoding/json"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
)

// apiError is the JSON error body.
type apiError struct {
	Error apiErrorBody `json:"error"`
}

type apiErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	ID      string `json:"id,omitempty"`
}

func writeJSON(ctx *fasthttp.RequestCtx, code int, v any) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	b, err := json.Marshal(v)
	if err != nil {
		ctx.SetStatusCode(500)
		b = []byte(`{"error":{"code":"internal_error","message":"cannot encode response"}}`)
	}
	ctx.SetBody(b)
}

// WriteError answers status with the API's JSON error body: an error
// code, the offending field ("" for none) and a message.
func WriteError(ctx *fasthttp.RequestCtx, status int, code, field, msg string) {
	writeJSON(ctx, status, apiError{Error: apiErrorBody{Code: code, Message: msg, Field: field}})
}

// refuse answers a refusal with its code's status (statusOf).
func refuse(ctx *fasthttp.RequestCtx, r *Refusal) {
	WriteError(ctx, statusOf(r.Code), r.Code, r.Field, r.Message)
}

// statusOf is the one mapping from an error code (a refusal's, or a
// message outcome's reason) to its HTTP status.
func statusOf(code string) int {
	switch code {
	case "forbidden", "sender_not_allowed", "recipient_opted_out", "marketing_opt_out", "no_consent", reasonWindowClosed:
		return 403
	case "not_found":
		return 404
	case "idempotency_in_progress", "idempotency_interrupted", "backup_running", "full_backup_needed":
		return 409
	case "idempotency_key_reused", "invalid_rows":
		return 422
	case "carrier_error", "simulator_error":
		return 502
	case "store_unavailable", "not_ready":
		return 503
	}
	return 400 // invalid_request, invalid_number, invalid_sender, the rejection reasons...
}

// reasonWindowClosed is the API code of a free-form WhatsApp message
// blocked outside the 24-hour window: the reason's own name.
var reasonWindowClosed = status.ReasonWindowClosed.String()

// answerSent answers POST /v1/messages with the message's outcome: the one
// mapping from an outcome to an HTTP status and body. interactive says
// the request was an interactive message (a rejected template is then
// the "interactive" field's fault).
func answerSent(ctx *fasthttp.RequestCtx, s Sent, interactive bool) {
	if s.Pending {
		writeJSON(ctx, 202, map[string]any{"id": s.ID, "status": "pending", "channel": s.Channel, "to": s.To,
			"message": "the carrier has not answered yet; GET /v1/messages/" + s.ID + " tells the outcome"})
		return
	}
	o := s.Outcome
	switch o.Kind {
	case status.Accepted, status.Queued, status.Held:
		body := map[string]any{"id": s.ID, "status": o.Kind.String(), "channel": s.Channel, "to": s.To}
		if o.Parts > 1 {
			body["parts"] = o.Parts
		}
		if o.Kind == status.Held {
			body["reason"] = "attestation_pending"
		}
		writeJSON(ctx, 202, body)
	case status.Blocked:
		code := blockCode(o.Reason)
		writeJSON(ctx, statusOf(code), apiError{Error: apiErrorBody{Code: code, ID: s.ID, Message: blockMessage(code)}})
	case status.Rejected:
		code := o.Reason.String()
		WriteError(ctx, statusOf(code), code, rejectedField(o.Reason, interactive), errString(o.Err))
	default:
		if o.Retry && o.Reason == status.ReasonStoreUnavailable {
			// Nothing was sent: a store refuses writes, or (several
			// nodes) this node's consent replica is not current.
			ctx.Response.Header.Set("Retry-After", "1")
			code := o.Reason.String()
			writeJSON(ctx, statusOf(code), apiError{Error: apiErrorBody{Code: code, ID: s.ID, Message: errString(o.Err)}})
			return
		}
		writeJSON(ctx, statusOf("carrier_error"), apiError{Error: apiErrorBody{Code: "carrier_error", ID: s.ID, Message: errString(o.Err)}})
	}
}

// rejectedField is the request field a rejection reason is about.
func rejectedField(r status.Reason, interactive bool) string {
	switch r {
	case status.ReasonInvalidNumber, status.ReasonNoRoute:
		return "to"
	case status.ReasonInvalidSender:
		return "from"
	case status.ReasonInvalidTemplate:
		if interactive {
			return "interactive"
		}
	}
	return "text"
}

// blockCode is the API code of a block reason.
func blockCode(r status.Reason) string {
	switch r {
	case status.ReasonMarketingOptOut:
		return "marketing_opt_out"
	case status.ReasonAttestationPending, status.ReasonNoConsent:
		return "no_consent"
	case status.ReasonWindowClosed:
		return reasonWindowClosed
	}
	return "recipient_opted_out"
}

func blockMessage(code string) string {
	switch code {
	case "recipient_opted_out":
		return "The recipient opted out (replied STOP or was opted out by an operator); nothing was sent."
	case "marketing_opt_out":
		return "The recipient opted out of marketing messages; send a transactional message or nothing."
	case "no_consent":
		return "The recipient has not given consent yet (attestation pending or required); nothing was sent."
	case reasonWindowClosed:
		return "The WhatsApp 24-hour customer service window is closed; send an approved template."
	}
	return "blocked"
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// consentErr answers a consent store error.
func (s *Server) consentErr(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, consent.ErrInvalidNumber):
		WriteError(ctx, 400, "invalid_number", "recipient", err.Error())
	case errors.Is(err, consent.ErrEvidenceRequired):
		WriteError(ctx, 400, "evidence_required", "proof_ref", err.Error())
	case errors.Is(err, consent.ErrUnknownChannel):
		WriteError(ctx, 400, "invalid_request", "channel", err.Error())
	case errors.Is(err, consent.ErrInvalidInput), errors.Is(err, consent.ErrInvalidSender):
		WriteError(ctx, 400, "invalid_request", "", err.Error())
	case errors.Is(err, consent.ErrUnknownTenant):
		WriteError(ctx, 404, "not_found", "tenant", err.Error())
	default:
		s.log.Error("consent store error", "err", err, "request_id", requestID(ctx))
		WriteError(ctx, 503, "store_unavailable", "", "the consent store could not complete the request; nothing was changed")
	}
}
