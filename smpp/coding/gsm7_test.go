package coding

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/optgate/optgate/internal/testutil"
)

func TestGSM7BasicTableRoundTrip(t *testing.T) {
	var all strings.Builder
	for septet, r := range gsmBasic {
		if septet == esc {
			continue
		}
		all.WriteRune(r)
		got, err := EncodeGSM7(string(r))
		requireNoError(t, err)
		requireBytes(t, got, []byte{byte(septet)})
		testutil.RequireEqual(t, DecodeGSM7(got), string(r))
	}
	enc, err := EncodeGSM7(all.String())
	requireNoError(t, err)
	testutil.RequireEqual(t, len(enc), 127)
	testutil.RequireEqual(t, DecodeGSM7(enc), all.String())
}

func TestGSM7ExtensionTable(t *testing.T) {
	tests := []struct {
		r    rune
		code byte
	}{
		{'\f', 0x0A}, {'^', 0x14}, {'{', 0x28}, {'}', 0x29}, {'\\', 0x2F},
		{'[', 0x3C}, {'~', 0x3D}, {']', 0x3E}, {'|', 0x40}, {'€', 0x65},
	}
	n := 0
	for _, r := range gsmExt {
		if r != 0 {
			n++
		}
	}
	testutil.RequireEqual(t, n, len(tests))
	for _, tt := range tests {
		t.Run(string(tt.r), func(t *testing.T) {
			got, err := EncodeGSM7(string(tt.r))
			requireNoError(t, err)
			requireBytes(t, got, []byte{esc, tt.code})
			testutil.RequireEqual(t, DecodeGSM7(got), string(tt.r))
			n, ok := SeptetLen(string(tt.r))
			testutil.RequireEqual(t, n, 2)
			testutil.RequireEqual(t, ok, true)
		})
	}
}

func TestSeptetLen(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		ok   bool
	}{
		{"empty", "", 0, true},
		{"ascii", "hello", 5, true},
		{"euro", "€", 2, true},
		{"euro in text", "5€ off", 7, true},
		{"braces", "a{b}", 6, true},
		{"german", "ÄÖÜäöüß", 7, true},
		{"greek", "ΔΦΓΛΩΠΨΣΘΞ", 10, true},
		{"crlf", "a\r\nb", 4, true},
		{"lower c cedilla", "ç", 0, false},
		{"french", "ARRÊT", 4, false},
		{"emoji", "hi 😀", 3, false},
		{"backquote", "`", 0, false},
		{"esc char itself", "\x1b", 0, false},
		{"invalid utf8", "a\xffb", 2, false},
		{"greek lower", "α", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, ok := SeptetLen(tt.s)
			testutil.RequireEqual(t, n, tt.n)
			testutil.RequireEqual(t, ok, tt.ok)
			testutil.RequireEqual(t, IsGSM7(tt.s), tt.ok)
			if tt.ok {
				enc, err := EncodeGSM7(tt.s)
				requireNoError(t, err)
				testutil.RequireEqual(t, len(enc), tt.n)
			}
		})
	}
}

func TestAppendGSM7Error(t *testing.T) {
	dst := []byte("x")
	got, err := AppendGSM7(dst, "ab€ç")
	var ee *EncodeError
	if !errors.As(err, &ee) || !errors.Is(err, ErrUnrepresentable) {
		t.Fatalf("err = %v, want *EncodeError", err)
	}
	testutil.RequireEqual(t, ee.Rune, 'ç')
	testutil.RequireEqual(t, ee.Offset, 5)
	testutil.RequireEqual(t, ee.Coding, GSM7)
	requireBytes(t, got, []byte{'x', 'a', 'b', esc, 0x65})

	_, err = AppendGSM7(nil, "a\xc3")
	if !errors.Is(err, ErrUnrepresentable) {
		t.Fatalf("invalid UTF-8: err = %v", err)
	}
}

func TestDecodeGSM7Invalid(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, ""},
		{"high bit", []byte{'a', 0x80, 0xFF, 'b'}, "a??b"},
		{"trailing esc", []byte{'a', esc}, "a"},
		{"only esc", []byte{esc}, ""},
		{"esc unknown code", []byte{esc, 0x41}, "A"},
		{"esc esc", []byte{esc, esc, 'a'}, " a"},
		{"esc high bit", []byte{esc, 0x90}, "?"},
		{"esc at", []byte{esc, 0x00}, "@"},
		{"at sign", []byte{0x00}, "@"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.RequireEqual(t, DecodeGSM7(tt.in), tt.want)
		})
	}
}

