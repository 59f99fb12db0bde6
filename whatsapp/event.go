package whatsapp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Handler receives parsed webhook events from the Receiver's workers. HandleEvent must be safe
// for concurrent use. A nil error means the event is done: it is recorded as seen and never
// delivered again. An error makes the Receiver retry the event with back-off. Because a crash
// between a successful HandleEvent and the durable "seen" record redelivers the event, handlers
// must be idempotent (recording an opt-out twice is harmless).
type Handler interface {
	HandleEvent(ctx context.Context, ev Event) error
}

// ErrDeadLetter, returned (possibly wrapped) by a Handler, means the event cannot be handled as
// it is (e.g. a sender that cannot be keyed) and must be kept rather than retried: its body
// goes at once to the dead letters ("wa/dead/", durable, see Replay), not after MaxAttempts.
var ErrDeadLetter = errors.New("whatsapp: event kept as a dead letter")

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, ev Event) error

// HandleEvent calls f(ctx, ev).
func (f HandlerFunc) HandleEvent(ctx context.Context, ev Event) error { return f(ctx, ev) }

// EventKind says which part of an Event is set.
type EventKind uint8

// Event kinds.
const (
	KindMessage    EventKind = iota + 1 // Message is set: a user message (text, button, interactive, system, ...)
	KindStatus                          // Status is set: sent, delivered, read, failed, played
	KindPreference                      // Preference is set: user_preferences stop/resume of marketing
	KindError                           // Errors is set: a value.errors[] notification without a message
)

var kindNames = [...]string{"unknown", "message", "status", "preference", "error"}

