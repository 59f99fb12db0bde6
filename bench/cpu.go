package bench

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTime returns the CPU time (user + system) used so far by process
// pid, or by the harness itself when pid is 0 (Linux /proc; 0 elsewhere).
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		var ru syscall.Rusage
		if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}

// cpuMeter measures CPU cores used by the harness and its children over
// an interval.
type cpuMeter struct {
	start time.Time
	pids  map[string]int
	t0    map[string]time.Duration
}

func newCPUMeter(pids map[string]int) *cpuMeter {
	m := &cpuMeter{start: time.Now(), pids: pids, t0: map[string]time.Duration{}}
	m.t0["harness"] = cpuTime(0)
	for name, pid := range pids {
		m.t0[name] = cpuTime(pid)
	}
	return m
}

// cores returns, per process name, the CPU cores used on average since
// the meter started.
func (m *cpuMeter) cores() map[string]float64 {
	el := time.Since(m.start).Seconds()
	out := map[string]float64{}
	if el <= 0 {
		return out
	}
	out["harness"] = (cpuTime(0) - m.t0["harness"]).Seconds() / el
	for name, pid := range m.pids {
		out[name] = (cpuTime(pid) - m.t0[name]).Seconds() / el
	}
	return out
}
