package keyword

import (
	"slices"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Values of asciiTab other than an output byte.
const (
	tabSep  = 0 // separates words
	tabDrop = 1 // removed without separating (apostrophe)
	tabHigh = 2 // first byte of a non-ASCII sequence (or an invalid byte)
)

// asciiTab maps an input byte to its normalised output byte (upper-case
// letter or digit) or to one of the tab* values.
var asciiTab = func() (t [256]byte) {
	for c := range 256 {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = tabHigh
		case 'a' <= c && c <= 'z':
			t[c] = byte(c - 'a' + 'A')
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = byte(c)
		case c == '\'':
			t[c] = tabDrop
		default:
			t[c] = tabSep
		}
	}
	return t
}()

// maxTrackedWords is how many word ends a normState records; it bounds
// Config.MaxWords.
const maxTrackedWords = 32

// normState is one normalisation in progress. It writes into the fixed
// slice out and gives up (stopped) rather than exceed len(out) bytes or
// maxWords words. It never reassigns out: that keeps Match's stack buffer
// from escaping to the heap.
type normState struct {
	out      []byte
	n        int // bytes written to out
	maxWords int // give up before starting word maxWords+1; 0 means unbounded
	words    int // complete words in out[:n]
	inWord   bool
	stopped  bool                   // gave up: the text goes beyond len(out) or maxWords
	ends     [maxTrackedWords]int32 // ends[i] is n after word i (first maxTrackedWords words)
}

// sep records a word separator.
func (w *normState) sep() {
	if w.inWord {
		w.inWord = false
		if w.words < len(w.ends) {
			w.ends[w.words] = int32(w.n)
		}
		w.words++
	}
}

// room reports whether k more bytes fit, and gives up if not.
func (w *normState) room(k int) bool {
	if w.n+k > len(w.out) {
		w.stopped = true
		return false
	}
	return true
}

// startWord writes the space before a word that is not the first.
func (w *normState) startWord() bool {
	if w.words > 0 {
		if w.maxWords > 0 && w.words >= w.maxWords {
			w.stopped = true
			return false
		}
		if !w.room(1) {
			return false
		}
		w.out[w.n] = ' '
		w.n++
	}
	w.inWord = true
	return true
}

// put appends one byte of a word.
func (w *normState) put(c byte) bool {
	if !w.inWord && !w.startWord() {
		return false
	}
	if !w.room(1) {
		return false
	}
	w.out[w.n] = c
	w.n++
	return true
}

// putRune appends one non-ASCII rune of a word.
func (w *normState) putRune(r rune) {
	if !w.inWord && !w.startWord() {
		return
	}
	if !w.room(utf8.RuneLen(r)) {
		return
	}
	w.n += utf8.EncodeRune(w.out[w.n:], r)
}

// result is the normalised text written so far.
func (w *normState) result() []byte { return w.out[:w.n] }

// run normalises s into w. It is generic so that Match and MatchBytes share
// one allocation-free loop.
func run[T string | []byte](w *normState, s T) {
	for i := 0; i < len(s); {
		switch c := asciiTab[s[i]]; c {
		case tabSep:
			w.sep()
		case tabDrop:
		case tabHigh:
			r, n := decodeRune(s, i)
			if f := fastRune(r); f != nil && f.kind != fastSlow {
				w.fast(f)
			} else {
				w.rune(r, 0)
			}
			i += n
			if w.stopped {
				return
			}
			continue
		default:
			if !w.put(c) {
				return
			}
		}
		i++
	}
	w.sep()
}

// decodeRune decodes the rune at s[i:].
func decodeRune[T string | []byte](s T, i int) (rune, int) {
	switch v := any(s).(type) { // does not escape: no allocation
	case string:
		return utf8.DecodeRuneInString(v[i:])
	case []byte:
		return utf8.DecodeRune(v[i:])
	}
	panic("unreachable")
}

