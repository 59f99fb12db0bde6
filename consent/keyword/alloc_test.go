//go:build !race

package keyword

import "testing"

// TestMatchAllocs guards the ASCII hot path: no allocation in any mode.
func TestMatchAllocs(t *testing.T) {
	texts := []string{"Thanks, see you then", "STOP", "  stop!! ", "stop all", "please stop texting me", ""}
	for _, mode := range []Mode{Exact, FirstWord, ReasonableMeans} {
		m := mustNew(t, Config{Mode: mode})
		for _, text := range texts {
			b := []byte(text)
			if n := testing.AllocsPerRun(100, func() { m.Match(text) }); n != 0 {
				t.Errorf("%v: Match(%q): %v allocs", mode, text, n)
			}
			if n := testing.AllocsPerRun(100, func() { m.MatchBytes(b) }); n != 0 {
				t.Errorf("%v: MatchBytes(%q): %v allocs", mode, text, n)
			}
		}
	}
}

// TestMatchAllocsNonASCII reports the non-ASCII path, which pools its
// norm.Iter; a pool refill after a GC may allocate once.
func TestMatchAllocsNonASCII(t *testing.T) {
	m := Default()
	for _, text := range []string{"Arrêt", "ＳＴＯＰ", "Merci beaucoup, à demain"} {
		if n := testing.AllocsPerRun(100, func() { m.Match(text) }); n > 0.1 {
			t.Errorf("Match(%q): %v allocs", text, n)
		}
	}
}
