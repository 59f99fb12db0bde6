package coding

import (
	"errors"
	"strings"
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

// joinBodies reassembles Split's output with ParseUDH and Decode.
func joinBodies(t *testing.T, parts []Part) string {
	t.Helper()
	var all []byte
	for i, p := range parts {
		body := p.Data
		if p.UDHI {
			udh, b, err := ParseUDH(p.Data)
			requireNoError(t, err)
			testutil.RequireEqual(t, udh.Seq, uint8(i+1))
			testutil.RequireEqual(t, udh.Total, uint8(len(parts)))
			testutil.RequireEqual(t, udh.Ref, p.Ref)
			body = b
		}
		all = append(all, body...)
	}
	s, err := Decode(parts[0].Coding, all)
	if err != nil && !errors.Is(err, ErrBinary) {
		t.Fatal(err)
	}
	return s
}

// bodyLens returns each part's length without its UDH.
func bodyLens(parts []Part) []int {
	var n []int
	for _, p := range parts {
		l := len(p.Data)
		if p.UDHI {
			l -= int(p.Data[0]) + 1
		}
		n = append(n, l)
	}
	return n
}

func TestSplitBoundaries(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	zh := func(n int) string { return strings.Repeat("ж", n) }
	tests := []struct {
		name   string
		s      string
		opt    SplitOptions
		coding DataCoding
		lens   []int // body octets per part
	}{
		{"empty", "", SplitOptions{}, GSM7, []int{0}},
		{"gsm7 160", a(160), SplitOptions{}, GSM7, []int{160}},
		{"gsm7 161", a(161), SplitOptions{}, GSM7, []int{153, 8}},
		{"gsm7 306", a(306), SplitOptions{}, GSM7, []int{153, 153}},
		{"gsm7 307", a(307), SplitOptions{}, GSM7, []int{153, 153, 1}},
		{"gsm7 161 udh16", a(161), SplitOptions{Method: UDH16}, GSM7, []int{152, 9}},
		{"gsm7 161 sar", a(161), SplitOptions{Method: SAR}, GSM7, []int{153, 8}},
		{"gsm7 euro fills 160", a(158) + "€", SplitOptions{}, GSM7, []int{160}},
		{"gsm7 euro makes 161", a(159) + "€", SplitOptions{}, GSM7, []int{153, 8}},
		{"gsm7 esc pair at boundary", a(152) + "€" + a(10), SplitOptions{}, GSM7, []int{152, 12}},
		{"gsm7 esc pair just fits", a(151) + "€" + a(10), SplitOptions{}, GSM7, []int{153, 10}},
		{"gsm7 esc pair at udh16 boundary", a(151) + "€" + a(10), SplitOptions{Method: UDH16}, GSM7, []int{151, 12}},
		{"ucs2 70", zh(70), SplitOptions{}, UCS2, []int{140}},
		{"ucs2 71", zh(71), SplitOptions{}, UCS2, []int{134, 8}},
		{"ucs2 71 udh16", zh(71), SplitOptions{Method: UDH16}, UCS2, []int{132, 10}},
		{"ucs2 emoji at boundary", zh(66) + "😀" + zh(5), SplitOptions{}, UCS2, []int{132, 14}},
		{"ucs2 emoji just fits", zh(65) + "😀" + zh(5), SplitOptions{}, UCS2, []int{134, 10}},
		{"ucs2 emoji fills 70", zh(68) + "😀", SplitOptions{}, UCS2, []int{140}},
		{"ucs2 emoji at udh16 boundary", zh(65) + "😀" + zh(5), SplitOptions{Method: UDH16}, UCS2, []int{130, 14}},
		{"binary 140", a(140), SplitOptions{Coding: Binary}, Binary, []int{140}},
		{"binary 141", a(141), SplitOptions{Coding: Binary}, Binary, []int{134, 7}},
		{"binary 141 udh16", a(141), SplitOptions{Coding: BinaryUnspecified, Method: UDH16}, BinaryUnspecified, []int{133, 8}},
		{"latin1 141", a(140) + "é", SplitOptions{Coding: Latin1}, Latin1, []int{134, 7}},
		{"forced ucs2", a(71), SplitOptions{Coding: UCS2}, UCS2, []int{134, 8}},
		{"flash gsm7", a(161), SplitOptions{Coding: 0xF0}, 0xF0, []int{153, 8}},
		{"payload", a(1000), SplitOptions{Method: Payload}, GSM7, []int{1000}},
		{"payload short", "hi", SplitOptions{Method: Payload}, GSM7, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts, err := Split(tt.s, tt.opt)
			requireNoError(t, err)
			testutil.RequireEqual(t, bodyLens(parts), tt.lens)
			for i, p := range parts {
				testutil.RequireEqual(t, p.Coding, tt.coding)
				testutil.RequireEqual(t, p.Total, uint8(len(parts)))
				testutil.RequireEqual(t, p.Seq, uint8(i+1))
				testutil.RequireEqual(t, p.UDHI, len(parts) > 1 && tt.opt.Method != SAR)
			}
			testutil.RequireEqual(t, joinBodies(t, parts), tt.s)
			if tt.opt == (SplitOptions{}) {
				n, dc := Segments(tt.s)
				testutil.RequireEqual(t, n, len(parts))
				testutil.RequireEqual(t, dc, tt.coding)
			}
		})
	}
}

