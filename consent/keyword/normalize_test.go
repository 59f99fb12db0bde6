package keyword

import (
	"strings"
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"STOP", "STOP"},
		{"stop", "STOP"},
		{"STOP.", "STOP"},
		{"stop!!", "STOP"},
		{"  Stop 🙏 ", "STOP"},
		{"«STOP»", "STOP"},
		{"„Stopp“", "STOPP"},
		{"ＳＴＯＰ", "STOP"},
		{"ｓｔｏｐ\u3000ａｌｌ", "STOP ALL"},
		{"ARRÊT", "ARRET"},
		{"Arre\u0302t", "ARRET"},
		{"désabonner", "DESABONNER"},
		{"hjælp", "HJÆLP"},
		{"Så", "SA"},
		{"ø", "Ø"},
		{"No más", "NO MAS"},
		{"Promoções", "PROMOCOES"},
		{"ST\u200bOP", "STOP"},
		{"\ufeffSTOP\u2060", "STOP"},
		{"S\u00adTOP", "STOP"}, // soft hyphen
		{"\u200cstop\u200d", "STOP"},
		{"opt-out", "OPT OUT"},
		{"opt_out", "OPT OUT"},
		{"opt‐out", "OPT OUT"}, // U+2010
		{"OPT—OUT", "OPT OUT"},
		{"optout", "OPTOUT"},
		{"Don't stop", "DONT STOP"},
		{"it’s", "ITS"},
		{"stop\t\n all", "STOP ALL"},
		{"stop,all", "STOP ALL"},
		{"ﬁn", "FIN"},
		{"Ⅻ", "XII"},
		{"①", "1"},
		{"ǆ", "DZ"},
		{"x²", "X2"},
		{"\xffSTOP\xfe", "STOP"},
		{"\x00STOP\x00", "STOP"},
		{"1️⃣", "1"},
		{"🇫🇷 stop", "STOP"},
		{"STOP 12345", "STOP 12345"},
		{"Ωμέγα", "ΩΜΕΓΑ"},
		{"ſtop", "STOP"}, // long s
	} {
		t.Run(c.in, func(t *testing.T) {
			got := string(Normalize(nil, c.in))
			testutil.RequireEqual(t, got, c.want, "Normalize")
			testutil.RequireEqual(t, string(Normalize(nil, got)), got, "idempotent")
		})
	}
}

func TestNormalizeAppends(t *testing.T) {
	got := Normalize([]byte("prefix:"), "  a b ")
	testutil.RequireEqual(t, string(got), "prefix:A B", "append")
	got = Normalize([]byte("x"), "é  ü")
	testutil.RequireEqual(t, string(got), "xE U", "append non-ASCII")
}

// TestNormalizeAgrees checks the bounded normalisation Match uses against
// Normalize: same text, or a prefix of whole words when it gave up.
func TestNormalizeAgrees(t *testing.T) {
	for _, in := range []string{
		"stop", "Stop all now please thanks", "Arrêt — tout de suite", strings.Repeat("word ", 50),
		"ｓｔｏｐ ｎｏｗ", strings.Repeat("é", 300),
	} {
		full := string(Normalize(nil, in))
		var buf [bufSize]byte
		w := normState{out: buf[:], maxWords: 3}
		run(&w, in)
		got := string(w.result())
		if !strings.HasPrefix(full, got) {
			t.Errorf("%q: bounded %q is not a prefix of %q", in, got, full)
		}
		if !w.stopped && got != full {
			t.Errorf("%q: bounded %q != %q", in, got, full)
		}
		for i := 0; i < min(w.words, maxTrackedWords); i++ {
			if e := int(w.ends[i]); e != len(full) && full[e] != ' ' {
				t.Errorf("%q: word %d ends at %d inside a word", in, i, e)
			}
		}
	}
}

// TestFastTables checks the precomputed ranges against the general path, in
// and between words.
func TestFastTables(t *testing.T) {
	slow := func(s string) string {
		var buf [64]byte
		w := normState{out: buf[:]}
		for _, r := range s {
			w.rune(r, 0)
		}
		w.sep()
		return string(w.result())
	}
	for _, rng := range [][2]rune{{0x80, 0x300}, {0x2000, 0x2070}, {0xff00, 0xfff0}} {
		for r := rng[0]; r < rng[1]; r++ {
			for _, s := range []string{string(r), "a" + string(r) + "b", "a " + string(r) + " b"} {
				if got, want := string(Normalize(nil, s)), slow(s); got != want {
					t.Errorf("%U in %q: fast %q, general %q", r, s, got, want)
				}
			}
		}
	}
	if fastRune('é').kind != fastWord || fastRune('\u200b').kind != fastDrop || fastRune('«').kind != fastSep {
		t.Error("fast tables not filled")
	}
}
