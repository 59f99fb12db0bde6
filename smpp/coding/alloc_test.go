//go:build !race

package coding

import (
	"strings"
	"testing"
)

func TestAllocs(t *testing.T) {
	text := strings.Repeat("Hello {world} 5€! ", 9)[:150]
	enc, _ := EncodeGSM7(text)
	ucs := EncodeUCS2("Привет 😀")
	mixed := strings.Repeat("Grüße 😀 ", 40)
	buf := make([]byte, 0, 512)
	tests := []struct {
		name string
		f    func()
	}{
		{"AppendGSM7", func() { buf, _ = AppendGSM7(buf[:0], text) }},
		{"AppendDecodeGSM7", func() { buf = AppendDecodeGSM7(buf[:0], enc) }},
		{"AppendGSM7Packed", func() { buf, _ = AppendGSM7Packed(buf[:0], text) }},
		{"AppendUCS2", func() { buf = AppendUCS2(buf[:0], text) }},
		{"AppendDecodeUCS2", func() { buf = AppendDecodeUCS2(buf[:0], ucs) }},
		{"SeptetLen", func() { SeptetLen(text) }},
		{"Segments", func() { Segments(mixed) }},
		{"ParseUDH", func() { _, _, _ = ParseUDH([]byte{5, 0, 3, 1, 2, 1, 'a'}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.f); n != 0 {
				t.Fatalf("%v allocations, want 0", n)
			}
		})
	}
}
