package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/consent"
)

// sendRequest is the body of POST /v1/messages.
type sendRequest struct {
	To        string     `json:"to"`
	From      string     `json:"from"`
	Text      string     `json:"text"`
	Channel   string     `json:"channel"`  // sms | whatsapp | "" (choose)
	Category  string     `json:"category"` // transactional (default) | marketing
	Bulk      bool       `json:"bulk"`
	Receipt   *bool      `json:"receipt"` // ask for delivery receipts (default true when the tenant has a webhook)
	Template  *WAContent `json:"template"`
	Reference string     `json:"reference"`
	// Interactive is a WhatsApp reply-buttons message, instead of text or
	// template; free-form, so only inside the 24-hour window.
	Interactive *WAInteractive `json:"interactive"`
}

// validateInteractive checks in against Meta's limits for reply buttons
// (whatsapp.md §2) and names the offending field, so that the caller gets
// a 400 for what Meta would refuse.
func validateInteractive(in *WAInteractive) (field, msg string) {
	switch n := utf8.RuneCountInString(in.Body); {
	case n == 0:
		return "interactive.body", "interactive.body is required"
	case n > 1024:
		return "interactive.body", fmt.Sprintf("interactive.body has %d characters, at most 1024 allowed", n)
	}
	if n := len(in.Buttons); n < 1 || n > 3 {
		return "interactive.buttons", fmt.Sprintf("interactive.buttons must hold 1 to 3 buttons, got %d", n)
	}
	ids := make(map[string]bool, len(in.Buttons))
	titles := make(map[string]bool, len(in.Buttons))
	for i, b := range in.Buttons {
		f := fmt.Sprintf("interactive.buttons[%d]", i)
		if b.ID == "" || len(b.ID) > 256 {
			return f + ".id", f + ".id must have 1 to 256 characters"
		}
		if ids[b.ID] {
			return f + ".id", fmt.Sprintf("%s.id %q is used by another button", f, b.ID)
		}
		ids[b.ID] = true
		if n := utf8.RuneCountInString(b.Title); n == 0 || n > 20 {
			return f + ".title", fmt.Sprintf("%s.title must have 1 to 20 characters, got %d", f, n)
		}
		if titles[b.Title] {
			return f + ".title", fmt.Sprintf("%s.title %q is used by another button", f, b.Title)
		}
		titles[b.Title] = true
	}
	return "", ""
}

func decodeStrict(body []byte, v any) (field string, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return ute.Field, fmt.Errorf("field %s: expected %s", ute.Field, ute.Type)
		}
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return f, fmt.Errorf("unknown field %q", f)
		}
		return "", fmt.Errorf("invalid JSON: %v", err)
	}
	if dec.More() {
		return "", errors.New("invalid JSON: trailing data")
	}
	return "", nil
}

// send is POST /v1/messages: the hot path. It checks the request's shape,
// claims its Idempotency-Key, and hands it to Core.Send, which reserves
// the key (durably) before the message enters the chain.
func (s *Server) send(ctx *fasthttp.RequestCtx, rq request) {
	t := rq.tenant
	ik, ok := s.idemBegin(ctx, t)
	if !ok {
		return
	}
	if ik != nil {
		defer s.idemFinish(ctx, ik)
	}
	var req sendRequest
	if field, err := decodeStrict(ctx.PostBody(), &req); err != nil {
		WriteError(ctx, 400, "invalid_request", field, err.Error())
		return
	}
	d, r := draft(&req, t)
	if r != nil {
		refuse(ctx, r)
		return
	}
	var res Reserver
	if ik != nil {
		ik.s, ik.ctx = s, ctx
		res = ik
	}
	sent, r := s.cfg.Core.Send(t, d, res)
	if r != nil {
		refuse(ctx, r)
		return
	}
	answerSent(ctx, sent, req.Interactive != nil)
}

// draft checks a send request's shape (what needs no gateway state) and
// makes its Draft.
func draft(req *sendRequest, t *Tenant) (Draft, *Refusal) {
	if req.To == "" {
		return Draft{}, &Refusal{"invalid_request", "to", "to is required"}
	}
	// The same reading as SMPP destinations (TON 0: national numbers in the
	// tenant's region must be valid there; ambiguous ones are refused).
	to, _, err := consent.NormalizeAddress(req.To, consent.TONUnknown, 0, t.Region)
	if err != nil {
		return Draft{}, &Refusal{"invalid_number", "to", fmt.Sprintf("not a valid phone number: %v", err)}
	}
	explicit := req.Channel
	if in := req.Interactive; in != nil {
		if req.Text != "" || req.Template != nil {
			return Draft{}, &Refusal{"invalid_request", "interactive", "interactive cannot be combined with text or template"}
		}
		if explicit == "sms" {
			return Draft{}, &Refusal{"invalid_request", "interactive", "interactive messages exist on channel whatsapp only"}
		}
		if field, msg := validateInteractive(in); field != "" {
			return Draft{}, &Refusal{"invalid_request", field, msg}
		}
		// Reply buttons exist on WhatsApp only: no channel means WhatsApp.
		explicit = "whatsapp"
	} else if req.Text == "" && req.Template == nil {
		return Draft{}, &Refusal{"invalid_request", "text", "text (or template, or interactive) is required"}
	}
	d := Draft{To: to, From: req.From, Text: req.Text, Channel: explicit, Bulk: req.Bulk, Template: req.Template,
		Interactive: req.Interactive, Receipt: req.Receipt == nil && t.Webhook || req.Receipt != nil && *req.Receipt}
	switch req.Category {
	case "", "transactional", "utility", "authentication":
	case "marketing":
		d.Marketing = true
	default:
		return Draft{}, &Refusal{"invalid_request", "category", "category must be transactional or marketing"}
	}
	return d, nil
}

// message is GET /v1/messages/{id}: a tenant sees its own messages only.
func (s *Server) message(ctx *fasthttp.RequestCtx, rq request) {
	st, tenant, found := s.cfg.Core.MessageStatus(rq.rest)
	if !found || (!rq.caller.admin && tenant != rq.caller.tenant.ID) {
		WriteError(ctx, 404, "not_found", "id", "no such message (or no longer remembered)")
		return
	}
	writeJSON(ctx, 200, st)
}
