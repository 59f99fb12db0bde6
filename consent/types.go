package consent

import (
	"time"

	"github.com/optgate/optgate/consent/keyword"
)

// Channel names accepted by the API.
const (
	ChannelSMS      = "sms"
	ChannelWhatsApp = "whatsapp"
)

// channels lists every channel, in a fixed order (used for cross-channel changes).
var channels = [...]string{ChannelSMS, ChannelWhatsApp}

func validChannel(ch string) bool { return ch == ChannelSMS || ch == ChannelWhatsApp }

// State is the consent state of one recipient for one tenant, channel and scope.
type State uint8

// States. The zero value is StateNone.
const (
	StateNone     State = iota // no record: nothing known
	StateOptedIn               // opted in, with evidence in the log
	StatePending               // attestation prompt sent, waiting for YES or STOP
	StateOptedOut              // opted out (see Status for the class)
)

var stateNames = [...]string{"none", "opted_in", "pending", "opted_out"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "invalid"
}

func parseState(s string) (State, bool) {
	for i, n := range stateNames {
		if n == s {
			return State(i), true
		}
	}
	return 0, false
}

// Category is the content class of an outbound message.
type Category uint8

// Categories. A plain opt-out blocks every category; a marketing-only opt-out
// blocks CategoryMarketing only.
const (
	CategoryTransactional Category = iota // utility, authentication, conversation
	CategoryMarketing                     // marketing / promotional content
)

func (c Category) String() string {
	if c == CategoryMarketing {
		return "marketing"
	}
	return "transactional"
}

// Reason says why Check refused a message. ReasonNone goes with Allow.
type Reason uint8

// Reasons, with the names used in metrics and logs.
const (
	ReasonNone               Reason = iota
	ReasonOptedOut                  // "opted_out": STOP (or operator/import opt-out)
	ReasonOptedOutAll               // "opted_out_all": STOPALL family, whole tenant
	ReasonMarketingOptOut           // "marketing_opt_out": marketing message, marketing-only opt-out
	ReasonAttestationPending        // "attestation_pending": prompt sent, no answer yet
	ReasonNoConsent                 // "no_consent": attestation tenant, unknown recipient
	numReasons
)

var reasonNames = [...]string{"", "opted_out", "opted_out_all", "marketing_opt_out", "attestation_pending", "no_consent"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "invalid"
}

// Action tells the gateway what to do with an outbound message after Check.
type Action uint8

// Actions.
const (
	// ActionSend: send the message (Allow is true).
	ActionSend Action = iota
	// ActionBlock: refuse the message (Allow is false, Reason says why).
	ActionBlock
	// ActionHold: attestation tenant; call Store.Hold with the message. Hold
	// stores it durably and returns the attestation prompt to send when one is
	// due. Allow is false.
	ActionHold
	// ActionDisclaimFirst: disclaimer tenant, first message; call
	// Store.Disclaim and send the text it returns (if any) before the message.
	// Allow is true.
	ActionDisclaimFirst
)

var actionNames = [...]string{"send", "block", "hold", "disclaim_first"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "invalid"
}

// Decision is the answer of Check.
type Decision struct {
	Allow  bool   // the message may go out (possibly after Prompt)
	Reason Reason // why not, when Allow is false
	Action Action // what the gateway does next
	// Prompt is the text that would go first (attestation prompt or
	// disclaimer) in the tenant's default language. It is informative: the
	// authoritative text, and whether it is still due, come from Hold or
	// Disclaim, which make the step durable and race-free.
	Prompt string
}

// Source says where a consent change came from (evidence log).
type Source string

// Sources.
const (
	SourceKeyword            Source = "keyword"
	SourceAttestation        Source = "attestation"
	SourceOperator           Source = "operator"
	SourceImport             Source = "import"
	SourceAPI                Source = "api"
	SourceWhatsAppPreference Source = "whatsapp_preference"
	SourceWhatsAppFailure    Source = "whatsapp_failure"
	// SourceSimulator marks a change made by a message the built-in SMSC
	// simulator made up (POST /v1/simulator/mo): no handset sent it.
	SourceSimulator Source = "simulator"
)