// rune handles one non-ASCII rune (or an ASCII one from a decomposition).
//
// Decomposing rune by rune and dropping every mark gives the same result as
// NFKD of the whole text followed by dropping the marks: NFKD only adds
// canonical reordering, which moves non-starters only, and every non-starter
// is a mark. (Hangul syllables, which x/text does not decompose rune by
// rune, stay composed.)
func (w *normState) rune(r rune, depth int) {
	if r < utf8.RuneSelf {
		switch c := asciiTab[r]; c {
		case tabSep:
			w.sep()
		case tabDrop:
		default:
			w.put(c)
		}
		return
	}
	if r == utf8.RuneError || depth > 3 { // invalid UTF-8 (or U+FFFD, a symbol)
		w.sep()
		return
	}
	var b [utf8.UTFMax]byte
	n := utf8.EncodeRune(b[:], r)
	if d := norm.NFKD.Properties(b[:n]).Decomposition(); d != nil {
		for j := 0; j < len(d); {
			rr, k := utf8.DecodeRune(d[j:])
			j += k
			w.rune(rr, depth+1)
		}
		return
	}
	switch {
	case unicode.IsLetter(r) && r != '\u02bc' || unicode.IsNumber(r):
		if u := unicode.ToUpper(r); u != r {
			w.rune(u, depth+1) // the upper case may have a decomposition
			return
		}
		w.putRune(r)
	case r == '\u2019' || r == '\u02bc' || r == '\u2018':
		// apostrophes, like '
	case unicode.In(r, unicode.M, unicode.Cf):
		// accents and other marks; zero-width and format characters
	default:
		w.sep() // punctuation, symbols, emoji, spaces
	}
}

// Kinds of fastEntry.
const (
	fastSlow = iota // not precomputed: use rune
	fastSep
	fastDrop
	fastWord
)

// fastEntry is the precomputed effect of one rune: a separator, nothing, or
// word bytes.
type fastEntry struct {
	kind uint8
	n    uint8
	b    [6]byte
}

// Precomputed ranges: Latin-1 and Latin Extended (accented letters), general
// punctuation (quotes, dashes, zero-width characters) and the half- and
// full-width forms. The tables are filled by rune itself, so both paths agree.
var (
	fastLatin [0x300 - 0x80]fastEntry
	fastPunct [0x2070 - 0x2000]fastEntry
	fastWide  [0xfff0 - 0xff00]fastEntry
)

func init() {
	fill := func(tab []fastEntry, lo rune) {
		for i := range tab {
			var buf [16]byte
			w := normState{out: buf[:], inWord: true}
			w.rune(lo+rune(i), 0)
			e := &tab[i]
			switch {
			case w.stopped:
			case w.words == 1 && w.n == 0 && !w.inWord:
				e.kind = fastSep
			case w.words == 0 && w.n == 0 && w.inWord:
				e.kind = fastDrop
			case w.words == 0 && w.inWord && w.n <= len(e.b):
				e.kind, e.n = fastWord, uint8(w.n)
				copy(e.b[:], buf[:w.n])
			}
		}
	}
	fill(fastLatin[:], 0x80)
	fill(fastPunct[:], 0x2000)
	fill(fastWide[:], 0xff00)
}

// fastRune returns the precomputed entry for r, or nil.
func fastRune(r rune) *fastEntry {
	switch {
	case r < 0x300:
		return &fastLatin[r-0x80]
	case 0x2000 <= r && r < 0x2070:
		return &fastPunct[r-0x2000]
	case 0xff00 <= r && r < 0xfff0:
		return &fastWide[r-0xff00]
	}
	return nil
}

// fast applies a precomputed entry.
func (w *normState) fast(f *fastEntry) {
	switch f.kind {
	case fastSep:
		w.sep()
	case fastWord:
		if !w.inWord && !w.startWord() {
			return
		}
		if !w.room(int(f.n)) {
			return
		}
		w.n += copy(w.out[w.n:], f.b[:f.n])
	}
}

// Normalize appends the normalised form of s to dst and returns the extended
// slice. The rules are in the package documentation; the result is what
// Match compares with its table. Normalize is idempotent: normalising its
// output returns the same text.
func Normalize(dst []byte, s string) []byte {
	// Most text shrinks or keeps its length; NFKD can expand, so retry with
	// more room when the first guess was short.
	if s == "" {
		return dst
	}
	need := len(s) + 8
	for {
		if cap(dst)-len(dst) < need {
			dst = slices.Grow(dst, need)
		}
		w := normState{out: dst[len(dst):cap(dst)]}
		run(&w, s)
		if !w.stopped {
			return dst[:len(dst)+w.n]
		}
		need = 2 * (cap(dst) - len(dst))
	}
}
