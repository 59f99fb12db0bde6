package keyword

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzKeyword checks, on arbitrary bytes, that normalisation and matching do
// not panic, that Normalize is idempotent and yields valid UTF-8, that Match
// in Exact mode depends only on the normalised text, and that MatchBytes
// agrees with Match in every mode.
func FuzzKeyword(f *testing.F) {
	for _, s := range []string{
		"", "STOP", "stop!!", "  Stop 🙏 ", "«STOP»", "ＳＴＯＰ", "ARRÊT", "Arre\u0302t", "hjælp",
		"ST\u200bOP", "opt-out", "STOP ALL", "No más", "Stop promotions", "please stop texting me",
		"Stop by the office tomorrow", "\xff\xfeSTOP", "ǆ", "ﬁn", "Ⅻ", "\u0301\u0301", "한국어",
		"Reply STOP to opt out", "Répondez STOP pour vous désabonner",
	} {
		f.Add([]byte(s))
	}
	modes := []*Matcher{Default(), mustNew(f, Config{Mode: FirstWord}), mustNew(f, Config{Mode: ReasonableMeans})}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := string(b)
		n1 := Normalize(nil, s)
		if !utf8.Valid(n1) {
			t.Fatalf("Normalize(%q) = %q: invalid UTF-8", s, n1)
		}
		if n2 := Normalize(nil, string(n1)); !bytes.Equal(n1, n2) {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n1, n2)
		}
		if bytes.HasPrefix(n1, []byte(" ")) || bytes.HasSuffix(n1, []byte(" ")) || bytes.Contains(n1, []byte("  ")) {
			t.Fatalf("Normalize(%q) = %q: bad spacing", s, n1)
		}
		m1, ok1 := Default().Match(s)
		m2, ok2 := Default().Match(string(n1))
		if ok1 != ok2 || m1 != m2 {
			t.Fatalf("Match(%q) = %+v,%v but Match(normalised %q) = %+v,%v", s, m1, ok1, n1, m2, ok2)
		}
		for _, m := range modes {
			a, okA := m.Match(s)
			c, okC := m.MatchBytes(b)
			if okA != okC || a != c {
				t.Fatalf("%v: Match(%q) = %+v,%v, MatchBytes = %+v,%v", m.Mode(), s, a, okA, c, okC)
			}
			if okA && (a.Class == None || a.Keyword == "" || a.Lang == "") {
				t.Fatalf("%v: Match(%q) = %+v: incomplete", m.Mode(), s, a)
			}
		}
		SaysHowToOptOut(s)
	})
}

func mustNew(tb testing.TB, cfg Config) *Matcher {
	tb.Helper()
	m, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}