// ReplyKind says what a reply is.
type ReplyKind string

// Reply kinds.
const (
	ReplyOptOut             ReplyKind = "opt_out_confirmation"
	ReplyMarketingOptOut    ReplyKind = "marketing_opt_out_confirmation" // marketing-only opt-out
	ReplyOptIn              ReplyKind = "opt_in_confirmation"
	ReplyHelp               ReplyKind = "help"
	ReplyAttestationPrompt  ReplyKind = "attestation_prompt"
	ReplyReprompt           ReplyKind = "reprompt"
	ReplyAttestationConfirm ReplyKind = "attestation_confirmation"
	ReplyDisclaimer         ReplyKind = "disclaimer"
)

// Reply is a message the gateway must send to the recipient, from Sender,
// at once. Replies never carry marketing and never get a footer.
//
// A reply is stored, in the same synced change as the consent transition
// that produced it, as pending until the gateway reports it sent with
// ReplySent; PendingReplies lists those a crash left unsent. So a
// confirmation survives a crash even though a retried MO is a duplicate
// that produces no second one.
type Reply struct {
	ID        string // unique; pass to ReplySent once the carrier accepted the reply
	Tenant    string
	Created   time.Time
	Kind      ReplyKind
	Text      string
	Lang      string
	Channel   string
	Sender    string // our number to send from (the one that received the MO)
	Recipient string // E.164
}

// HeldMessage is an outbound business message held while an attestation is
// pending. Payload is opaque to this package.
type HeldMessage struct {
	ID        string
	Tenant    string
	Channel   string
	Sender    string
	Recipient string // E.164
	Payload   []byte
	HeldAt    time.Time
	ExpiresAt time.Time
}

// Event types delivered to the tenant (Result.Events and Config.OnEvent).
const (
	EventOptedOut          = "consent.opted_out"
	EventOptedIn           = "consent.opted_in"
	EventMarketingOptedOut = "consent.marketing_opted_out"
	EventMarketingResumed  = "consent.marketing_resumed"
	EventArchived          = "conversation.archived"
	EventHeldExpired       = "message.held_expired"
)

// Event is a notification for a tenant. ID is stable: a consumer that sees
// the same ID twice (possible after a crash, see Sweep) must treat it as one.
type Event struct {
	ID        string
	Type      string
	Tenant    string
	Channel   string
	Sender    string // the scope sender; empty for tenant-wide
	Recipient string // E.164
	Time      time.Time
	Held      *HeldMessage // for EventHeldExpired
}

// InboundMessage is an MO (mobile-originated) message.
type InboundMessage struct {
	Tenant     string
	Channel    string
	Sender     string // our number (or WhatsApp phone number ID) that received it
	Recipient  string // the user who wrote it (any format; normalised to E.164)
	Text       string
	MessageID  string // SMSC / WhatsApp message id; used to drop retried duplicates
	ReceivedAt time.Time
	// Simulated marks a message made up by the built-in SMSC simulator:
	// its changes are recorded with SourceSimulator, never as a keyword or
	// attestation a handset sent.
	Simulated bool
	// WaID and UserID are the WhatsApp sender as Meta wrote it (wa_id,
	// business-scoped user id), kept in the evidence as received.
	WaID, UserID string
	// NotBefore, when set, is the event time of the last consent change
	// applied to the recipient from the same source of webhooks: an opt-in
	// (START, YES) with ReceivedAt before it changes nothing (Result.Stale),
	// so that webhooks delivered out of order cannot undo a newer opt-out.
	// Opt-outs are applied whatever their time.
	NotBefore time.Time
	// Reading names how Text was decoded from the carrier's octets, for the
	// evidence (for SMS: "gsm7", "ia5", "latin1", "ucs2", with the label
	// when an SMSC override changed it); empty when not known.
	Reading string
	// AltText, when not empty, is a second reading of the same octets
	// (GSM 03.38 octets labelled IA5, Latin-1 labelled GSM, ...), named by
	// AltReading. It is screened for a keyword only when Text has none;
	// Text stays what is forwarded and logged.
	AltText    string
	AltReading string
}

