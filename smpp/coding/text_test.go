package coding

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/optgate/optgate/internal/testutil"
)

func TestUCS2RoundTrip(t *testing.T) {
	tests := []struct {
		name string
		s    string
		hex  string
	}{
		{"ascii", "Hi", "0048 0069"},
		{"cyrillic", "жЖ", "0436 0416"},
		{"emoji", "😀", "d83d de00"},
		{"waving hand with skin tone", "👋🏽", "d83d dc4b d83c dffd"},
		{"mixed", "a€😀", "0061 20ac d83d de00"},
		{"replacement char", "\uFFFD", "fffd"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := EncodeUCS2(tt.s)
			requireBytes(t, enc, unhex(t, tt.hex))
			testutil.RequireEqual(t, DecodeUCS2(enc), tt.s)
			testutil.RequireEqual(t, UCS2Len(tt.s)*2, len(enc))
		})
	}
}

func TestDecodeUCS2Invalid(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want string
	}{
		{"odd length", "0041 00", "A\uFFFD"},
		{"single octet", "41", "\uFFFD"},
		{"lone high at end", "0041 d83d", "A\uFFFD"},
		{"lone low", "de00 0041", "\uFFFDA"},
		{"high then non-low", "d83d 0041", "\uFFFDA"},
		{"high high low", "d83d d83d de00", "\uFFFD😀"},
		{"high then odd octet", "d83d de", "\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.RequireEqual(t, DecodeUCS2(unhex(t, tt.hex)), tt.want)
		})
	}
}

// A leading FF FE is a little-endian byte order mark: the rest is read as
// UTF-16LE (a STOP so sent was read as U+FFFE and CJK ideographs).
func TestDecodeUCS2LittleEndianBOM(t *testing.T) {
	for _, tt := range []struct{ name, hex, want string }{
		{"STOP", "fffe 5300 5400 4f00 5000", "STOP"},
		{"surrogate pair", "fffe 3dd8 00de 2100", "😀!"},
		{"mark only", "fffe", ""},
		{"odd octet", "fffe 4100 42", "A\uFFFD"},
		{"big-endian mark kept", "feff 0041", "\uFEFFA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testutil.RequireEqual(t, DecodeUCS2(unhex(t, tt.hex)), tt.want)
		})
	}
}

func TestLatin1(t *testing.T) {
	s := "Crème brûlée ÿ ©"
	enc, err := AppendLatin1(nil, s)
	requireNoError(t, err)
	testutil.RequireEqual(t, len(enc), utf8.RuneCountInString(s))
	testutil.RequireEqual(t, enc[2], byte(0xE8))
	testutil.RequireEqual(t, DecodeLatin1(enc), s)

	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	back, err := AppendLatin1(nil, DecodeLatin1(all))
	requireNoError(t, err)
	requireBytes(t, back, all)

	_, err = AppendLatin1(nil, "€")
	var ee *EncodeError
	if !errors.As(err, &ee) || ee.Rune != '€' || ee.Coding != Latin1 {
		t.Fatalf("err = %v", err)
	}
	if _, err := AppendLatin1(nil, "\xff"); !errors.Is(err, ErrUnrepresentable) {
		t.Fatalf("invalid UTF-8: err = %v", err)
	}
}

