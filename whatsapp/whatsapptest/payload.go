package whatsapptest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Sign returns the X-Hub-Signature-256 value for body: "sha256=" + lowercase hex
// HMAC-SHA256 keyed with the app secret (whatsapp.md §5).
func Sign(appSecret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Meta identifies the business side of a webhook.
type Meta struct {
	WABAID             string // entry[].id; default "102290129340398"
	PhoneNumberID      string // metadata.phone_number_id; default "106540352242922"
	DisplayPhoneNumber string // default "15550783881"
}

func (m Meta) withDefaults() Meta {
	if m.WABAID == "" {
		m.WABAID = "102290129340398"
	}
	if m.PhoneNumberID == "" {
		m.PhoneNumberID = "106540352242922"
	}
	if m.DisplayPhoneNumber == "" {
		m.DisplayPhoneNumber = "15550783881"
	}
	return m
}

func unix(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return strconv.FormatInt(t.Unix(), 10)
}

// Message is one inbound messages[] item; build it with the Text, Button, ButtonReply and
// ListReply helpers or by hand (any JSON-encodable map).
type Message map[string]any

// Text is an inbound text message.
func Text(from, id, body string, ts time.Time) Message {
	return Message{"from": from, "id": id, "timestamp": unix(ts), "type": "text", "text": map[string]any{"body": body}}
}

// Button is a template quick-reply tap (whatsapp.md §6.3); Meta puts the label in both fields.
func Button(from, id, payload, text, contextID string, ts time.Time) Message {
	m := Message{"from": from, "id": id, "timestamp": unix(ts), "type": "button",
		"button": map[string]any{"payload": payload, "text": text}}
	if contextID != "" {
		m["context"] = map[string]any{"from": "15550783881", "id": contextID}
	}
	return m
}

// ButtonReply is an interactive reply-button tap.
func ButtonReply(from, id, replyID, title string, ts time.Time) Message {
	return Message{"from": from, "id": id, "timestamp": unix(ts), "type": "interactive",
		"interactive": map[string]any{"type": "button_reply", "button_reply": map[string]any{"id": replyID, "title": title}}}
}

// ListReply is an interactive list-row selection.
func ListReply(from, id, rowID, title, description string, ts time.Time) Message {
	return Message{"from": from, "id": id, "timestamp": unix(ts), "type": "interactive",
		"interactive": map[string]any{"type": "list_reply", "list_reply": map[string]any{"id": rowID, "title": title, "description": description}}}
}

// SystemNumberChange is the system message sent when a user changes number: from is the old
// wa_id, newWaID the new one (whatsapp.md §6.7). InboundWebhook gives it no contacts[] entry, as
// Meta does.
func SystemNumberChange(from, id, newWaID string, ts time.Time) Message {
	return Message{"from": from, "id": id, "timestamp": unix(ts), "type": "system",
		"system": map[string]any{"body": "User " + from + " changed from " + from + " to " + newWaID,
			"wa_id": newWaID, "type": "user_changed_number"}}
}

// Unsupported is an inbound message of a type the Cloud API does not support, with its 131051
// error (whatsapp.md §6.7).
func Unsupported(from, id string, ts time.Time) Message {
	return Message{"from": from, "id": id, "timestamp": unix(ts), "type": "unsupported",
		"errors": []any{map[string]any{"code": 131051, "title": "Message type unknown", "message": "Message type unknown",
			"error_data": map[string]any{"details": "Message type is currently not supported."}}}}
}

// ErrorsWebhook builds a "messages" webhook carrying only value.errors[], the form of system- or
// app-level errors not tied to a message (whatsapp.md §6.5), e.g. 130429 "Rate limit hit".
func ErrorsWebhook(meta Meta, code int, title string) []byte {
	meta = meta.withDefaults()
	return envelope(meta, "messages", map[string]any{"errors": []any{map[string]any{"code": code, "title": title, "message": title,
		"error_data": map[string]any{"details": title},
		"href":       "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}}})
}

// InboundWebhook builds a "messages" webhook body carrying msgs, with a contacts[] entry per
// distinct sender (system messages have none). Non-ASCII text is written as \u escapes, as
// Meta does.
func InboundWebhook(meta Meta, msgs ...Message) []byte {
	meta = meta.withDefaults()
	var contacts []any
	seen := map[any]bool{}
	for _, m := range msgs {
		if m["type"] == "system" {
			continue
		}
		if f := m["from"]; !seen[f] {
			seen[f] = true
			contacts = append(contacts, map[string]any{"profile": map[string]any{"name": "Test User"}, "wa_id": f})
		}
	}
	value := map[string]any{"messages": msgs}
	if contacts != nil {
		value["contacts"] = contacts
	}
	return envelope(meta, "messages", value)
}

// InboundText builds a signed-ready webhook with one text message.
func InboundText(meta Meta, from, id, body string, ts time.Time) []byte {
	return InboundWebhook(meta, Text(from, id, body, ts))
}

// InboundTextUser builds a webhook with one text message from a user named by wa_id and/or
// business-scoped user id (either may be empty, as for a user with a username and no phone
// number, whatsapp.md §14): contacts[].wa_id and .user_id, messages[].from and .from_user_id,
// each present only when set.
func InboundTextUser(meta Meta, waID, userID, id, body string, ts time.Time) []byte {
	meta = meta.withDefaults()
	contact := map[string]any{"profile": map[string]any{"name": "Test User"}}
	m := Text(waID, id, body, ts)
	if waID == "" {
		delete(m, "from")
	} else {
		contact["wa_id"] = waID
	}
	if userID != "" {
		contact["user_id"] = userID
		m["from_user_id"] = userID
	}
	return envelope(meta, "messages", map[string]any{"contacts": []any{contact}, "messages": []any{m}})
}

// UserPreference builds a user_preferences webhook (value "stop" or "resume"); its timestamp
// is an integer, unlike those of messages (whatsapp.md §6.6).
func UserPreference(meta Meta, waID, value string, ts time.Time) []byte {
	meta = meta.withDefaults()
	if ts.IsZero() {
		ts = time.Now()
	}
	detail := "User requested to stop marketing messages"
	if value == "resume" {
		detail = "User requested to resume marketing messages"
	}
	return envelope(meta, "user_preferences", map[string]any{
		"contacts": []any{map[string]any{"wa_id": waID}},
		"user_preferences": []any{map[string]any{"wa_id": waID, "detail": detail,
			"category": "marketing_messages", "value": value, "timestamp": ts.Unix()}},
	})
}

// Status is one statuses[] item.
type Status struct {
	ID          string // wamid
	Status      string // sent, delivered, read, failed
	RecipientID string
	Timestamp   time.Time
	BizOpaque   string
	ErrorCode   int    // failed only
	ErrorTitle  string // failed only; a default title is used when empty
}

var errorTitles = map[int]string{
	131047: "Re-engagement message",
	131049: "This message was not delivered to maintain healthy ecosystem engagement.",
	131050: "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business",
	131026: "Message undeliverable",
}

func (s Status) wire() map[string]any {
	m := map[string]any{"id": s.ID, "status": s.Status, "timestamp": unix(s.Timestamp), "recipient_id": s.RecipientID}
	if s.BizOpaque != "" {
		m["biz_opaque_callback_data"] = s.BizOpaque
	}
	if s.Status == "sent" || s.Status == "delivered" {
		m["pricing"] = map[string]any{"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"}
	}
	if s.Status == "failed" {
		title := s.ErrorTitle
		if title == "" {
			title = errorTitles[s.ErrorCode]
		}
		if title == "" {
			title = "Message failed"
		}
		m["errors"] = []any{map[string]any{"code": s.ErrorCode, "title": title, "message": title,
			"error_data": map[string]any{"details": title},
			"href":       "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}}
	}
	return m
}

// StatusWebhook builds a "messages" webhook body carrying statuses.
func StatusWebhook(meta Meta, sts ...Status) []byte {
	meta = meta.withDefaults()
	items := make([]any, len(sts))
	for i, s := range sts {
		items[i] = s.wire()
	}
	return envelope(meta, "messages", map[string]any{"statuses": items})
}

func envelope(meta Meta, field string, value map[string]any) []byte {
	value["messaging_product"] = "whatsapp"
	value["metadata"] = map[string]any{"display_phone_number": meta.DisplayPhoneNumber, "phone_number_id": meta.PhoneNumberID}
	body := map[string]any{"object": "whatsapp_business_account", "entry": []any{map[string]any{
		"id": meta.WABAID, "changes": []any{map[string]any{"field": field, "value": value}},
	}}}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // only maps of strings and numbers reach here
	}
	return EscapeNonASCII(b)
}

// EscapeNonASCII rewrites every non-ASCII character of a JSON text as a lowercase \u escape
// (surrogate pairs above U+FFFF), the form Meta signs (whatsapp.md §5). Non-ASCII bytes occur
// only inside JSON strings, so the result is the same JSON value.
func EscapeNonASCII(b []byte) []byte {
	out := make([]byte, 0, len(b))
	const hexd = "0123456789abcdef"
	for len(b) > 0 {
		c := b[0]
		if c < utf8.RuneSelf {
			out = append(out, c)
			b = b[1:]
			continue
		}
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		units := []rune{r}
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			units = []rune{r1, r2}
		}
		for _, u := range units {
			out = append(out, '\\', 'u', hexd[u>>12&0xf], hexd[u>>8&0xf], hexd[u>>4&0xf], hexd[u&0xf])
		}
	}
	return out
}
