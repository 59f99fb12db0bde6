package gateway

import (
	"testing"

	"github.com/optgate/optgate/consent/keyword"
	"github.com/optgate/optgate/smpp/coding"
)

// FuzzDecodeScreen: any octets under any data_coding, read with any SMSC
// override, are decoded and screened as handleMO and the consent store do
// (the labelled reading, then the other reading when the octets make
// sense only in it) without a panic, and a match agrees with the reading
// it is reported in: decoding the octets in that reading again gives the
// text that matched, and that text matches alone.
func FuzzDecodeScreen(f *testing.F) {
	for _, s := range []struct {
		dc uint8
		b  string
	}{
		{1, "D\x1fSABONNER"}, {0, "D\x1fSABONNER"}, {0, "D\xc9SABONNER"}, {1, "STOP"}, {3, "ARR\xcaT"},
		{8, "\x00S\x00T\x00O\x00P"}, {0, "\x1b\x1b\x1b"}, {1, "\x1b"}, {0xf0, "STOP"}, {0xf4, "\xff"}, {2, "STOP"},
		{0, "\x53\xea\x13\x0a"}, {8, "S\x00T\x00O\x00P\x00"}, {8, "\xff\xfeS\x00T\x00O\x00P\x00"}, {14, "stop"}, {4, "Stop.\r\n"},
	} {
		for ov := uint8(0); ov < 9; ov++ {
			f.Add(s.dc, ov, []byte(s.b))
		}
	}
	m := keyword.Default()
	charsets := []coding.DataCoding{coding.GSM7, coding.IA5, coding.Latin1}
	f.Fuzz(func(t *testing.T, dc, ov uint8, b []byte) {
		if len(b) > 1024 {
			b = b[:1024]
		}
		l := &smscLink{dc0: charsets[ov%3], dc1: charsets[(ov/3)%3]}
		read := l.readAs(coding.DataCoding(dc))
		text, _ := coding.Decode(read, b)
		var ex moExtra
		ex.readings(l, coding.DataCoding(dc), b)
		if ex.reading == "" || (ex.altReading == "" && ex.alt != "") {
			t.Fatalf("readings %+v", ex)
		}
		got, ok := m.Match(text)
		screened := text
		if !ok && ex.alt != "" {
			got, ok = m.Match(ex.alt)
			screened = ex.alt
			var again string
			name := coding.CharsetName(read)
			pk, isPacked := coding.PackedGSM7Reading(b)
			le, isLE := coding.LittleEndianUCS2(b)
			switch alt, isAlt := coding.AltReading(read, b); {
			case isPacked && (name == "gsm7" || name == "ia5"):
				again = pk
			case isAlt:
				again, _ = coding.Decode(alt, b)
			case isLE && read == coding.UCS2:
				again = le
			default:
				t.Fatalf("an alternative reading %q for octets no reading finds", ex.altReading)
			}
			if again != ex.alt {
				t.Fatalf("alternative reading %q: %q, read again %q", ex.altReading, ex.alt, again)
			}
		}
		if ok {
			again, ok2 := m.Match(screened)
			if !ok2 || again != got {
				t.Fatalf("match %+v in %q not reproduced: %+v %v", got, screened, again, ok2)
			}
		}
	})
}
