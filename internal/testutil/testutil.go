package testutil

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// RequireEqual fails the test now when got and want are not deeply equal
// (reflect.DeepEqual). The optional msg (formatted with fmt.Sprint) says
// what was compared and prefixes the failure.
func RequireEqual[T any](t testing.TB, got, want T, msg ...any) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	if len(msg) == 0 {
		t.Fatalf("got %#v, want %#v", got, want)
		return
	}
	t.Fatalf("%s: got %#v, want %#v", fmt.Sprint(msg...), got, want)
}

// CheckFor calls fn until it returns nil and fails the test now, with fn's
// last error, when it has not done so within total. The first call is
// immediate; later calls come every few milliseconds, so a test waits only
// as long as the condition takes.
func CheckFor(t testing.TB, total time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	every := time.Millisecond
	for {
		err := fn()
		if err == nil {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("condition not met after %s: %v", total, err)
			return
		}
		time.Sleep(every)
		if every < 10*time.Millisecond {
			every *= 2
		}
	}
}
