package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// seen collects what a Shared watcher applied, in order.
type seen struct {
	mu   sync.Mutex
	vals []string
}

func (s *seen) apply(v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals = append(s.vals, string(v))
	return nil
}

func (s *seen) last(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.vals) - 1; i >= 0; i-- {
		if strings.HasPrefix(s.vals[i], prefix) {
			return s.vals[i]
		}
	}
	return ""
}

// TestSharedConvergesOnEveryNode: facts put on any node reach every node's
// watcher (the putter's too), the last put of a key wins on all of them,
// a watcher started later (a restarted node) first gets what the bucket
// holds, and no key or subject carries the caller's key (a number).
func TestSharedConvergesOnEveryNode(t *testing.T) {
	tc := newTestCluster(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shared := make([]*Shared, 3)
	seens := make([]*seen, 3)
	for i, c := range tc.conns {
		s, err := c.Shared(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		shared[i], seens[i] = s, &seen{}
		if _, err := s.Watch(ctx, seens[i].apply); err != nil {
			t.Fatal(err)
		}
	}
	const n = 200
	for i := range n {
		shared[i%3].Put([]byte(fmt.Sprintf("+1514555%04d", i)), []byte(fmt.Sprintf("k%04d=first", i)))
	}
	waitAll := func(key, want string) {
		t.Helper()
		for i, sn := range seens {
			testutil.CheckFor(t, 15*time.Second, func() error {
				if got := sn.last(key + "="); got != want {
					return fmt.Errorf("node %d: %s is %q, want %q", i+1, key, got, want)
				}
				return nil
			})
		}
	}
	waitAll("k0199", "k0199=first")
	waitAll("k0007", "k0007=first")
	// Puts of one key from two nodes land in the bucket's one order; once
	// the first is in, a later put from another node wins everywhere.
	shared[2].Put([]byte("+15145550007"), []byte("k0007=second"))
	waitAll("k0007", "k0007=second")
	if k := shared[0].Key([]byte("+15145550007")); strings.Contains(k, "555") || len(k) != 40 {
		t.Fatalf("bucket key %q", k)
	}
	late := &seen{}
	if _, err := shared[1].Watch(ctx, late.apply); err != nil {
		t.Fatal(err)
	}
	late.mu.Lock()
	got := len(late.vals)
	late.mu.Unlock()
	testutil.RequireEqual(t, got, n, "values a late watcher got before Watch returned (one per key)")
	testutil.RequireEqual(t, late.last("k0007="), "k0007=second", "a late watcher's value of a key put twice")
	testutil.RequireEqual(t, shared[0].Dropped()+shared[0].Failed(), uint64(0), "puts dropped or failed")
}
