package keyword

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Limits on keywords and configuration.
const (
	// DefaultMaxWords is Config.MaxWords when it is zero.
	DefaultMaxWords = 4
	// MaxKeywordLen is the longest normalised keyword New accepts, in bytes.
	MaxKeywordLen = 64
	// MaxKeywordWords is the most words a keyword may have.
	MaxKeywordWords = 4
	// bufSize is the stack buffer Match normalises into; it bounds the
	// normalised text ReasonableMeans considers.
	bufSize = 256
)

// Config selects a Matcher's mode and a tenant's changes to the default
// table. The zero Config gives the default table in Exact mode. New applies
// Enable, then Remove, then Add; words in all three are normalised first, so
// "arrêt" removes ARRET.
type Config struct {
	// Mode is Exact (default), FirstWord or ReasonableMeans.
	Mode Mode
	// MaxWords is the longest message, in words, that ReasonableMeans
	// searches for a per-se revocation word. 0 means DefaultMaxWords (4);
	// at most 32.
	MaxWords int
	// Add lists per-tenant keywords. A word already in the table must keep
	// its class and language (remove it first to change them).
	Add []Entry
	// Remove lists default keywords to drop; removing STOP, HELP or START
	// is an error, as is removing a word that is not in the table.
	Remove []string
	// Enable switches on off-by-default keywords: TD, NO, ALTO. FIN and
	// ENDE, on by default now, are accepted and change nothing.
	Enable []string
}

// entry is a table value. keyword and lang are shared by every Match.
type entry struct {
	class     Class
	keyword   string
	lang      string
	universal bool
	// langs has bit i set when the word is a keyword of this class in
	// languages[i] too (PARAR: es and pt; JA: de, nl and da).
	langs uint16
}

// langBit is the bit of a default language in entry.langs, or 0.
func langBit(lang string) uint16 {
	for i, l := range languages {
		if l == lang {
			return 1 << i
		}
	}
	return 0
}

// Matcher recognises keywords. It is immutable after New and safe for
// concurrent use.
type Matcher struct {
	mode        Mode
	maxWords    int              // ReasonableMeans: longest message with a per-se word
	table       map[string]entry // normalised keyword → entry; read-only
	maxKeyLen   int              // longest key in table, in bytes
	maxKeyWords int              // most words of a key in table
	filter      [16]uint64       // filterBit of every key: skips most map lookups of non-keywords
}

// filterBit hashes a key's length and first and last bytes into 0..1023.
func filterBit(key []byte) uint {
	return (uint(len(key))*131 + uint(key[0])*31 + uint(key[len(key)-1])) & 1023
}