func TestSplitHeaders(t *testing.T) {
	s := strings.Repeat("x", 200)
	t.Run("udh8", func(t *testing.T) {
		parts, err := Split(s, SplitOptions{Ref: 0x1234})
		requireNoError(t, err)
		requireBytes(t, parts[0].Data[:6], unhex(t, "05 00 03 34 02 01"))
		requireBytes(t, parts[1].Data[:6], unhex(t, "05 00 03 34 02 02"))
		testutil.RequireEqual(t, parts[1].Ref, uint16(0x34))
	})
	t.Run("udh16", func(t *testing.T) {
		parts, err := Split(s, SplitOptions{Ref: 0x1234, Method: UDH16})
		requireNoError(t, err)
		requireBytes(t, parts[0].Data[:7], unhex(t, "06 08 04 12 34 02 01"))
		requireBytes(t, parts[1].Data[:7], unhex(t, "06 08 04 12 34 02 02"))
		testutil.RequireEqual(t, parts[0].Ref, uint16(0x1234))
	})
	t.Run("sar", func(t *testing.T) {
		parts, err := Split(s, SplitOptions{Ref: 0x1234, Method: SAR})
		requireNoError(t, err)
		testutil.RequireEqual(t, parts[0].Ref, uint16(0x1234))
		testutil.RequireEqual(t, parts[0].UDHI, false)
		testutil.RequireEqual(t, string(parts[0].Data), s[:153])
	})
	t.Run("single part has no udh", func(t *testing.T) {
		parts, err := Split("hello", SplitOptions{Ref: 7})
		requireNoError(t, err)
		testutil.RequireEqual(t, parts, []Part{{Data: []byte("hello"), Total: 1, Seq: 1}})
	})
	t.Run("appending to a part does not clobber the next", func(t *testing.T) {
		parts, err := Split(s, SplitOptions{})
		requireNoError(t, err)
		next := string(parts[1].Data)
		_ = append(parts[0].Data, "zzzzzzzz"...)
		testutil.RequireEqual(t, string(parts[1].Data), next)
	})
}

func TestSplitLimits(t *testing.T) {
	full := strings.Repeat("a", 153*255)
	parts, err := Split(full, SplitOptions{})
	requireNoError(t, err)
	testutil.RequireEqual(t, len(parts), 255)
	testutil.RequireEqual(t, parts[254].Total, uint8(255))
	testutil.RequireEqual(t, parts[254].Seq, uint8(255))
	n, _ := Segments(full)
	testutil.RequireEqual(t, n, 255)

	_, err = Split(full+"a", SplitOptions{})
	if !errors.Is(err, ErrTooManyParts) {
		t.Fatalf("256 parts: err = %v", err)
	}
	n, _ = Segments(full + "a")
	testutil.RequireEqual(t, n, 256)

	_, err = Split(strings.Repeat("a", 153*5+1), SplitOptions{MaxParts: 5})
	if !errors.Is(err, ErrTooManyParts) {
		t.Fatalf("MaxParts 5: err = %v", err)
	}
	parts, err = Split(strings.Repeat("a", 153*5), SplitOptions{MaxParts: 5})
	requireNoError(t, err)
	testutil.RequireEqual(t, len(parts), 5)
	parts, err = Split(full, SplitOptions{MaxParts: 1000})
	requireNoError(t, err)
	testutil.RequireEqual(t, len(parts), 255)

	_, err = Split(strings.Repeat("a", MaxPayload+1), SplitOptions{Method: Payload})
	if !errors.Is(err, ErrTooLong) {
		t.Fatalf("payload: err = %v", err)
	}
	_, err = Split("ç", SplitOptions{Coding: Latin1 + 100})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unsupported coding: err = %v", err)
	}
	_, err = Split("€", SplitOptions{Coding: Latin1})
	if !errors.Is(err, ErrUnrepresentable) {
		t.Fatalf("latin1 euro: err = %v", err)
	}
	_, err = Split("a", SplitOptions{Method: Payload + 1})
	if err == nil {
		t.Fatal("unknown method accepted")
	}
}

func TestSegments(t *testing.T) {
	tests := []struct {
		s      string
		n      int
		coding DataCoding
	}{
		{"", 1, GSM7},
		{"STOP", 1, GSM7},
		{strings.Repeat("€", 80), 1, GSM7},
		{strings.Repeat("€", 81), 2, GSM7},
		{strings.Repeat("😀", 35), 1, UCS2},
		{strings.Repeat("😀", 36), 2, UCS2},
		{strings.Repeat("ê", 134), 2, UCS2},
		{strings.Repeat("ê", 135), 3, UCS2},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			n, dc := Segments(tt.s)
			testutil.RequireEqual(t, n, tt.n)
			testutil.RequireEqual(t, dc, tt.coding)
			parts, err := Split(tt.s, SplitOptions{})
			requireNoError(t, err)
			testutil.RequireEqual(t, len(parts), n)
		})
	}
}

func BenchmarkSplit(b *testing.B) {
	s := strings.Repeat("Hello world, 0123456789! ", 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Split(s, SplitOptions{Ref: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
