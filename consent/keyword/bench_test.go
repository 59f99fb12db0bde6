package keyword

import "testing"

// BenchmarkMatchKeyword measures Match on typical short replies; the budget
// is 300 ns/op and 0 allocs/op for ASCII text.
func BenchmarkMatchKeyword(b *testing.B) {
	for _, c := range []struct{ name, text string }{
		{"nomatch", "Thanks, see you then"},
		{"stop", "STOP"},
		{"stop-punct", "  Stop!! "},
		{"stop-all", "stop all"},
		{"accented", "Arrêt"},
		{"fullwidth", "ＳＴＯＰ"},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := Default()
			b.ReportAllocs()
			for b.Loop() {
				m.Match(c.text)
			}
		})
	}
	b.Run("mix", func(b *testing.B) {
		m := Default()
		texts := []string{"Thanks, see you then", "STOP", "Can we move it to 3pm", "help", "Yes", "ok"}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m.Match(texts[i%len(texts)])
			i++
		}
	})
	b.Run("bytes", func(b *testing.B) {
		m := Default()
		text := []byte("Thanks, see you then")
		b.ReportAllocs()
		for b.Loop() {
			m.MatchBytes(text)
		}
	})
	for _, mode := range []Mode{FirstWord, ReasonableMeans} {
		b.Run(mode.String(), func(b *testing.B) {
			m := mustNew(b, Config{Mode: mode})
			b.ReportAllocs()
			for b.Loop() {
				m.Match("please stop texting me")
			}
		})
	}
}

func BenchmarkNormalize(b *testing.B) {
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = Normalize(buf[:0], "  Désabonner, s'il vous plaît 🙏 ")
	}
}

func BenchmarkSaysHowToOptOut(b *testing.B) {
	const text = "Acme: your interview is confirmed for Tuesday 10:00. Msg&data rates may apply. Reply STOP to opt out"
	b.ReportAllocs()
	for b.Loop() {
		SaysHowToOptOut(text)
	}
}
