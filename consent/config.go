package consent

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nyaruka/phonenumbers"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/consent/keyword"
)

// Scope says which senders an opt-out covers.
type Scope string

// Scopes. The STOPALL family always covers the whole tenant.
const (
	ScopeTenant Scope = "tenant" // all the tenant's senders (default)
	ScopeSender Scope = "sender" // only the number that received the STOP
)

// AttestationMode is how a tenant obtains opt-in.
type AttestationMode string

// Attestation modes.
const (
	// ModeImplicit (default): only opt-outs block.
	ModeImplicit AttestationMode = "implicit"
	// ModeAttestation: the first message to an unknown recipient is held and
	// an attestation prompt goes out; YES releases, STOP drops.
	ModeAttestation AttestationMode = "attestation"
	// ModeDisclaimer: a disclaimer goes out once before the first message.
	ModeDisclaimer AttestationMode = "disclaimer"
)

// Defaults of TenantConfig fields left zero.
const (
	DefaultLang                = "en"
	DefaultRegion              = "US"
	DefaultMaxPrompts          = 3
	DefaultHeldTTL             = 72 * time.Hour
	DefaultRepeatConfirmWindow = 24 * time.Hour
	DefaultArchiveAfter        = 7 * 24 * time.Hour
	DefaultMaxLength           = 480
	DefaultMaxHeld             = 100
)

// RepeatConfirmAlways, as TenantConfig.RepeatConfirmWindow, confirms every
// repeated STOP or START (no suppression window).
const RepeatConfirmAlways time.Duration = -1

// TenantConfig is one tenant's consent configuration. Zero fields take the
// documented defaults.
type TenantConfig struct {
	ID          string // required; letters, digits, '.', '_', '-'; at most 64 bytes
	Brand       string // required; replaces {brand} in templates
	HelpContact string // required; replaces {help} (support phone or e-mail)
	DefaultLang string // reply language for universal keywords; default "en"
	// DefaultRegion reads national-format numbers (ISO 3166 code); default "US".
	DefaultRegion string
	Scope         Scope // default ScopeTenant
	// CrossChannel applies opt-outs and opt-ins to every channel (sms and
	// whatsapp) instead of the one the keyword came on. With ScopeSender, an
	// opt-out is sender-scoped on the channel it came on and tenant-wide on
	// the others, whose senders are other numbers (or WhatsApp phone number
	// ids) that the original sender never matches.
	CrossChannel bool
	Attestation  AttestationMode // default ModeImplicit
	// MaxPrompts is the most attestation prompts sent to one recipient,
	// the first prompt included (default 3: one prompt, two re-prompts).
	MaxPrompts int
	// HeldTTL is how long a held message waits for YES before it fails
	// (default 72h).
	HeldTTL time.Duration
	// MaxHeld caps the held messages per recipient and channel (default 100).
	MaxHeld int
	// RepeatConfirmWindow: a repeated STOP (or START) within this window of
	// the last confirmation gets no confirmation (default 24h). A negative
	// value (RepeatConfirmAlways) turns the suppression off: every repeated
	// STOP or START is confirmed again (a retried MO, same message id, still
	// gets no second confirmation).
	RepeatConfirmWindow time.Duration
	// ArchiveAfter: a conversation.archived event is emitted this long after
	// an opt-out without re-subscription (default 7 days).
	ArchiveAfter time.Duration
	// MaxLength is the most characters of an outbound message, footer
	// included (default 480).
	MaxLength int
	Keywords  keyword.Config
	// Templates override keyword.DefaultTemplates per language, field by
	// field (an empty field keeps the default).
	Templates map[string]keyword.Templates
}

// withDefaults returns a copy with zero fields set to their defaults.
func (c TenantConfig) withDefaults() TenantConfig {
	if c.DefaultLang == "" {
		c.DefaultLang = DefaultLang
	}
	if c.DefaultRegion == "" {
		c.DefaultRegion = DefaultRegion
	}
	if c.Scope == "" {
		c.Scope = ScopeTenant
	}
	if c.Attestation == "" {
		c.Attestation = ModeImplicit
	}
	if c.MaxPrompts == 0 {
		c.MaxPrompts = DefaultMaxPrompts
	}
	if c.HeldTTL == 0 {
		c.HeldTTL = DefaultHeldTTL
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = DefaultMaxHeld
	}
	if c.RepeatConfirmWindow == 0 {
		c.RepeatConfirmWindow = DefaultRepeatConfirmWindow
	}
	if c.ArchiveAfter == 0 {
		c.ArchiveAfter = DefaultArchiveAfter
	}
	if c.MaxLength == 0 {
		c.MaxLength = DefaultMaxLength
	}
	return c
}

