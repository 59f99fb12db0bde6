package coding

import (
	"bytes"
	"errors"
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

func TestParseUDH(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want UDH
		body string
	}{
		{"concat 8-bit", "05 00 03 2a 03 02 68 69", UDH{Len: 6, Concat: true, Ref: 0x2a, Total: 3, Seq: 2}, "hi"},
		{"concat 16-bit", "06 08 04 12 34 02 01 68", UDH{Len: 7, Concat: true, Ref16: true, Ref: 0x1234, Total: 2, Seq: 1}, "h"},
		{"ports 16-bit", "06 05 04 0b 84 23 f0 ff", UDH{Len: 7, Ports: true, DstPort: 0x0b84, SrcPort: 0x23f0}, "\xff"},
		{"ports 8-bit", "04 04 02 10 20", UDH{Len: 5, Ports: true, DstPort: 0x10, SrcPort: 0x20}, ""},
		{"ports and concat", "0b 05 04 0b 84 23 f0 00 03 01 02 02 41",
			UDH{Len: 12, Concat: true, Ref: 1, Total: 2, Seq: 2, Ports: true, DstPort: 0x0b84, SrcPort: 0x23f0}, "A"},
		{"unknown element skipped", "08 24 01 01 00 03 05 02 01 61", UDH{Len: 9, Concat: true, Ref: 5, Total: 2, Seq: 1}, "a"},
		{"empty element", "02 70 00 61", UDH{Len: 3}, "a"},
		{"empty header", "00 61", UDH{Len: 1}, "a"},
		{"last concat wins", "0a 00 03 01 02 01 00 03 07 03 03", UDH{Len: 11, Concat: true, Ref: 7, Total: 3, Seq: 3}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			udh, body, err := ParseUDH(unhex(t, tt.hex))
			requireNoError(t, err)
			testutil.RequireEqual(t, udh, tt.want)
			testutil.RequireEqual(t, string(body), tt.body)
		})
	}
}

func TestParseUDHMalformed(t *testing.T) {
	tests := []struct {
		name string
		hex  string
	}{
		{"empty", ""},
		{"length beyond message", "05 00 03 01"},
		{"length 255 short message", "ff 00"},
		{"truncated element header", "01 00"},
		{"element overruns header", "04 00 03 01 02 01"},
		{"concat 8 wrong length", "04 00 02 01 02"},
		{"concat 16 wrong length", "05 08 03 01 02 01"},
		{"ports 8 wrong length", "03 04 01 01"},
		{"ports 16 wrong length", "04 05 02 01 01"},
		{"seq zero", "05 00 03 01 02 00"},
		{"seq beyond total", "05 00 03 01 02 03"},
		{"total zero", "05 00 03 01 00 00"},
		{"16-bit seq beyond total", "06 08 04 00 01 01 02"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseUDH(unhex(t, tt.hex))
			if !errors.Is(err, ErrInvalidUDH) {
				t.Fatalf("err = %v, want ErrInvalidUDH", err)
			}
		})
	}
}

func FuzzParseUDH(f *testing.F) {
	for _, s := range []string{"05 00 03 2a 03 02 68 69", "06 08 04 12 34 02 01 68", "0b 05 04 0b 84 23 f0 00 03 01 02 02 41", "ff", "", "01 00", "05 00 03 01 02 00"} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		udh, body, err := ParseUDH(b)
		if err != nil {
			return
		}
		if udh.Len < 1 || udh.Len > len(b) || !bytes.Equal(body, b[udh.Len:]) {
			t.Fatalf("Len %d, body % x for input % x", udh.Len, body, b)
		}
		if udh.Concat {
			if udh.Seq == 0 || udh.Seq > udh.Total {
				t.Fatalf("accepted part %d of %d", udh.Seq, udh.Total)
			}
			// A concatenation header we build parses back to the same values.
			h := appendConcatUDH(nil, udh.Ref16, udh.Ref, udh.Total, udh.Seq)
			u2, rest, err := ParseUDH(append(h, body...))
			if err != nil || u2.Ref != udh.Ref || u2.Total != udh.Total || u2.Seq != udh.Seq || !bytes.Equal(rest, body) {
				t.Fatalf("rebuilt header: %+v, %v", u2, err)
			}
		}
	})
}