// New builds a Matcher from the default tables and cfg. It reports every
// problem in cfg at once, each wrapping one of the Err* sentinels.
func New(cfg Config) (*Matcher, error) {
	var errs []error
	m := &Matcher{
		mode:     cfg.Mode,
		maxWords: cfg.MaxWords,
		table:    make(map[string]entry, len(defaults)+len(cfg.Add)),
	}
	if cfg.Mode > ReasonableMeans {
		errs = append(errs, fmt.Errorf("%w: mode %d", ErrInvalid, cfg.Mode))
	}
	switch {
	case cfg.MaxWords == 0:
		m.maxWords = DefaultMaxWords
	case cfg.MaxWords < 0 || cfg.MaxWords > maxTrackedWords:
		errs = append(errs, fmt.Errorf("%w: max words %d not in 1..%d", ErrInvalid, cfg.MaxWords, maxTrackedWords))
	}
	for _, d := range defaults {
		m.addDefault(d)
	}

	for _, w := range cfg.Enable {
		key := normString(w)
		i := slices.IndexFunc(offByDefault, func(d def) bool { return d.word == key })
		if i < 0 && slices.Contains(formerlyOff, key) {
			continue
		}
		if i < 0 {
			errs = append(errs, fmt.Errorf("enable %q: %w", w, ErrNotOff))
			continue
		}
		m.addDefault(offByDefault[i])
	}
	for _, w := range cfg.Remove {
		key := normString(w)
		switch {
		case slices.Contains(mandatory, key):
			errs = append(errs, fmt.Errorf("remove %q: %w", w, ErrMandatory))
		case m.table[key].class == None:
			errs = append(errs, fmt.Errorf("remove %q: %w", w, ErrUnknown))
		default:
			delete(m.table, key)
		}
	}
	for _, a := range cfg.Add {
		key := normString(a.Word)
		nwords := strings.Count(key, " ") + 1
		switch {
		case a.Class == None || a.Class > MarketingOptOut:
			errs = append(errs, fmt.Errorf("%w: add %q: class %v", ErrInvalid, a.Word, a.Class))
		case !validLang(a.Lang):
			errs = append(errs, fmt.Errorf("%w: add %q: language %q (want a tag such as \"en\" or \"fr-CA\")", ErrInvalid, a.Word, a.Lang))
		case key == "":
			errs = append(errs, fmt.Errorf("%w: add %q: no letters or digits", ErrInvalid, a.Word))
		case len(key) > MaxKeywordLen || nwords > MaxKeywordWords:
			errs = append(errs, fmt.Errorf("%w: add %q: longer than %d bytes or %d words", ErrInvalid, a.Word, MaxKeywordLen, MaxKeywordWords))
		default:
			if e, ok := m.table[key]; ok {
				if e.class != a.Class || e.lang != a.Lang {
					errs = append(errs, fmt.Errorf("add %q as %v/%s: %w (%v/%s)", a.Word, a.Class, a.Lang, ErrConflict, e.class, e.lang))
				}
				continue
			}
			m.table[key] = entry{class: a.Class, keyword: key, lang: a.Lang}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for k := range m.table {
		b := filterBit([]byte(k))
		m.filter[b/64] |= 1 << (b % 64)
		m.maxKeyLen = max(m.maxKeyLen, len(k))
		m.maxKeyWords = max(m.maxKeyWords, strings.Count(k, " ")+1)
	}
	return m, nil
}

// addDefault adds d unless its normalised word is already in the table (the
// first language wins).
func (m *Matcher) addDefault(d def) {
	key := normString(d.word)
	if e, ok := m.table[key]; ok {
		if e.class == d.class { // the word is this keyword in d.lang too
			e.langs |= langBit(d.lang)
			m.table[key] = e
		}
		return
	}
	m.table[key] = entry{class: d.class, keyword: key, lang: d.lang, universal: d.universal, langs: langBit(d.lang)}
}

// KeywordIn reports whether the canonical keyword (Match.Keyword) belongs
// to lang ("pt", or a tag such as "pt-BR"), not only to Match.Lang: a word
// shared by several languages (PARAR, CANCELAR, INICIAR, SI, JA, ...) is
// listed under the first of them, and the consent layer prefers the
// tenant's default language for its reply when the word is one of its
// keywords. Not for the hot path (a map lookup).
func (m *Matcher) KeywordIn(keyword, lang string) bool {
	e, ok := m.table[keyword]
	if !ok || lang == "" {
		return false
	}
	if e.lang == lang {
		return true
	}
	base := lang
	if i := strings.IndexAny(base, "-_"); i >= 0 {
		base = base[:i]
	}
	return e.langs&langBit(strings.ToLower(base)) != 0
}

// normString returns Normalize(s) as a string (configuration time only).
func normString(s string) string { return string(Normalize(nil, s)) }

// validLang accepts tags like "en", "pt-BR" or "es-419".
func validLang(s string) bool {
	if len(s) < 2 || len(s) > 16 {
		return false
	}
	for i, c := range []byte(s) {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && !(i > 1 && (c == '-' || '0' <= c && c <= '9')) {
			return false
		}
	}
	return true
}

var defaultMatcher = sync.OnceValue(func() *Matcher {
	m, err := New(Config{})
	if err != nil {
		panic("keyword: default table: " + err.Error())
	}
	return m
})

// Default returns the shared Matcher for the default tables in Exact mode.
func Default() *Matcher { return defaultMatcher() }

// Mode returns the matching mode.
func (m *Matcher) Mode() Mode { return m.mode }

// Entries returns the active table sorted by keyword, with each Word in
// canonical (normalised) form, e.g. for a configuration digest.
func (m *Matcher) Entries() []Entry {
	out := make([]Entry, 0, len(m.table))
	for _, e := range m.table {
		out = append(out, Entry{Word: e.keyword, Class: e.class, Lang: e.lang})
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Word, b.Word) })
	return out
}

// Match reports whether text is a keyword under m's mode. It never panics,
// does not allocate (ASCII text is asserted by TestMatchAllocs) and retains
// nothing of text.
func (m *Matcher) Match(text string) (Match, bool) { return match(m, text) }

// MatchBytes is Match for a byte slice; b is not retained.
func (m *Matcher) MatchBytes(b []byte) (Match, bool) { return match(m, b) }

func match[T string | []byte](m *Matcher, text T) (Match, bool) {
	var buf [bufSize]byte
	w := normState{out: buf[:]}
	switch m.mode {
	case Exact:
		w.out, w.maxWords = buf[:m.maxKeyLen], m.maxKeyWords
	case FirstWord:
		w.maxWords = m.maxKeyWords
	default:
		w.maxWords = max(m.maxWords, m.maxKeyWords)
	}
	run(&w, text)

	switch m.mode {
	case Exact:
		if !w.stopped {
			return m.lookup(w.result())
		}
	case FirstWord:
		// Longest first: "STOP ALL please" is STOP ALL, not STOP.
		for n := min(w.words, m.maxKeyWords); n > 0; n-- {
			if r, ok := m.lookup(w.out[:w.ends[n-1]]); ok {
				return r, true
			}
		}
	default:
		if w.stopped {
			break
		}
		if r, ok := m.lookup(w.result()); ok {
			return r, true
		}
		if w.words <= m.maxWords {
			return m.searchPerSe(&w)
		}
	}
	return Match{}, false
}

func (m *Matcher) lookup(key []byte) (Match, bool) {
	if len(key) == 0 {
		return Match{}, false
	}
	if b := filterBit(key); m.filter[b/64]&(1<<(b%64)) == 0 {
		return Match{}, false
	}
	e, ok := m.table[string(key)] // no allocation: map index by string(bytes)
	if !ok {
		return Match{}, false
	}
	return Match{Class: e.class, Keyword: e.keyword, Lang: e.lang, Universal: e.universal}, true
}

// searchPerSe looks for a per-se revocation word, or two-word phrase, in the
// complete words of w.
func (m *Matcher) searchPerSe(w *normState) (Match, bool) {
	start := 0
	for i := 0; i < w.words; i++ {
		for j := i; j < w.words && j < i+2; j++ {
			if d := perSeWord(w.out[start:w.ends[j]]); d != nil {
				return Match{Class: d.class, Keyword: d.word, Lang: d.lang, Universal: d.universal, PerSe: true}, true
			}
		}
		start = int(w.ends[i]) + 1
	}
	return Match{}, false
}
