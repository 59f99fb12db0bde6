package whatsapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Wire types of the webhook body (whatsapp.md §6). Only the fields optgate uses are decoded.
type (
	wireWebhook struct {
		Object string      `json:"object"`
		Entry  []wireEntry `json:"entry"`
	}
	wireEntry struct {
		ID      string       `json:"id"`
		Changes []wireChange `json:"changes"`
	}
	wireChange struct {
		Field string    `json:"field"`
		Value wireValue `json:"value"`
	}
	wireValue struct {
		Metadata        wireMetadata  `json:"metadata"`
		Contacts        []wireContact `json:"contacts"`
		Messages        []wireInbound `json:"messages"`
		Statuses        []wireStatus  `json:"statuses"`
		Errors          []wireErr     `json:"errors"`
		UserPreferences []wirePref    `json:"user_preferences"`
	}
	wireMetadata struct {
		DisplayPhoneNumber string `json:"display_phone_number"`
		PhoneNumberID      string `json:"phone_number_id"`
	}
	wireContact struct {
		Profile struct {
			Name string `json:"name"`
		} `json:"profile"`
		WaID   string `json:"wa_id"`
		UserID string `json:"user_id"`
	}
	wireInbound struct {
		From      string   `json:"from"`
		ID        string   `json:"id"`
		UserID    string   `json:"from_user_id"`
		Timestamp flexTime `json:"timestamp"`
		Type      string   `json:"type"`
		Text      *struct {
			Body string `json:"body"`
		} `json:"text"`
		Button *struct {
			Payload string `json:"payload"`
			Text    string `json:"text"`
		} `json:"button"`
		Interactive *struct {
			Type        string     `json:"type"`
			ButtonReply *wireReply `json:"button_reply"`
			ListReply   *wireReply `json:"list_reply"`
		} `json:"interactive"`
		Context *struct {
			From string `json:"from"`
			ID   string `json:"id"`
		} `json:"context"`
		System *struct {
			Type string `json:"type"`
			WaID string `json:"wa_id"`
			Body string `json:"body"`
		} `json:"system"`
		Errors []wireErr `json:"errors"`
	}
	wireReply struct {
		ID          string `json:"id"`
		Title       string `json:"title"`
		Description string `json:"description"`
	}
	wireStatus struct {
		ID          string   `json:"id"`
		Status      string   `json:"status"`
		Timestamp   flexTime `json:"timestamp"`
		RecipientID string   `json:"recipient_id"`
		UserID      string   `json:"recipient_user_id"`
		BizOpaque   string   `json:"biz_opaque_callback_data"`
		Pricing     *struct {
			Category string `json:"category"`
			Type     string `json:"type"`
		} `json:"pricing"`
		Errors []wireErr `json:"errors"`
	}
	wireErr struct {
		Code      int             `json:"code"`
		Title     string          `json:"title"`
		Message   string          `json:"message"`
		ErrorData json.RawMessage `json:"error_data"`
	}
	wirePref struct {
		WaID      string   `json:"wa_id"`
		Detail    string   `json:"detail"`
		Category  string   `json:"category"`
		Value     string   `json:"value"`
		Timestamp flexTime `json:"timestamp"`
	}
)

// flexTime is a Unix-seconds timestamp written as a string (messages, statuses) or as a number
// (user_preferences).
type flexTime int64

func (t *flexTime) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		b = []byte(s)
	}
	if len(b) == 0 {
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", b, err)
	}
	*t = flexTime(n)
	return nil
}

func (t flexTime) time() time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.Unix(int64(t), 0)
}

// errNotWebhook is returned by ParseWebhook for a body that is not a JSON object with an
// entry array; the Receiver answers 400.
var errNotWebhook = errors.New("whatsapp: body is not a webhook object")

// ParseStats counts what ParseWebhook left out.
type ParseStats struct {
	Skipped int // malformed entries, changes or items skipped
	Unknown int // changes for phone-number ids not in the known set
	Ignored int // changes of fields optgate does not consume
	// OtherObject is set when the body's "object" is not "whatsapp_business_account" (another
	// Meta product posting to the same app, or none at all): nothing is taken from it.
	OtherObject bool
}

