package api

// The WhatsApp content of POST /v1/messages: the wire types of its
// "template" and "interactive" objects, which the core carries on its
// messages as they are (gateway.WAContent is WAContent).

// WAContent is the WhatsApp template of a message sent over the HTTP API
// (the "template" object of POST /v1/messages), or its reply buttons.
type WAContent struct {
	// Interactive is the "interactive" object of POST /v1/messages, set
	// instead of a template (TemplateName is then empty).
	Interactive *WAInteractive `json:"-"`

	TemplateName string   `json:"name,omitempty"`
	Language     string   `json:"language,omitempty"`
	Params       []string `json:"params,omitempty"` // body {{1}}, {{2}}... in order
	// NamedParams are the body's named parameters; they are sent in name order.
	NamedParams map[string]string `json:"named_params,omitempty"`
	// HeaderParams are the text parameters of a text header.
	HeaderParams []string `json:"header_params,omitempty"`
	// HeaderMedia is the media of an image, video or document header.
	HeaderMedia *WAMedia `json:"header_media,omitempty"`
	// Buttons are the parameters of the template's buttons.
	Buttons []WAButton `json:"buttons,omitempty"`
}

// WAMedia is a template header's media: an uploaded media id (preferred)
// or a hosted link.
type WAMedia struct {
	Type string `json:"type"` // image, video or document
	ID   string `json:"id,omitempty"`
	Link string `json:"link,omitempty"`
}

// WAButton is the parameter of one template button.
type WAButton struct {
	Index   int    `json:"index"`              // the button's zero-based position
	SubType string `json:"sub_type,omitempty"` // quick_reply (default) or url
	Payload string `json:"payload,omitempty"`  // quick_reply: echoed in the tap's webhook
	Text    string `json:"text,omitempty"`     // url: the dynamic suffix of the URL
}

// WAInteractive is the "interactive" object of POST /v1/messages: a
// WhatsApp reply-buttons message (whatsapp.md §2).
type WAInteractive struct {
	Body    string          `json:"body"`    // 1 to 1024 characters
	Buttons []WAReplyButton `json:"buttons"` // 1 to 3
}

// WAReplyButton is one reply button; the id comes back in the tap's
// webhook.
type WAReplyButton struct {
	ID    string `json:"id"`    // 1 to 256 characters, unique in the message
	Title string `json:"title"` // 1 to 20 characters, unique in the message
}
