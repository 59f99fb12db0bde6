package whatsapp

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/optgate/optgate/internal/e164"
)

// Message is one outbound message. Exactly one of Text, Template and Buttons is set.
type Message struct {
	// PhoneNumberID is the sending business number; empty means ClientConfig.PhoneNumberID.
	PhoneNumberID string
	// To is the recipient, E.164 with or without the leading "+", or a wa_id.
	To string
	// ReplyTo is an optional wamid to quote (context.message_id).
	ReplyTo string
	// BizOpaqueCallbackData is echoed back in the status webhooks (whatsapp.md §2).
	BizOpaqueCallbackData string

	Text     *Text
	Template *Template
	Buttons  *Buttons
}

// Text is a free-form text message (inside the customer service window only).
type Text struct {
	Body       string // at most 4096 characters
	PreviewURL bool
}

// Template is an approved template message; the only kind allowed outside the window.
type Template struct {
	Name       string // lowercase letters, digits and underscore, at most 512
	Language   string // e.g. "en_US"
	Components []Component
}

// Component is a template component: "header", "body" or "button".
type Component struct {
	Type       string
	SubType    string // buttons only, e.g. "quick_reply" or "url"
	Index      int    // buttons only: zero-based position of the button
	Parameters []Parameter
}

// Parameter is one template parameter. Use the constructors for the common kinds.
type Parameter struct {
	Type string // "text", "payload", "image", "document", "video", ...
	// Name is the parameter_name of a named parameter; empty for positional ({{1}}) ones.
	Name    string
	Text    string
	Payload string
	MediaID string // image/document/video by uploaded media id (preferred)
	Link    string // image/document/video by hosted link
}

// TextParam is a positional text parameter.
func TextParam(text string) Parameter { return Parameter{Type: "text", Text: text} }

// NamedParam is a named text parameter (templates created with parameter_format "named").
func NamedParam(name, text string) Parameter { return Parameter{Type: "text", Name: name, Text: text} }

// PayloadParam is the payload of a quick-reply button.
func PayloadParam(payload string) Parameter { return Parameter{Type: "payload", Payload: payload} }

// Buttons is an interactive reply-buttons message (inside the window only).
type Buttons struct {
	Header  string // optional text header
	Body    string // required, at most 1024 characters
	Footer  string // optional, at most 60 characters
	Buttons []Button
}

// Button is one reply button.
type Button struct {
	ID    string // at most 256 characters
	Title string // at most 20 characters, unique within the message
}

// IsTemplate reports whether m is a template message (allowed outside the window).
func (m *Message) IsTemplate() bool { return m.Template != nil }

// Validate checks the limits of whatsapp.md §2 locally, before Meta sees the message.
func (m *Message) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if recipientKey(m.To) == "" {
		add("missing recipient")
	}
	n := 0
	if m.Text != nil {
		n++
		if m.Text.Body == "" {
			add("empty text body")
		} else if utf8.RuneCountInString(m.Text.Body) > 4096 {
			add("text body longer than 4096 characters")
		}
	}
	if t := m.Template; t != nil {
		n++
		if t.Name == "" || len(t.Name) > 512 {
			add("template name must have 1 to 512 characters")
		}
		for _, r := range t.Name {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
				add("template name %q: only lowercase letters, digits and underscore", t.Name)
				break
			}
		}
		if t.Language == "" {
			add("template language missing")
		}
		for i, c := range t.Components {
			switch c.Type {
			case "header", "body", "button":
			default:
				add("component %d: unknown type %q", i, c.Type)
			}
			if c.Type == "button" && c.SubType == "" {
				add("component %d: button without sub_type", i)
			}
			for j, p := range c.Parameters {
				switch p.Type {
				case "":
					add("component %d parameter %d: missing type", i, j)
				case "image", "document", "video":
					if p.MediaID == "" && p.Link == "" {
						add("component %d parameter %d: %s without a media id or link", i, j, p.Type)
					}
				case "payload":
					if p.Payload == "" {
						add("component %d parameter %d: empty payload", i, j)
					}
				}
			}
		}
	}
	if b := m.Buttons; b != nil {
		n++
		if b.Body == "" || utf8.RuneCountInString(b.Body) > 1024 {
			add("buttons body must have 1 to 1024 characters")
		}
		if utf8.RuneCountInString(b.Footer) > 60 {
			add("buttons footer longer than 60 characters")
		}
		if len(b.Buttons) < 1 || len(b.Buttons) > 3 {
			add("1 to 3 buttons required, got %d", len(b.Buttons))
		}
		seen := make(map[string]bool, len(b.Buttons))
		for i, btn := range b.Buttons {
			if btn.ID == "" || len(btn.ID) > 256 {
				add("button %d: id must have 1 to 256 characters", i)
			}
			if btn.Title == "" || utf8.RuneCountInString(btn.Title) > 20 {
				add("button %d: title must have 1 to 20 characters", i)
			}
			if seen[btn.Title] {
				add("button %d: duplicate title %q", i, btn.Title)
			}
			seen[btn.Title] = true
		}
	}
	if n != 1 {
		add("exactly one of Text, Template, Buttons must be set (got %d)", n)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrInvalidMessage, problems)
}