// webhookObject is the "object" of every WhatsApp Business Account notification (whatsapp.md §6.1).
const webhookObject = "whatsapp_business_account"

// ParseOptions tune ParseWebhook.
type ParseOptions struct {
	// Known is the set of phone-number ids to accept; nil accepts every id.
	Known map[string]struct{}
	// StopLabels are the quick-reply labels that mean a marketing opt-out; nil means
	// DefaultStopLabels.
	StopLabels []string
}

// ParseWebhook decodes a webhook body into owned events. A body that is not a JSON object with
// an "entry" array (when present) is an error; one whose "object" is not
// "whatsapp_business_account" yields no events and sets OtherObject; inside it, malformed
// entries, changes and items are skipped and counted, and the rest is returned. It never panics.
func ParseWebhook(body []byte, opts ParseOptions) ([]Event, ParseStats, error) {
	if opts.StopLabels == nil {
		opts.StopLabels = DefaultStopLabels
	}
	var st ParseStats
	var w wireWebhook
	err := json.Unmarshal(body, &w)
	if err == nil {
		if w.Object != webhookObject {
			st.OtherObject = true
			return nil, st, nil
		}
		var evs []Event
		for i := range w.Entry {
			for j := range w.Entry[i].Changes {
				c := &w.Entry[i].Changes[j]
				evs = appendChange(evs, &st, w.Entry[i].ID, c.Field, &c.Value, opts)
			}
		}
		return evs, st, nil
	}
	// A type mismatch anywhere fails the one-pass decode; retry level by level. A syntax
	// error fails the top level of parseLenient too.
	return parseLenient(body, opts)
}

// parseLenient decodes level by level so that one malformed item costs only itself.
func parseLenient(body []byte, opts ParseOptions) ([]Event, ParseStats, error) {
	var st ParseStats
	var top struct {
		Object json.RawMessage   `json:"object"`
		Entry  []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, st, fmt.Errorf("%w: %v", errNotWebhook, err)
	}
	var object string
	if json.Unmarshal(top.Object, &object) != nil || object != webhookObject {
		st.OtherObject = true
		return nil, st, nil
	}
	var evs []Event
	for _, rawEntry := range top.Entry {
		var e struct {
			ID      json.RawMessage   `json:"id"`
			Changes []json.RawMessage `json:"changes"`
		}
		if json.Unmarshal(rawEntry, &e) != nil {
			st.Skipped++
			continue
		}
		var entryID string
		_ = json.Unmarshal(e.ID, &entryID) // informational only; a non-string id is left empty
		for _, rawChange := range e.Changes {
			var c struct {
				Field string `json:"field"`
				Value struct {
					Metadata        wireMetadata      `json:"metadata"`
					Contacts        []json.RawMessage `json:"contacts"`
					Messages        []json.RawMessage `json:"messages"`
					Statuses        []json.RawMessage `json:"statuses"`
					Errors          []json.RawMessage `json:"errors"`
					UserPreferences []json.RawMessage `json:"user_preferences"`
				} `json:"value"`
			}
			if json.Unmarshal(rawChange, &c) != nil {
				st.Skipped++
				continue
			}
			v := wireValue{Metadata: c.Value.Metadata}
			v.Contacts = decodeEach[wireContact](c.Value.Contacts, &st)
			v.Messages = decodeEach[wireInbound](c.Value.Messages, &st)
			v.Statuses = decodeEach[wireStatus](c.Value.Statuses, &st)
			v.Errors = decodeEach[wireErr](c.Value.Errors, &st)
			v.UserPreferences = decodeEach[wirePref](c.Value.UserPreferences, &st)
			evs = appendChange(evs, &st, entryID, c.Field, &v, opts)
		}
	}
	return evs, st, nil
}

func decodeEach[T any](raws []json.RawMessage, st *ParseStats) []T {
	out := make([]T, 0, len(raws))
	for _, r := range raws {
		var v T
		if json.Unmarshal(r, &v) != nil {
			st.Skipped++
			continue
		}
		out = append(out, v)
	}
	return out
}