// Result is what Inbound (and the operator calls) did.
type Result struct {
	Recipient string        // normalised E.164
	Match     keyword.Match // the keyword, when Matched
	Matched   bool
	// Duplicate is true when MessageID was already processed: nothing was
	// applied and no reply is produced.
	Duplicate bool
	Old, New  State // effective state for (tenant, channel, sender, recipient)
	Changed   bool  // a consent change was stored
	Replies   []Reply
	Released  []HeldMessage // send these now (attestation accepted)
	Dropped   []HeldMessage // fail these (recipient opted out)
	Events    []Event
	// Forward is true when the message is not consent traffic and should
	// reach the tenant's application.
	Forward bool
	// Stale is true when an opt-in was older than InboundMessage.NotBefore
	// and was not applied.
	Stale bool
}

// Evidence is one entry of the append-only evidence log.
type Evidence struct {
	Time          time.Time `json:"time"`
	Tenant        string    `json:"tenant"`
	Channel       string    `json:"channel"`
	Sender        string    `json:"sender,omitempty"` // our number involved, if any
	Scope         string    `json:"scope"`            // "tenant" or the sender the change applies to
	Recipient     string    `json:"recipient"`
	Old           string    `json:"old"`
	New           string    `json:"new"`
	Class         string    `json:"class,omitempty"` // all, all_senders, marketing
	Source        Source    `json:"source"`
	Keyword       string    `json:"keyword,omitempty"`    // as received (trimmed)
	Normalized    string    `json:"normalized,omitempty"` // as normalised by the keyword engine
	Lang          string    `json:"lang,omitempty"`
	Text          string    `json:"text,omitempty"` // raw text, truncated to 1 KiB
	MessageID     string    `json:"message_id,omitempty"`
	Operator      string    `json:"operator,omitempty"`
	ConsentSource string    `json:"consent_source,omitempty"` // stated source (operator opt-in, import)
	ProofRef      string    `json:"proof_ref,omitempty"`
	Detail        string    `json:"detail,omitempty"`
	Received      time.Time `json:"received,omitzero"` // MO receive time (carrier/WhatsApp)
	WaID          string    `json:"wa_id,omitempty"`   // WhatsApp sender id as Meta sent it
	UserID        string    `json:"user_id,omitempty"` // WhatsApp business-scoped user id, as sent
	// MatchMode says how the keyword was recognised (source keyword or
	// attestation): "exact", "first-word", "reasonable-means" (the whole
	// message was a keyword) or "per-se" (reasonable-means: a per-se
	// revocation word inside a short message; Detail quotes the message).
	MatchMode string `json:"match_mode,omitempty"`
	// Decoding is the reading of the carrier's octets the keyword was
	// matched in (InboundMessage.Reading or AltReading), e.g. "ia5" or
	// "gsm7 (data_coding 1 holds gsm7 octets)"; empty when not known.
	Decoding string `json:"decoding,omitempty"`
}

// Status is the stored consent of one recipient on one channel of a tenant.
type Status struct {
	Recipient string
	Tenant    Record            // the tenant-wide record
	Senders   map[string]Record // sender-scoped records, by sender
}

// Record is one stored consent record.
type Record struct {
	State       State
	OptedOut    bool // plain opt-out (blocks every category)
	OptedOutAll bool // came from the STOPALL family
	Marketing   bool // marketing-only opt-out by keyword, operator or import
	MarketingWA bool // marketing-only opt-out set by WhatsApp (preference or 131050)
	Disclaimed  bool // disclaimer sent (disclaimer tenants)
	Prompts     int  // attestation prompts sent
	Lang        string
	Updated     time.Time
	OptedOutAt  time.Time
	LastConfirm time.Time
	ArchiveDue  time.Time
}
