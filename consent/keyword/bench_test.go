package keyword

import (
	"testing"

	"github.com/optgate/optgate/smpp/coding"
)

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
	// The extra decoding path of an SMS (gateway handleMO, consent
	// Inbound): octets labelled IA5 are checked for GSM-only codes, and
	// when they hold some (node-smpp's D\x1FSABONNER), their GSM 03.38
	// reading is screened too.
	for _, c := range []struct{ name, octets string }{
		{"sms-ascii", "Thanks, see you then"},
		{"sms-mislabelled-gsm", "D\x1fSABONNER"},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := Default()
			octets := []byte(c.octets)
			screen := func() bool {
				if _, ok := m.MatchBytes(octets); ok {
					return true
				}
				if alt, ok := coding.AltReading(coding.IA5, octets); ok && alt == coding.GSM7 {
					var buf [160]byte
					_, ok := m.MatchBytes(coding.AppendDecodeGSM7(buf[:0], octets))
					return ok
				}
				return false
			}
			if screen() != (c.name == "sms-mislabelled-gsm") {
				b.Fatalf("%q: screen result wrong", c.octets)
			}
			b.ReportAllocs()
			for b.Loop() {
				screen()
			}
		})
	}
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
