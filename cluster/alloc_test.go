//go:build !race

package cluster

import (
	"testing"
	"time"
)

// TestCurrentAllocs guards the MT hot path's cluster check: no allocation.
func TestCurrentAllocs(t *testing.T) {
	f := &Follower{}
	f.ok.Store(true)
	f.asOf.Store(time.Now().UnixNano())
	if !f.Current(time.Hour) {
		t.Fatal("a follower proven current a moment ago is not Current")
	}
	if n := testing.AllocsPerRun(1000, func() { f.Current(time.Hour) }); n != 0 {
		t.Errorf("Current allocates %v times", n)
	}
	if f.Current(0) {
		t.Error("Current with a zero budget")
	}
}
