package testutil

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

// fatalTB records Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestRequireEqual(t *testing.T) {
	tb := &fatalTB{TB: t}
	RequireEqual(tb, []int{1, 2}, []int{1, 2})
	if tb.msg != "" {
		t.Fatalf("equal slices failed: %s", tb.msg)
	}
	RequireEqual(tb, []int{1, 2}, []int{1, 3}, "ids of ", "acme")
	if !strings.HasPrefix(tb.msg, "ids of acme: got []int{1, 2}, want []int{1, 3}") {
		t.Fatalf("message %q", tb.msg)
	}
	tb.msg = ""
	RequireEqual(tb, "a", "b")
	if tb.msg != `got "a", want "b"` {
		t.Fatalf("message %q", tb.msg)
	}
}

func TestCheckFor(t *testing.T) {
	n := 0
	CheckFor(t, time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("fn called %d times, want 3", n)
	}
	tb := &fatalTB{TB: t}
	start := time.Now()
	CheckFor(tb, 30*time.Millisecond, func() error { return errors.New("never") })
	if !strings.Contains(tb.msg, "never") || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("after %s: %q", time.Since(start), tb.msg)
	}
}

func TestLeakCheck(t *testing.T) {
	l := StartLeakCheck()
	l.wait = 200 * time.Millisecond
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); leakyWorker(stop) }()
	err := l.Check()
	if err == nil || !strings.Contains(err.Error(), "leakyWorker") {
		t.Fatalf("running goroutine not reported: %v", err)
	}
	close(stop)
	wg.Wait()
	if err := l.Check(); err != nil {
		t.Fatalf("ended goroutine reported: %v", err)
	}
	done := make(chan struct{})
	go func() { <-time.After(50 * time.Millisecond); close(done) }() // a slow shutdown
	if err := l.Check(); err != nil {
		t.Fatalf("goroutine ending within the wait reported: %v", err)
	}
	<-done
}

func leakyWorker(stop chan struct{}) { <-stop }

func TestLeakAbandon(t *testing.T) {
	l := StartLeakCheck()
	l.wait = 100 * time.Millisecond
	stop := make(chan struct{})
	defer close(stop)
	before := make(chan struct{})
	defer close(before)
	go leakyWorker(before) // started before the abandoning test: still a leak
	t.Run("abandons", func(t *testing.T) {
		l.Abandon(t, "a worker left running on purpose")
		go leakyWorker(stop)
	})
	err := l.Check()
	if err == nil || strings.Count(err.Error(), "leakyWorker") != 1 {
		t.Fatalf("want exactly the earlier worker reported, got %v", err)
	}
}