func TestGSM7Packed(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		packed string
	}{
		{"hellohello", "hellohello", "e8 32 9b fd 46 97 d9 ec 37"},
		{"hello", "hello", "e8 32 9b fd 06"},
		{"seven digits, CR padding", "1234567", "31 d9 8c 56 b3 dd 1a"},
		{"eight digits", "12345678", "31 d9 8c 56 b3 dd 70"},
		{"empty", "", ""},
		{"one at", "@", "00"},
		{"euro", "€", "9b 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.packed)
			got, err := EncodeGSM7Packed(tt.text)
			requireNoError(t, err)
			requireBytes(t, got, want)
			n, _ := SeptetLen(tt.text)
			testutil.RequireEqual(t, DecodeGSM7Packed(want, n), tt.text)
			testutil.RequireEqual(t, DecodeGSM7Packed(want, -1), tt.text)
		})
	}
}

func TestUnpackSeptets(t *testing.T) {
	packed := unhex(t, "e8 32 9b fd 46 97 d9 ec 37")
	testutil.RequireEqual(t, string(UnpackSeptets(nil, packed, 5)), "hello")
	testutil.RequireEqual(t, string(UnpackSeptets(nil, packed, 1000)), "hellohello")
	testutil.RequireEqual(t, len(UnpackSeptets(nil, nil, -1)), 0)
	// Seven septets padded with zero bits instead of CR read as a trailing '@'.
	zero := unhex(t, "31 d9 8c 56 b3 dd 00")
	testutil.RequireEqual(t, DecodeGSM7Packed(zero, -1), "1234567@")
	testutil.RequireEqual(t, DecodeGSM7Packed(zero, 7), "1234567")
}

func TestGSM7LongRoundTrip(t *testing.T) {
	s := strings.Repeat("Grüße {€} [Δ] ~ |ñ| \\^\f ", 50)
	enc, err := EncodeGSM7(s)
	requireNoError(t, err)
	testutil.RequireEqual(t, DecodeGSM7(enc), s)
	p, err := EncodeGSM7Packed(s)
	requireNoError(t, err)
	testutil.RequireEqual(t, DecodeGSM7Packed(p, len(enc)), s)
}

func FuzzGSM7(f *testing.F) {
	for _, s := range []string{"", "hello", "€{}[]~|^\\\f", "1234567", "1234567\r", "ÄÖÜ äöü ß", "ΔΦΓ", "ç", "😀", "a\x1b", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Decoding arbitrary octets never panics and yields valid UTF-8.
		if out := DecodeGSM7([]byte(s)); !utf8.ValidString(out) {
			t.Fatalf("DecodeGSM7 produced invalid UTF-8 %q", out)
		}
		_ = DecodeGSM7Packed([]byte(s), -1)
		n, ok := SeptetLen(s)
		enc, err := EncodeGSM7(s)
		if ok != (err == nil) {
			t.Fatalf("SeptetLen ok=%v but EncodeGSM7 err=%v", ok, err)
		}
		if !ok {
			return
		}
		if len(enc) != n {
			t.Fatalf("len(enc)=%d, SeptetLen=%d", len(enc), n)
		}
		if got := DecodeGSM7(enc); got != s {
			t.Fatalf("unpacked round trip: %q -> %q", s, got)
		}
		p, err := EncodeGSM7Packed(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := DecodeGSM7Packed(p, n); got != s {
			t.Fatalf("packed round trip: %q -> %q", s, got)
		}
	})
}

func BenchmarkAppendGSM7(b *testing.B) {
	s := strings.Repeat("Hello world, 0123456789! ", 7)[:160]
	buf := make([]byte, 0, 320)
	b.ReportAllocs()
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		var err error
		if buf, err = AppendGSM7(buf[:0], s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeGSM7(b *testing.B) {
	enc, _ := EncodeGSM7(strings.Repeat("Hello world, 0123456789! ", 7)[:160])
	buf := make([]byte, 0, 320)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendDecodeGSM7(buf[:0], enc)
	}
}

func BenchmarkAppendGSM7Packed(b *testing.B) {
	s := strings.Repeat("Hello world, 0123456789! ", 7)[:160]
	buf := make([]byte, 0, 320)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendGSM7Packed(buf[:0], s)
	}
}
