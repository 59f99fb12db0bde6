package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// ParseLatency parses a latency distribution spec for the simulator's
// submit_sm_resp delay. It returns nil (answer at once) for "", "none" and
// "0". Forms:
//
//	fixed:1ms                      always 1ms
//	uniform:0.5ms-2ms              uniform between the bounds
//	lognormal:1ms,0.5              log-normal with median 1ms and sigma 0.5
//	exp:1ms                        exponential with mean 1ms
//	mix:80@fixed:10ms|15@fixed:100ms|5@fixed:1s
//	                               weighted mix of the other forms
//
// Every form is capped at 60s. The returned function is safe for
// concurrent use.
func ParseLatency(spec string) (func() time.Duration, error) {
	spec = strings.TrimSpace(spec)
	switch spec {
	case "", "none", "0":
		return nil, nil
	}
	fn, err := parseLatency(spec, true)
	if err != nil {
		return nil, fmt.Errorf("bench: latency %q: %w", spec, err)
	}
	return fn, nil
}

const maxLatency = 60 * time.Second

func parseLatency(spec string, allowMix bool) (func() time.Duration, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, fmt.Errorf("want KIND:ARGS (fixed, uniform, lognormal, exp, mix)")
	}
	switch kind {
	case "fixed":
		d, err := parseDur(arg)
		if err != nil {
			return nil, err
		}
		return func() time.Duration { return d }, nil
	case "uniform":
		lo, hi, ok := strings.Cut(arg, "-")
		if !ok {
			return nil, fmt.Errorf("uniform wants MIN-MAX, e.g. uniform:0.5ms-2ms")
		}
		a, err := parseDur(lo)
		if err != nil {
			return nil, err
		}
		b, err := parseDur(hi)
		if err != nil {
			return nil, err
		}
		if b < a {
			return nil, fmt.Errorf("uniform: max %s below min %s", b, a)
		}
		span := int64(b - a)
		return func() time.Duration { return a + time.Duration(rand.Int64N(span+1)) }, nil
	case "lognormal":
		med, sig, ok := strings.Cut(arg, ",")
		if !ok {
			return nil, fmt.Errorf("lognormal wants MEDIAN,SIGMA, e.g. lognormal:1ms,0.5")
		}
		m, err := parseDur(med)
		if err != nil {
			return nil, err
		}
		if m <= 0 {
			return nil, fmt.Errorf("lognormal: median must be positive")
		}
		s, err := strconv.ParseFloat(strings.TrimSpace(sig), 64)
		if err != nil || s < 0 || s > 5 || math.IsNaN(s) {
			return nil, fmt.Errorf("lognormal: sigma %q must be a number in [0,5]", sig)
		}
		mu := math.Log(float64(m))
		return func() time.Duration {
			v := math.Exp(mu + s*rand.NormFloat64())
			if v > float64(maxLatency) {
				return maxLatency
			}
			return time.Duration(v)
		}, nil
	case "exp":
		mean, err := parseDur(arg)
		if err != nil {
			return nil, err
		}
		return func() time.Duration {
			v := rand.ExpFloat64() * float64(mean)
			if v > float64(maxLatency) {
				return maxLatency
			}
			return time.Duration(v)
		}, nil
	case "mix":
		if !allowMix {
			return nil, fmt.Errorf("mix cannot be nested")
		}
		return parseMix(arg)
	}
	return nil, fmt.Errorf("unknown kind %q (fixed, uniform, lognormal, exp, mix)", kind)
}

func parseMix(arg string) (func() time.Duration, error) {
	var weights []float64
	var fns []func() time.Duration
	total := 0.0
	for _, part := range strings.Split(arg, "|") {
		w, sub, ok := strings.Cut(part, "@")
		if !ok {
			return nil, fmt.Errorf("mix wants WEIGHT@SPEC|..., e.g. mix:80@fixed:10ms|20@fixed:100ms")
		}
		wt, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil || wt <= 0 || math.IsInf(wt, 0) || math.IsNaN(wt) {
			return nil, fmt.Errorf("mix: weight %q must be a positive number", w)
		}
		fn, err := parseLatency(strings.TrimSpace(sub), false)
		if err != nil {
			return nil, err
		}
		total += wt
		weights = append(weights, total)
		fns = append(fns, fn)
	}
	return func() time.Duration {
		x := rand.Float64() * total
		for i, c := range weights {
			if x < c {
				return fns[i]()
			}
		}
		return fns[len(fns)-1]()
	}, nil
}

func parseDur(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	if d < 0 || d > maxLatency {
		return 0, fmt.Errorf("duration %s out of range [0,%s]", d, maxLatency)
	}
	return d, nil
}
