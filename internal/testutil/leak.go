package testutil

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// LeakWait is how long Check waits for the tests' goroutines to end.
const LeakWait = 5 * time.Second

// longLived names functions of goroutines that a library or the runtime
// starts lazily, on first use, and keeps for the life of the process: they
// are not the tests' leaks. Goroutines started before the tests (package
// init: glog's flush daemon, opencensus's view worker and the like) are
// ignored without being listed here.
var longLived = []string{
	"os/signal.signal_recv",     // signal.Notify's loop
	"runtime.ensureSigM",        // signal.Notify's mask keeper
	"runtime/trace.Start.func1", // go test -trace
	// fasthttp's cleaners sleep their idle period (10 s by default) between
	// rounds and notice a stop only when they wake; the date updater and
	// the default dialer's cache cleaner live for the process.
	"fasthttp.(*Client).mCleaner",
	"fasthttp.(*HostClient).connsCleaner",
	"fasthttp.(*workerPool).Start.func2",
	"fasthttp.updateServerDate",
	"fasthttp.(*TCPDialer).tcpAddrsClean",
}

// Leaks is a goroutine leak check for TestMain:
//
//	lc := testutil.StartLeakCheck()
//	code := m.Run()
//	os.Exit(lc.Exit(code))
//
// Every goroutine that was not running at StartLeakCheck and is still
// running after m.Run (allowing LeakWait for shutdowns to finish) is a leak,
// unless it is a known long-lived library goroutine.
type Leaks struct {
	before map[string]bool
	wait   time.Duration // LeakWait; shorter in testutil's own tests
}

// StartLeakCheck records the goroutines running now, which the check ignores.
func StartLeakCheck() *Leaks {
	l := &Leaks{before: map[string]bool{}, wait: LeakWait}
	for _, g := range goroutines() {
		l.before[goroutineID(g)] = true
	}
	return l
}

// Check waits up to LeakWait for the goroutines started since
// StartLeakCheck to end and returns an error holding the stacks of those
// that did not.
func (l *Leaks) Check() error {
	deadline := time.Now().Add(l.wait)
	for {
		leaked := l.leaked()
		if len(leaked) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testutil: %d goroutine(s) outlived the tests by %s:\n\n%s",
				len(leaked), l.wait, strings.Join(leaked, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exit returns the exit code for os.Exit: code when the tests failed (their
// goroutines are not worth reporting then), 1 with the leaked stacks on
// stderr when the tests passed but leaked, else 0.
func (l *Leaks) Exit(code int) int {
	if code != 0 {
		return code
	}
	if err := l.Check(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// Abandon excuses the goroutines that t starts and leaves running, for a
// test that leaves work behind on purpose (a store deliberately left open
// on a failed disk, as the process would before exiting); why says what is
// left and why. Call it first in the test: it registers a cleanup that runs
// after the test's others and excuses every goroutine started since the
// call that is still running then. Tests that use it must not run in
// parallel with others.
func (l *Leaks) Abandon(t testing.TB, why string) {
	t.Helper()
	running := map[string]bool{}
	for _, g := range goroutines() {
		running[goroutineID(g)] = true
	}
	t.Cleanup(func() {
		// Not "ids above a mark": the runtime hands out goroutine ids in
		// batches per P, so a later goroutine may have a lower id.
		for _, g := range goroutines() {
			if id := goroutineID(g); !running[id] {
				l.before[id] = true
			}
		}
		t.Logf("goroutines left behind on purpose: %s", why)
	})
}

func (l *Leaks) leaked() []string {
	var out []string
	for _, g := range goroutines() {
		if l.before[goroutineID(g)] || isLongLived(g) {
			continue
		}
		out = append(out, g)
	}
	return out
}

func isLongLived(stack string) bool {
	for _, fn := range longLived {
		if strings.Contains(stack, fn) {
			return true
		}
	}
	return false
}

// goroutines returns the stack of every goroutine but the caller's.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	all := strings.Split(string(bytes.TrimSpace(buf)), "\n\n")
	return all[1:] // the first is the caller
}

// goroutineID returns the id from a stack's "goroutine N [state]:" header.
func goroutineID(stack string) string {
	s, _ := strings.CutPrefix(stack, "goroutine ")
	id, _, _ := strings.Cut(s, " ")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return stack
	}
	return id
}

// Main is the TestMain of a package that needs nothing else: it runs the
// tests, then the leak check, and exits.
func Main(m *testing.M) {
	l := StartLeakCheck()
	os.Exit(l.Exit(m.Run()))
}