// FieldError is one problem of a TenantConfig field, as Validate reports
// it. Field is the Go field name, with the language for templates
// ("Templates[en].Help").
type FieldError struct {
	Tenant, Field, Msg string
}

func (e *FieldError) Error() string { return "tenant " + e.Tenant + ": " + e.Field + ": " + e.Msg }

// Validate reports every problem of the configuration at once (defaults are
// applied first, so zero fields are fine). Each error is a *FieldError
// naming the tenant and the field.
func (c TenantConfig) Validate() []error {
	_, errs := c.compile()
	return errs
}

// tenant is a validated, compiled tenant configuration.
type tenant struct {
	cfg     TenantConfig
	matcher *keyword.Matcher
	tpl     map[string]*rendered // by language
	def     *rendered            // cfg.DefaultLang
}

// rendered are a language's templates with {brand} and {help} filled in.
type rendered struct {
	lang string
	keyword.Templates
}

func (t *tenant) templates(lang string) *rendered {
	if r, ok := t.tpl[lang]; ok {
		return r
	}
	return t.def
}

// replyLang is the language of the reply to m: the keyword's language, or
// the tenant's default language when the keyword is universal (STOP) or is
// a keyword of the default language too (PARAR for a "pt" tenant, although
// the table lists it as Spanish; JA for a "da" tenant).
func (t *tenant) replyLang(m keyword.Match) string {
	if m.Universal || m.Lang == "" || m.Lang == t.cfg.DefaultLang {
		return t.cfg.DefaultLang
	}
	if t.matcher.KeywordIn(m.Keyword, t.cfg.DefaultLang) {
		return t.cfg.DefaultLang
	}
	if _, ok := t.tpl[m.Lang]; !ok {
		return t.cfg.DefaultLang
	}
	return m.Lang
}

func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (c TenantConfig) compile() (*tenant, []error) {
	c = c.withDefaults()
	var errs []error
	name := c.ID
	if name == "" {
		name = "(no id)"
	}
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Tenant: name, Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	if !validID(c.ID) {
		bad("ID", "%q must be 1–64 letters, digits, '.', '_' or '-'", c.ID)
	}
	if strings.TrimSpace(c.Brand) == "" {
		bad("Brand", "required")
	}
	if strings.TrimSpace(c.HelpContact) == "" {
		bad("HelpContact", "required")
	}
	if phonenumbers.GetCountryCodeForRegion(c.DefaultRegion) == 0 {
		bad("DefaultRegion", "%q is not a supported region code", c.DefaultRegion)
	}
	if c.Scope != ScopeTenant && c.Scope != ScopeSender {
		bad("Scope", "%q must be %q or %q", c.Scope, ScopeTenant, ScopeSender)
	}
	switch c.Attestation {
	case ModeImplicit, ModeAttestation, ModeDisclaimer:
	default:
		bad("Attestation", "%q must be implicit, attestation or disclaimer", c.Attestation)
	}
	if c.MaxPrompts < 1 || c.MaxPrompts > 10 {
		bad("MaxPrompts", "%d must be 1–10", c.MaxPrompts)
	}
	if c.HeldTTL < time.Minute {
		bad("HeldTTL", "%v must be at least 1m", c.HeldTTL)
	}
	if c.MaxHeld < 1 {
		bad("MaxHeld", "%d must be positive", c.MaxHeld)
	}
	if c.ArchiveAfter < time.Minute {
		bad("ArchiveAfter", "%v must be at least 1m", c.ArchiveAfter)
	}
	if c.MaxLength < 160 || c.MaxLength > 10000 {
		bad("MaxLength", "%d must be 160–10000", c.MaxLength)
	}
	m, err := keyword.New(c.Keywords)
	if err != nil {
		bad("Keywords", "%v", err)
	}
	t := &tenant{cfg: c, matcher: m, tpl: map[string]*rendered{}}
	langs := append([]string{c.DefaultLang}, keyword.Languages()...)
	for l := range c.Templates {
		langs = append(langs, l)
	}
	sort.Strings(langs[1:])
	for _, lang := range langs {
		if _, done := t.tpl[lang]; done {
			continue
		}
		base := keyword.DefaultTemplates(lang)
		over, overridden := c.Templates[lang]
		if base == (keyword.Templates{}) && !overridden && lang != c.DefaultLang {
			continue // no templates for this language: replies fall back to DefaultLang
		}
		r := &rendered{lang: lang, Templates: merge(base, over)}
		r.Templates = fill(r.Templates, c.Brand, c.HelpContact)
		for _, f := range templateFields(&r.Templates) {
			if *f.text == "" {
				if lang == c.DefaultLang || overridden {
					bad("Templates["+lang+"]."+f.name, "empty (no default for this language)")
				}
				continue
			}
			if err := checkOneSegment(*f.text); err != nil {
				bad("Templates["+lang+"]."+f.name, "%v: %q", err, *f.text)
			}
		}
		t.tpl[lang] = r
	}
	t.def = t.tpl[c.DefaultLang]
	return t, errs
}