func (k EventKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one webhook notification, owned by the receiver of the value (nothing refers to the
// request buffers). Exactly one of Message, Status, Preference, Errors is set, per Kind.
type Event struct {
	Kind               EventKind
	WABAID             string // entry[].id
	PhoneNumberID      string // value.metadata.phone_number_id: the business number concerned
	DisplayPhoneNumber string

	Message    *InboundMessage
	Status     *Status
	Preference *Preference
	Errors     []ErrorDetail
}

// InboundMessage is a user message (whatsapp.md §6.2, §6.3, §6.7).
type InboundMessage struct {
	ID          string    // wamid
	From        string    // sender wa_id
	UserID      string    // business-scoped user id, when present
	ProfileName string    // contacts[].profile.name
	Timestamp   time.Time // Meta's timestamp (second precision)
	Type        string    // text, button, interactive, image, system, unsupported, ...

	Text             string // text.body
	ButtonText       string // button.text (template quick reply)
	ButtonPayload    string // button.payload
	ReplyType        string // interactive.type: button_reply or list_reply
	ReplyID          string // interactive.*_reply.id
	ReplyTitle       string // interactive.*_reply.title
	ReplyDescription string // interactive.list_reply.description
	ContextID        string // context.id: the wamid replied to
	ContextFrom      string // context.from
	NewWaID          string // system user_changed_number: the new wa_id
	SystemType       string // system.type
	Errors           []ErrorDetail

	// MarketingStop is set for a template quick-reply tap whose label is a marketing opt-out
	// button ("Stop promotions"; see ReceiverConfig.StopLabels). It means a marketing-only
	// opt-out, unlike a STOP keyword, which the keyword engine handles from KeywordText.
	MarketingStop bool
}

// KeywordText is the text the keyword engine should screen: the text body, the tapped button's
// label or the interactive reply's title.
func (m *InboundMessage) KeywordText() string {
	switch {
	case m.Text != "":
		return m.Text
	case m.ButtonText != "":
		return m.ButtonText
	case m.ButtonPayload != "":
		return m.ButtonPayload
	default:
		return m.ReplyTitle
	}
}

// OpensWindow reports whether the message opens or refreshes the 24-hour window; every user
// message does, system notifications do not.
func (m *InboundMessage) OpensWindow() bool { return m.Type != "system" && m.From != "" }

// Status is a delivery status of a message we sent (whatsapp.md §6.4).
type Status struct {
	ID              string // wamid from the send response
	Status          string // sent, delivered, read, failed, played
	Timestamp       time.Time
	RecipientID     string // wa_id
	UserID          string // business-scoped user id, when present
	BizOpaque       string // biz_opaque_callback_data echoed from the send
	PricingCategory string // pricing.category
	PricingType     string // pricing.type
	Errors          []ErrorDetail
}

// HasError reports whether the status carries the given error code.
func (s *Status) HasError(code int) bool {
	for _, e := range s.Errors {
		if e.Code == code {
			return true
		}
	}
	return false
}

// MarketingOptOut reports a failed status with 131050: the user stopped marketing messages.
func (s *Status) MarketingOptOut() bool { return s.Status == "failed" && s.HasError(131050) }

// WindowClosed reports a failed status with 131047: sent outside the customer service window.
func (s *Status) WindowClosed() bool { return s.Status == "failed" && s.HasError(131047) }

// Preference is a user_preferences change (whatsapp.md §6.6).
type Preference struct {
	WaID      string
	Detail    string
	Category  string // "marketing_messages"
	Value     string // "stop" or "resume"
	Timestamp time.Time
}

// MarketingStop reports a stop of marketing messages.
func (p *Preference) MarketingStop() bool {
	return p.Category == "marketing_messages" && p.Value == "stop"
}

// MarketingResume reports a resume of marketing messages.
func (p *Preference) MarketingResume() bool {
	return p.Category == "marketing_messages" && p.Value == "resume"
}

// ErrorDetail is one errors[] item of a status, message or notification.
type ErrorDetail struct {
	Code    int
	Title   string
	Message string
	Details string // error_data.details
}

// Signal is the consent meaning of an event, for the gateway's consent engine.
type Signal uint8

// Signals. SignalKeyword means "screen KeywordText with the keyword engine".
const (
	SignalNone            Signal = iota
	SignalKeyword                // a user message with text to screen for STOP/START-style keywords
	SignalMarketingStop          // marketing-only opt-out: Stop promotions button, user_preferences stop, 131050
	SignalMarketingResume        // user_preferences resume: clears a marketing opt-out WhatsApp set
	SignalWindowClosed           // 131047: the window was closed when we sent
)

// Signal returns the consent meaning of the event.
func (e *Event) Signal() Signal {
	switch e.Kind {
	case KindMessage:
		if e.Message.MarketingStop {
			return SignalMarketingStop
		}
		if e.Message.KeywordText() != "" {
			return SignalKeyword
		}
	case KindStatus:
		if e.Status.MarketingOptOut() {
			return SignalMarketingStop
		}
		if e.Status.WindowClosed() {
			return SignalWindowClosed
		}
	case KindPreference:
		if e.Preference.MarketingStop() {
			return SignalMarketingStop
		}
		if e.Preference.MarketingResume() {
			return SignalMarketingResume
		}
	}
	return SignalNone
}

// DefaultStopLabels are the quick-reply labels treated as a marketing opt-out button, compared
// case-insensitively after trimming. Localised labels are not confirmed by Meta (whatsapp.md
// §10), so they are left to configuration.
var DefaultStopLabels = []string{"stop promotions", "opt-out", "opt out"}

func matchLabel(labels []string, s string) bool {
	s = strings.TrimSpace(s)
	for _, l := range labels {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}

// dedupKey is the durable duplicate key: the wamid for messages, wamid+status for statuses,
// and the full content for preferences and error notifications (which carry no id).
func (e *Event) dedupKey() []byte {
	k := make([]byte, 0, 96)
	k = append(k, dedupPrefix...)
	switch e.Kind {
	case KindMessage:
		k = append(k, "m/"...)
		if m := e.Message; m.ID != "" {
			k = append(k, m.ID...)
		} else {
			// No wamid (malformed, kept as a dead letter by the handler): the content.
			h := sha256.New()
			for _, s := range []string{m.From, m.UserID, m.Type, m.KeywordText(), m.SystemType, m.NewWaID} {
				h.Write([]byte(s))
				h.Write([]byte{0})
			}
			k = append(k, "noid:"...)
			k = strconv.AppendInt(k, m.Timestamp.Unix(), 10)
			k = append(k, ':')
			k = hex.AppendEncode(k, h.Sum(nil))
		}
	case KindStatus:
		k = append(k, "s/"...)
		k = append(k, e.Status.ID...)
		k = append(k, '/')
		k = append(k, e.Status.Status...)
	case KindPreference:
		p := e.Preference
		k = append(k, "p/"...)
		k = append(k, e.PhoneNumberID...)
		k = append(k, '/')
		k = append(k, p.WaID...)
		k = append(k, '/')
		k = append(k, p.Value...)
		k = append(k, '/')
		k = strconv.AppendInt(k, p.Timestamp.Unix(), 10)
	case KindError:
		k = append(k, "e/"...)
		k = append(k, e.PhoneNumberID...)
		for _, d := range e.Errors {
			k = append(k, '/')
			k = strconv.AppendInt(k, int64(d.Code), 10)
			k = append(k, ':')
			k = append(k, d.Message...)
		}
	}
	if len(k) > 512 {
		k = k[:512] // Badger keys are bounded; ids are far shorter than this
	}
	return k
}
