package api

import (
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// The lockout's arithmetic: the lock starts after auth_failures, doubles,
// stops at authMaxLock, and old failures are forgotten.
func TestHTTPSecLockout(t *testing.T) {
	s := newHTTPSec(Config{AuthFailures: 3, AuthLockout: time.Second}, nil)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, want := range []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second} {
		if lock, _ := s.failed("a", now); lock != want {
			t.Fatalf("failure %d: lock %v, want %v", i+1, lock, want)
		}
	}
	testutil.RequireEqual(t, s.lockedFor("a", now.Add(3*time.Second)), time.Second)
	testutil.RequireEqual(t, s.lockedFor("b", now), time.Duration(0))
	for range 40 {
		s.failed("a", now)
	}
	testutil.RequireEqual(t, s.lockedFor("a", now), authMaxLock)
	// Forgotten authForget after the last failure, once the lock is over.
	later := now.Add(authMaxLock + authForget + time.Second)
	testutil.RequireEqual(t, s.lockedFor("a", later), time.Duration(0))
	testutil.RequireEqual(t, s.anyTracked(), false)
	if lock, n := s.failed("a", later); lock != 0 || n != 1 {
		t.Fatalf("after forgetting: lock %v after %d failures", lock, n)
	}
}