type templateField struct {
	name string
	text *string
}

func templateFields(t *keyword.Templates) []templateField {
	return []templateField{
		{"OptOut", &t.OptOut}, {"MarketingOptOut", &t.MarketingOptOut}, {"OptIn", &t.OptIn}, {"Help", &t.Help},
		{"AttestationPrompt", &t.AttestationPrompt}, {"Reprompt", &t.Reprompt},
		{"AttestationConfirm", &t.AttestationConfirm}, {"Disclaimer", &t.Disclaimer},
	}
}

func merge(base, over keyword.Templates) keyword.Templates {
	b, o := templateFields(&base), templateFields(&over)
	for i := range b {
		if *o[i].text != "" {
			*b[i].text = *o[i].text
		}
	}
	return base
}

func fill(t keyword.Templates, brand, help string) keyword.Templates {
	r := strings.NewReplacer("{brand}", brand, "{help}", help)
	for _, f := range templateFields(&t) {
		*f.text = r.Replace(*f.text)
	}
	return t
}

// Config configures Open.
type Config struct {
	// Dir is the Badger directory (created if missing). Required.
	Dir string
	// Logger receives store logs (Badger's own at debug level); default
	// slog.Default().
	Logger *slog.Logger
	// Tenants are the configured tenants; at least one.
	Tenants []TenantConfig
	// Clock returns the current time; default time.Now.
	Clock func() time.Time
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// OnEvent receives events emitted by Sweep (conversation.archived,
	// message.held_expired). An error leaves the event scheduled for the
	// next Sweep. Nil drops them (they are still removed).
	OnEvent func(Event) error
	// MaxBatch is the most changes written with one fsync (default 4096).
	MaxBatch int
	// DedupeTTL is how long an MO message id is remembered (default 72h).
	DedupeTTL time.Duration
	// BadgerLowMemory uses small Badger memtables and caches (tests, tools).
	BadgerLowMemory bool
	// Replicator, when set, receives every committed change (records,
	// evidence, MO de-duplication) and the writer is answered only once it
	// is held by a quorum (replicate.go); nil: a single node.
	Replicator Replicator
	// Node names this node in the replicas it makes, so that
	// ApplyReplicated skips its own changes.
	Node string

	// badgerOptions, when set (tests only), adjusts the Badger options last.
	badgerOptions func(badger.Options) badger.Options
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() []error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("consent: Config.Dir is required"))
	}
	if len(c.Tenants) == 0 {
		errs = append(errs, errors.New("consent: Config.Tenants: at least one tenant is required"))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("consent: Config.MaxBatch %d must not be negative", c.MaxBatch))
	}
	seen := map[string]bool{}
	for _, t := range c.Tenants {
		if seen[t.ID] {
			errs = append(errs, fmt.Errorf("tenant %s: ID: duplicate", t.ID))
		}
		seen[t.ID] = true
		errs = append(errs, t.Validate()...)
	}
	return errs
}
