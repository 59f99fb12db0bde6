package keyword

import (
	"sync"
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

// normState is one normalisation in progress. It appends to out, which in
// Match is a stack array, and gives up (stopped) rather than exceed limit
// bytes or maxWords words.
type normState struct {
	out      []byte
	limit    int // maximum len(out); < 0 means unbounded
	maxWords int // give up before starting word maxWords+1; 0 means unbounded
	words    int // complete words in out
	inWord   bool
	stopped  bool                   // gave up: the text goes beyond limit or maxWords
	ends     [maxTrackedWords]int32 // ends[i] is len(out) after word i (first maxTrackedWords words)
}

// sep records a word separator.
func (w *normState) sep() {
	if w.inWord {
		w.inWord = false
		if w.words < len(w.ends) {
			w.ends[w.words] = int32(len(w.out))
		}
		w.words++
	}
}

// room reports whether n more bytes fit, and gives up if not.
func (w *normState) room(n int) bool {
	if w.limit >= 0 && len(w.out)+n > w.limit {
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
		w.out = append(w.out, ' ')
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
	w.out = append(w.out, c)
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
	w.out = utf8.AppendRune(w.out, r)
}

// run normalises s into w. It is generic so that Match and MatchBytes share
// one allocation-free ASCII loop.
func run[T string | []byte](w *normState, s T) {
	for i := 0; i < len(s); i++ {
		switch c := asciiTab[s[i]]; c {
		case tabSep:
			w.sep()
		case tabDrop:
		case tabHigh:
			// NFKD never changes ASCII and never reorders across an ASCII
			// starter, so the slow path can start here.
			runSlow(w, s[i:])
			return
		default:
			if !w.put(c) {
				return
			}
		}
	}
	w.sep()
}

// iterPool holds norm.Iters (about 3 KiB each) for the non-ASCII path; the
// iterator would otherwise escape to the heap on every call.
var iterPool = sync.Pool{New: func() any { return new(norm.Iter) }}

// runSlow normalises non-ASCII text through NFKD.
func runSlow[T string | []byte](w *normState, s T) {
	it := iterPool.Get().(*norm.Iter)
	switch v := any(s).(type) {
	case string:
		it.InitString(norm.NFKD, v)
	case []byte:
		it.Init(norm.NFKD, v)
	}
	for !it.Done() && !w.stopped {
		seg := it.Next()
		for j := 0; j < len(seg) && !w.stopped; {
			r, n := utf8.DecodeRune(seg[j:])
			j += n
			w.rune(r, 0)
		}
	}
	// Drop the reference to the caller's text before pooling (an empty
	// string would leave the old source in place).
	it.InitString(norm.NFKD, " ")
	iterPool.Put(it)
	if !w.stopped {
		w.sep()
	}
}

// rune handles one rune of NFKD output (or, at depth > 0, of the
// decomposition of an upper-cased rune).
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
	switch {
	case r == '\u2019' || r == '\u02bc' || r == '\u2018':
		return // apostrophes, like '
	case unicode.In(r, unicode.M, unicode.Cf):
		return // accents and other marks; zero-width and format characters
	case unicode.IsLetter(r) || unicode.IsNumber(r):
	default:
		w.sep() // punctuation, symbols, emoji, spaces, invalid bytes
		return
	}
	u := unicode.ToUpper(r)
	if u != r {
		var b [utf8.UTFMax]byte
		n := utf8.EncodeRune(b[:], u)
		if d := norm.NFKD.Properties(b[:n]).Decomposition(); d != nil {
			if depth >= 2 {
				w.sep() // never seen in practice; keeps the output stable
				return
			}
			for j := 0; j < len(d); {
				rr, k := utf8.DecodeRune(d[j:])
				j += k
				w.rune(rr, depth+1)
			}
			return
		}
	}
	w.putRune(u)
}

// Normalize appends the normalised form of s to dst and returns the extended
// slice. The rules are in the package documentation; the result is what
// Match compares with its table, and Normalize(nil, Normalize(nil, s)) equals
// Normalize(nil, s).
func Normalize(dst []byte, s string) []byte {
	w := normState{out: dst, limit: -1}
	run(&w, s)
	return w.out
}
