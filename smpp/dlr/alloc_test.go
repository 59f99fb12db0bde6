//go:build !race

package dlr

import "testing"

var sink string // keeps results alive in allocation tests

func TestAllocs(t *testing.T) {
	text := "id:0123456789 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:Hello world"
	r, _ := Parse(text)
	buf := make([]byte, 0, 256)
	tests := []struct {
		name string
		f    func()
	}{
		{"Parse", func() { _, _ = Parse(text) }},
		{"AppendFormat", func() { buf = AppendFormat(buf[:0], r) }},
		{"NormalizeID", func() { sink = NormalizeID("0000012345") }},
		{"StateFromStat", func() { StateFromStat("delivrd") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.f); n != 0 {
				t.Fatalf("%v allocations, want 0", n)
			}
		})
	}
}
