package bench

import (
	"fmt"
	"testing"
	"time"
)

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

func TestParseLatency(t *testing.T) {
	tests := []struct {
		spec     string
		nilFn    bool
		min, max time.Duration
	}{
		{"", true, 0, 0},
		{"none", true, 0, 0},
		{"fixed:1ms", false, time.Millisecond, time.Millisecond},
		{"uniform:0.5ms-2ms", false, 500 * time.Microsecond, 2 * time.Millisecond},
		{"lognormal:1ms,0", false, time.Millisecond - 1, time.Millisecond + 1},
		{"lognormal:1ms,0.5", false, 0, time.Minute},
		{"exp:1ms", false, 0, time.Minute},
		{"mix:80@fixed:10ms|20@fixed:100ms", false, 10 * time.Millisecond, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			fn, err := ParseLatency(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if (fn == nil) != tt.nilFn {
				t.Fatalf("nil function: %v", fn == nil)
			}
			if fn == nil {
				return
			}
			for i := 0; i < 1000; i++ {
				if d := fn(); d < tt.min || d > tt.max {
					t.Fatalf("%s outside [%s,%s]", d, tt.min, tt.max)
				}
			}
		})
	}
}

func TestParseLatencyMedian(t *testing.T) {
	fn, err := ParseLatency("lognormal:2ms,0.5")
	if err != nil {
		t.Fatal(err)
	}
	below := 0
	for i := 0; i < 10000; i++ {
		if fn() < 2*time.Millisecond {
			below++
		}
	}
	if below < 4500 || below > 5500 {
		t.Fatalf("%d of 10000 below the median", below)
	}
}

func TestParseLatencyErrors(t *testing.T) {
	for _, spec := range []string{"1ms", "fixed", "fixed:abc", "fixed:-1ms", "fixed:2m", "uniform:2ms", "uniform:2ms-1ms",
		"lognormal:1ms", "lognormal:0,0.5", "lognormal:1ms,x", "lognormal:1ms,-1", "gauss:1ms", "mix:fixed:1ms",
		"mix:0@fixed:1ms", "mix:1@mix:1@fixed:1ms", "exp:x"} {
		if _, err := ParseLatency(spec); err == nil {
			t.Errorf("%q: no error", spec)
		}
	}
}