func TestIA5(t *testing.T) {
	enc, err := AppendIA5(nil, "plain ASCII ~{}")
	requireNoError(t, err)
	testutil.RequireEqual(t, string(enc), "plain ASCII ~{}")
	testutil.RequireEqual(t, DecodeIA5([]byte("abc")), "abc")
	testutil.RequireEqual(t, DecodeIA5([]byte{'a', 0xE9, 'b', 0x80}), "a?b?")
	_, err = AppendIA5(nil, "abé")
	var ee *EncodeError
	if !errors.As(err, &ee) || ee.Rune != 'é' || ee.Offset != 2 {
		t.Fatalf("err = %v", err)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		dc   DataCoding
		in   []byte
		want string
		err  error
	}{
		{"gsm7", GSM7, []byte{0x1B, 0x65, 'a'}, "€a", nil},
		{"ia5", IA5, []byte("abc"), "abc", nil},
		{"latin1", Latin1, []byte{0xE9}, "é", nil},
		{"ucs2", UCS2, []byte{0x04, 0x36}, "ж", nil},
		{"binary", Binary, []byte{1, 2}, "\x01\x02", ErrBinary},
		{"binary unspecified", BinaryUnspecified, []byte{0xFF}, "\xff", ErrBinary},
		{"cyrillic", Cyrillic, []byte{0xD6}, "ж", nil},
		{"hebrew", Hebrew, []byte{0xE0}, "א", nil},
		{"class 0 gsm7 (flash)", 0xF0, []byte{'h', 'i'}, "hi", nil},
		{"class 1 gsm7", 0xF1, []byte{0x00}, "@", nil},
		{"class 8-bit", 0xF4, []byte{0x00}, "\x00", ErrBinary},
		{"class 8-bit class 3", 0xF7, []byte{'x'}, "x", ErrBinary},
		{"message waiting discard", 0xC0, []byte{'a'}, "a", nil},
		{"message waiting store", 0xD8, []byte{'a'}, "a", nil},
		{"message waiting store ucs2", 0xE0, []byte{0, 'a'}, "a", nil},
		{"general group gsm7 class", 0x11, []byte{'a'}, "a", nil},
		{"general group 8-bit", 0x14, []byte{'a'}, "a", ErrBinary},
		{"general group ucs2", 0x18, []byte{0, 'a'}, "a", nil},
		{"jis unsupported", JIS, []byte{'a'}, "", ErrUnsupported},
		{"reserved", 0x50, []byte{'a'}, "", ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.dc, tt.in)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			testutil.RequireEqual(t, got, tt.want)
		})
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		name string
		dc   DataCoding
		s    string
		hex  string
		err  error
	}{
		{"gsm7", GSM7, "a€", "61 1b 65", nil},
		{"gsm7 flash", 0xF0, "@", "00", nil},
		{"ucs2", UCS2, "ж", "04 36", nil},
		{"latin1", Latin1, "é", "e9", nil},
		{"ia5", IA5, "A", "41", nil},
		{"binary", Binary, "\x00\xff", "00 ff", nil},
		{"cyrillic", Cyrillic, "ж", "d6", nil},
		{"cyrillic unrepresentable", Cyrillic, "ж€", "", ErrUnrepresentable},
		{"hebrew", Hebrew, "א", "e0", nil},
		{"gsm7 unrepresentable", GSM7, "ç", "", ErrUnrepresentable},
		{"unsupported", KSC5601, "a", "", ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Encode(tt.dc, tt.s)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.err == nil {
				requireBytes(t, got, unhex(t, tt.hex))
			}
		})
	}
}

func TestBest(t *testing.T) {
	tests := []struct {
		s    string
		want DataCoding
	}{
		{"", GSM7},
		{"STOP", GSM7},
		{"Grüße, 5€", GSM7},
		{"ARRÊT", UCS2},
		{"ça va", UCS2},
		{"😀", UCS2},
		{"é", GSM7},
		{"á", UCS2},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			testutil.RequireEqual(t, Best(tt.s), tt.want)
		})
	}
}

func TestDataCodingString(t *testing.T) {
	testutil.RequireEqual(t, GSM7.String(), "GSM7")
	testutil.RequireEqual(t, UCS2.String(), "UCS2")
	testutil.RequireEqual(t, DataCoding(0xF1).String(), "DataCoding(0xf1)")
	testutil.RequireEqual(t, DataCoding(11).String(), "DataCoding(0xb)")
}

func FuzzUCS2(f *testing.F) {
	for _, s := range []string{"", "a", "ж", "😀", "👋🏽 hi", "\uFFFD", "\xd8\x3d", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if out := DecodeUCS2([]byte(s)); !utf8.ValidString(out) {
			t.Fatalf("DecodeUCS2 produced invalid UTF-8 %q", out)
		}
		enc := EncodeUCS2(s)
		if len(enc) != 2*UCS2Len(s) {
			t.Fatalf("len(enc)=%d, UCS2Len=%d", len(enc), UCS2Len(s))
		}
		if !utf8.ValidString(s) || strings.HasPrefix(s, "\uFFFE") {
			return // U+FFFE first encodes as FF FE, read back as a little-endian mark
		}
		if got := DecodeUCS2(enc); got != s {
			t.Fatalf("round trip: %q -> %q", s, got)
		}
	})
}