// Wire types for the /messages request body (whatsapp.md §2).
type (
	wireSend struct {
		MessagingProduct string           `json:"messaging_product"`
		RecipientType    string           `json:"recipient_type"`
		To               string           `json:"to"`
		Type             string           `json:"type"`
		Context          *wireCtx         `json:"context,omitempty"`
		BizOpaque        string           `json:"biz_opaque_callback_data,omitempty"`
		Text             *wireText        `json:"text,omitempty"`
		Template         *wireTemplate    `json:"template,omitempty"`
		Interactive      *wireInteractive `json:"interactive,omitempty"`
	}
	wireCtx struct {
		MessageID string `json:"message_id"`
	}
	wireText struct {
		PreviewURL bool   `json:"preview_url"`
		Body       string `json:"body"`
	}
	wireTemplate struct {
		Name       string          `json:"name"`
		Language   wireLang        `json:"language"`
		Components []wireComponent `json:"components,omitempty"`
	}
	wireLang struct {
		Code string `json:"code"`
	}
	wireComponent struct {
		Type       string      `json:"type"`
		SubType    string      `json:"sub_type,omitempty"`
		Index      *string     `json:"index,omitempty"`
		Parameters []wireParam `json:"parameters"`
	}
	wireParam struct {
		Type          string     `json:"type"`
		ParameterName string     `json:"parameter_name,omitempty"`
		Text          string     `json:"text,omitempty"`
		Payload       string     `json:"payload,omitempty"`
		Image         *wireMedia `json:"image,omitempty"`
		Document      *wireMedia `json:"document,omitempty"`
		Video         *wireMedia `json:"video,omitempty"`
	}
	wireMedia struct {
		ID   string `json:"id,omitempty"`
		Link string `json:"link,omitempty"`
	}
	wireInteractive struct {
		Type   string        `json:"type"`
		Header *wireHeader   `json:"header,omitempty"`
		Body   wireBodyText  `json:"body"`
		Footer *wireBodyText `json:"footer,omitempty"`
		Action wireAction    `json:"action"`
	}
	wireHeader struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	wireBodyText struct {
		Text string `json:"text"`
	}
	wireAction struct {
		Buttons []wireButton `json:"buttons"`
	}
	wireButton struct {
		Type  string         `json:"type"`
		Reply wireReplyTitle `json:"reply"`
	}
	wireReplyTitle struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
)

// MarshalJSON encodes m as the Graph /messages request body.
func (m *Message) MarshalJSON() ([]byte, error) {
	w := wireSend{MessagingProduct: "whatsapp", RecipientType: "individual", To: m.To, BizOpaque: m.BizOpaqueCallbackData}
	if m.ReplyTo != "" {
		w.Context = &wireCtx{MessageID: m.ReplyTo}
	}
	switch {
	case m.Text != nil:
		w.Type = "text"
		w.Text = &wireText{PreviewURL: m.Text.PreviewURL, Body: m.Text.Body}
	case m.Template != nil:
		w.Type = "template"
		t := &wireTemplate{Name: m.Template.Name, Language: wireLang{Code: m.Template.Language}}
		for _, c := range m.Template.Components {
			wc := wireComponent{Type: c.Type, SubType: c.SubType, Parameters: make([]wireParam, 0, len(c.Parameters))}
			if c.Type == "button" {
				// Meta's examples write index as a number and as a string; we send the string form.
				idx := fmt.Sprint(c.Index)
				wc.Index = &idx
			}
			for _, p := range c.Parameters {
				wp := wireParam{Type: p.Type, ParameterName: p.Name, Text: p.Text, Payload: p.Payload}
				if p.MediaID != "" || p.Link != "" {
					media := &wireMedia{ID: p.MediaID, Link: p.Link}
					switch p.Type {
					case "image":
						wp.Image = media
					case "document":
						wp.Document = media
					case "video":
						wp.Video = media
					}
				}
				wc.Parameters = append(wc.Parameters, wp)
			}
			t.Components = append(t.Components, wc)
		}
		w.Template = t
	case m.Buttons != nil:
		w.Type = "interactive"
		in := &wireInteractive{Type: "button", Body: wireBodyText{Text: m.Buttons.Body}}
		if m.Buttons.Header != "" {
			in.Header = &wireHeader{Type: "text", Text: m.Buttons.Header}
		}
		if m.Buttons.Footer != "" {
			in.Footer = &wireBodyText{Text: m.Buttons.Footer}
		}
		for _, b := range m.Buttons.Buttons {
			in.Action.Buttons = append(in.Action.Buttons, wireButton{Type: "reply", Reply: wireReplyTitle{ID: b.ID, Title: b.Title}})
		}
		w.Interactive = in
	default:
		return nil, fmt.Errorf("%w: no content", ErrInvalidMessage)
	}
	return json.Marshal(&w)
}

// recipientKey normalises a recipient or wa_id for keys: the leading "+" is dropped so that
// "+16505551234" and the wa_id "16505551234" share state, and the wa_id forms that stand for
// another E.164 number (Mexico 521, Argentina 54/549, Brazil's ninth digit, whatsapp.md §14)
// map to the same digits as consent.NormalizeRecipient's key (e164.PersonDigits).
func recipientKey(s string) string {
	return e164.PersonDigits(s)
}
