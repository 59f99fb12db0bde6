package coding

import "testing"

func TestAltReading(t *testing.T) {
	for _, c := range []struct {
		name string
		read DataCoding
		in   []byte
		alt  DataCoding
		ok   bool
		text string // Decode(alt, in) when ok
	}{
		{"ascii", IA5, []byte("STOP"), IA5, false, ""},
		{"ia5-holding-gsm", IA5, []byte("D\x1fSABONNER"), GSM7, true, "DÉSABONNER"},
		{"ia5-gsm-escape", IA5, []byte("\x1b\x65uro"), GSM7, true, "€uro"},
		{"ia5-gsm-umlaut", IA5, []byte("K\x7frz"), GSM7, true, "Kàrz"},
		{"newline-only", IA5, []byte("STOP\r\n"), IA5, false, ""},
		{"latin1-holding-gsm", Latin1, []byte("D\x1fSABONNER"), GSM7, true, "DÉSABONNER"},
		{"gsm-holding-latin1", GSM7, []byte("D\xc9SABONNER"), Latin1, true, "DÉSABONNER"},
		{"ia5-holding-latin1", IA5, []byte("ARR\xcaT"), Latin1, true, "ARRÊT"},
		{"gsm-fine", GSM7, []byte("D\x1fSABONNER"), GSM7, false, ""},
		{"latin1-fine", Latin1, []byte("D\xc9SABONNER"), Latin1, false, ""},
		{"ucs2-never", UCS2, []byte{0, 0x1f}, UCS2, false, ""},
		{"empty", IA5, nil, IA5, false, ""},
		{"binary-holding-ascii", BinaryUnspecified, []byte("STOP\r\n"), IA5, true, "STOP\r\n"},
		{"binary-class0-holding-ascii", 0xF4, []byte("Stop."), IA5, true, "Stop."},
		{"ksc5601-holding-ascii", KSC5601, []byte("stop"), IA5, true, "stop"},
		{"binary-data", Binary, []byte{0x0B, 0x05, 0x04}, Binary, false, ""},
		{"binary-high", BinaryUnspecified, []byte("ST\xd0P"), BinaryUnspecified, false, ""},
		{"binary-empty", Binary, nil, Binary, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			alt, ok := AltReading(c.read, c.in)
			if alt != c.alt || ok != c.ok {
				t.Fatalf("AltReading(%v, %q) = %v, %v; want %v, %v", c.read, c.in, alt, ok, c.alt, c.ok)
			}
			if ok {
				if got, _ := Decode(alt, c.in); got != c.text {
					t.Fatalf("Decode(%v) = %q, want %q", alt, got, c.text)
				}
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { AltReading(IA5, []byte("D\x1fSABONNER")) }); n != 0 {
		t.Fatalf("AltReading allocates %v times", n)
	}
}

func TestParseCharset(t *testing.T) {
	for name, want := range map[string]DataCoding{"gsm7": GSM7, "ia5": IA5, "latin1": Latin1} {
		got, err := ParseCharset(name)
		if err != nil || got != want || CharsetName(got) != name {
			t.Errorf("ParseCharset(%q) = %v, %v (name %q)", name, got, err, CharsetName(got))
		}
	}
	for _, bad := range []string{"", "GSM7", "utf8", "ucs2"} {
		if _, err := ParseCharset(bad); err == nil {
			t.Errorf("ParseCharset(%q) accepted", bad)
		}
	}
}

// Packed septets under data_coding 0 or 1 are read unpacked as well; text
// that reads well one septet (or Latin-1 character) an octet is not.
func TestPackedGSM7Reading(t *testing.T) {
	for _, s := range []string{"STOP", "Stop", "stop", "STOP ALL", "Unsubscribe", "ARRET", "QUIT", "Cancel", "Stop.", "1234567"} {
		b, err := EncodeGSM7Packed(s)
		requireNoError(t, err)
		got, ok := PackedGSM7Reading(b)
		if !ok || got != s {
			t.Errorf("packed %q (% x): %q %v, want it read back", s, b, got, ok)
		}
	}
	for _, b := range [][]byte{
		[]byte("STOP"), []byte("D\x1fSABONNER"), []byte("Arr\xeat"), []byte("Cr\xe8me br\xfbl\xe9e"), {}, {0x80}, []byte("\x1b\x65uro"),
	} {
		if got, ok := PackedGSM7Reading(b); ok {
			t.Errorf("% x read as packed %q, want no packed reading", b, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { PackedGSM7Reading([]byte("Arr\xeat")) }); n != 0 {
		t.Errorf("%v allocations for octets that read well, want 0", n)
	}
}

// UTF-16LE octets under data_coding 8 without a byte order mark are read
// little-endian as well; big-endian text is not.
func TestLittleEndianUCS2(t *testing.T) {
	for _, c := range []struct{ hex, want string }{
		{"5300 5400 4f00 5000", "STOP"},
		{"4100 5200 5200 ca00 5400", "ARRÊT"},
	} {
		if got, ok := LittleEndianUCS2(unhex(t, c.hex)); !ok || got != c.want {
			t.Errorf("%s: %q %v, want %q", c.hex, got, ok, c.want)
		}
	}
	for _, h := range []string{"0053 0054 004f 0050", "4e00 4e8c", "5300 54", "", "0000"} {
		if got, ok := LittleEndianUCS2(unhex(t, h)); ok {
			t.Errorf("%s read little-endian as %q, want not", h, got)
		}
	}
}