// appendChange converts one change's value into events.
func appendChange(evs []Event, st *ParseStats, entryID, field string, v *wireValue, opts ParseOptions) []Event {
	if field != "messages" && field != "user_preferences" {
		st.Ignored++
		return evs
	}
	pid := v.Metadata.PhoneNumberID
	if opts.Known != nil {
		if _, ok := opts.Known[pid]; !ok {
			st.Unknown++
			return evs
		}
	} else if pid == "" {
		st.Skipped++
		return evs
	}
	base := Event{WABAID: entryID, PhoneNumberID: pid, DisplayPhoneNumber: v.Metadata.DisplayPhoneNumber}
	for i := range v.Messages {
		m := &v.Messages[i]
		// A message whose sender has neither a wa_id nor a user id (or no wamid) is still an
		// event: the handler keeps it as a dead letter instead of it being acknowledged and
		// forgotten (dedupKey stands in for a missing wamid).
		im := &InboundMessage{ID: m.ID, From: m.From, UserID: m.UserID, Timestamp: m.Timestamp.time(), Type: m.Type}
		for _, c := range v.Contacts {
			if c.WaID == m.From && m.From != "" || len(v.Contacts) == 1 {
				im.ProfileName = c.Profile.Name
				if im.UserID == "" {
					im.UserID = c.UserID
				}
				break
			}
		}
		if m.Text != nil {
			im.Text = m.Text.Body
		}
		if m.Button != nil {
			im.ButtonText, im.ButtonPayload = m.Button.Text, m.Button.Payload
			im.MarketingStop = matchLabel(opts.StopLabels, m.Button.Text) || matchLabel(opts.StopLabels, m.Button.Payload)
		}
		if in := m.Interactive; in != nil {
			im.ReplyType = in.Type
			r := in.ButtonReply
			if r == nil {
				r = in.ListReply
			}
			if r != nil {
				im.ReplyID, im.ReplyTitle, im.ReplyDescription = r.ID, r.Title, r.Description
			}
		}
		if m.Context != nil {
			im.ContextID, im.ContextFrom = m.Context.ID, m.Context.From
		}
		if m.System != nil {
			im.SystemType, im.NewWaID = m.System.Type, m.System.WaID
		}
		im.Errors = convertErrors(m.Errors)
		ev := base
		ev.Kind, ev.Message = KindMessage, im
		evs = append(evs, ev)
	}
	for i := range v.Statuses {
		s := &v.Statuses[i]
		if s.ID == "" || s.Status == "" {
			st.Skipped++
			continue
		}
		out := &Status{ID: s.ID, Status: s.Status, Timestamp: s.Timestamp.time(), RecipientID: s.RecipientID,
			UserID: s.UserID, BizOpaque: s.BizOpaque, Errors: convertErrors(s.Errors)}
		if s.Pricing != nil {
			out.PricingCategory, out.PricingType = s.Pricing.Category, s.Pricing.Type
		}
		ev := base
		ev.Kind, ev.Status = KindStatus, out
		evs = append(evs, ev)
	}
	for i := range v.UserPreferences {
		p := &v.UserPreferences[i]
		if p.WaID == "" || p.Value == "" {
			st.Skipped++
			continue
		}
		ev := base
		ev.Kind = KindPreference
		ev.Preference = &Preference{WaID: p.WaID, Detail: p.Detail, Category: p.Category, Value: p.Value, Timestamp: p.Timestamp.time()}
		evs = append(evs, ev)
	}
	if len(v.Errors) > 0 {
		ev := base
		ev.Kind, ev.Errors = KindError, convertErrors(v.Errors)
		evs = append(evs, ev)
	}
	return evs
}

func convertErrors(ws []wireErr) []ErrorDetail {
	if len(ws) == 0 {
		return nil
	}
	out := make([]ErrorDetail, len(ws))
	for i, w := range ws {
		out[i] = ErrorDetail{Code: w.Code, Title: w.Title, Message: w.Message, Details: errorDetails(w.ErrorData)}
	}
	return out
}
