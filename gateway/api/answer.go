package api

import (
	"encoding/json"
	"errors"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/consent"
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

// reasonWindowClosed is the block reason of a free-form WhatsApp message
// outside the 24-hour window; it is its own API code.
const reasonWindowClosed = "whatsapp_window_closed"

// Outcome is a message's outcome as the API answers it: its state (the
// core's outcome kind: accepted, queued, held, blocked, rejected or
// failed), the block reason (a consent.Reason's name or
// reasonWindowClosed) or the rejection or failure code, its parts and the
// error.
type Outcome struct {
	State  string
	Reason string
	Parts  int
	Err    error
}

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
	switch o.State {
	case "accepted", "queued", "held":
		body := map[string]any{"id": s.ID, "status": o.State, "channel": s.Channel, "to": s.To}
		if o.Parts > 1 {
			body["parts"] = o.Parts
		}
		if o.State == "held" {
			body["reason"] = "attestation_pending"
		}
		writeJSON(ctx, 202, body)
	case "blocked":
		code := blockCode(o.Reason)
		writeJSON(ctx, statusOf(code), apiError{Error: apiErrorBody{Code: code, ID: s.ID, Message: blockMessage(code)}})
	case "rejected":
		WriteError(ctx, statusOf(o.Reason), o.Reason, rejectedField(o.Reason, interactive), errString(o.Err))
	default:
		writeJSON(ctx, statusOf("carrier_error"), apiError{Error: apiErrorBody{Code: "carrier_error", ID: s.ID, Message: errString(o.Err)}})
	}
}

// rejectedField is the request field a rejection reason is about.
func rejectedField(reason string, interactive bool) string {
	switch reason {
	case "invalid_number", "no_route":
		return "to"
	case "invalid_sender":
		return "from"
	case "invalid_template":
		if interactive {
			return "interactive"
		}
	}
	return "text"
}

// blockCode is the API code of a block reason.
func blockCode(reason string) string {
	if reason == reasonWindowClosed {
		return reasonWindowClosed
	}
	switch reasonFromName(reason) {
	case consent.ReasonMarketingOptOut:
		return "marketing_opt_out"
	case consent.ReasonAttestationPending, consent.ReasonNoConsent:
		return "no_consent"
	}
	return "recipient_opted_out"
}

func reasonFromName(s string) consent.Reason {
	for r := consent.ReasonOptedOut; r <= consent.ReasonNoConsent; r++ {
		if r.String() == s {
			return r
		}
	}
	return consent.ReasonOptedOut
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
