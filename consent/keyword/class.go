package keyword

import (
	"errors"
	"fmt"
)

// Class is what a keyword asks for.
type Class uint8

// Keyword classes.
const (
	None            Class = iota
	OptOut                // STOP family: opt out of this sender/tenant scope
	OptOutAll             // STOPALL family (STOPALL, STOP ALL): every sender of the tenant
	OptIn                 // START, UNSTOP, SUBSCRIBE...
	Help                  // HELP, INFO, AIDE...
	Yes                   // YES and translations: an attestation answer; the consent layer decides if it means opt-in
	MarketingOptOut       // marketing-only opt-out, e.g. the WhatsApp "Stop promotions" button label
)

var classNames = [...]string{
	None:            "none",
	OptOut:          "opt_out",
	OptOutAll:       "opt_out_all",
	OptIn:           "opt_in",
	Help:            "help",
	Yes:             "yes",
	MarketingOptOut: "marketing_opt_out",
}

// String returns the snake_case name of c ("none", "opt_out", "opt_out_all",
// "opt_in", "help", "yes", "marketing_opt_out"), or "class(N)" when c is out
// of range.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// ParseClass is the inverse of Class.String for the classes other than None.
func ParseClass(s string) (Class, error) {
	for c := OptOut; int(c) < len(classNames); c++ {
		if classNames[c] == s {
			return c, nil
		}
	}
	return None, fmt.Errorf("keyword: unknown class %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler using ParseClass.
func (c *Class) UnmarshalText(b []byte) error {
	v, err := ParseClass(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Mode selects how much of a message must be a keyword.
type Mode uint8

// Matching modes.
const (
	// Exact requires the whole normalised message to be a keyword.
	Exact Mode = iota
	// FirstWord requires the message to begin with a keyword: the longest
	// keyword made of the message's first words wins, so "STOP ALL please"
	// is STOP ALL and "STOP please" is STOP.
	FirstWord
	// ReasonableMeans is Exact plus the FCC per-se revocation words (stop,
	// quit, end, revoke, opt out, cancel, unsubscribe) anywhere in a message
	// of at most Config.MaxWords words; such matches are OptOut with
	// Match.PerSe set. The per-se list is regulatory and is not affected by
	// Config.Remove.
	ReasonableMeans
)

var modeNames = [...]string{Exact: "exact", FirstWord: "first-word", ReasonableMeans: "reasonable-means"}

// String returns "exact", "first-word" or "reasonable-means".
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses "exact", "first-word" or "reasonable-means".
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if name == s {
			return Mode(m), nil
		}
	}
	return Exact, fmt.Errorf("keyword: unknown mode %q (want exact, first-word or reasonable-means)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler using ParseMode.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Match describes a recognised keyword. Its strings point into the Matcher's
// table and are never allocated per call.
type Match struct {
	Class     Class
	Keyword   string // canonical (normalised) keyword from the table, e.g. "ARRET", "STOP ALL"
	Lang      string // language of the keyword: "en", "fr", "de", "es", "it", "pt", "nl", "da" (or a tenant's)
	Universal bool   // STOP, START, HELP, INFO: accepted in every language; the consent layer may reply in the tenant's default language
	PerSe     bool   // matched in ReasonableMeans mode as a per-se revocation word inside a short message
}

// Entry is one keyword of a table, as given in Config.Add or returned by
// Matcher.Entries.
type Entry struct {
	Word  string // any spelling; it is normalised with Normalize
	Class Class
	Lang  string // a language tag such as "en" or "fr-CA"; required
}

// Errors returned (wrapped, and joined when there are several) by New.
var (
	ErrMandatory = errors.New("keyword: STOP, HELP and START cannot be removed")
	ErrUnknown   = errors.New("keyword: not a keyword of the table")
	ErrNotOff    = errors.New("keyword: not an off-by-default keyword (TD, NO, ALTO)")
	ErrConflict  = errors.New("keyword: keyword already in the table with another class or language")
	ErrInvalid   = errors.New("keyword: invalid configuration")
)
