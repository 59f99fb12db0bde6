package gateway

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/optgate/optgate/cluster"
	"github.com/optgate/optgate/internal/testutil"
)

// TestParseShared: what sharedValue writes reads back; anything else is
// errBadShared.
func TestParseShared(t *testing.T) {
	at := time.Unix(0, 1765000000123456789)
	f, err := parseShared(sharedValue(sharedWindow, "100000000000001", "447700900321", "1765000000123456789", "1"))
	testutil.RequireEqual(t, err, nil, "window")
	testutil.RequireEqual(t, f.window.At.Equal(at) && f.closed && f.window.WaID == "447700900321", true, "window fields")
	f, err = parseShared(sharedValue(sharedChannel, "acme", "+447700900321", "whatsapp/100000000000001"))
	testutil.RequireEqual(t, err, nil, "channel")
	testutil.RequireEqual(t, f.tenant+" "+f.rcpt+" "+string(f.ch), "acme +447700900321 whatsapp/100000000000001", "channel fields")
	for _, bad := range []string{"", "w", "x\x00", "w1\x002\x00notanumber\x000", "c\x00\x00", "cacme\x00+1", "w\x00\x001\x000"} {
		if _, err := parseShared([]byte(bad)); !errors.Is(err, errBadShared) {
			t.Errorf("parseShared(%q): %v, want errBadShared", bad, err)
		}
	}
}

// FuzzParseShared: a value from the bucket never panics the decoder.
func FuzzParseShared(f *testing.F) {
	f.Add(sharedValue(sharedWindow, "1", "2", "3", "0"))
	f.Add(sharedValue(sharedChannel, "acme", "+1", "sms"))
	f.Fuzz(func(t *testing.T, v []byte) {
		if _, err := parseShared(v); err != nil && !errors.Is(err, errBadShared) {
			t.Fatalf("error %v does not match errBadShared", err)
		}
	})
}

// TestIDGenNodesNeverMeet: two nodes started in the same microsecond
// issue disjoint ids (before, boot nanoseconds made two nodes started a
// millisecond apart issue the same ids after a million messages); a
// node's ids keep increasing and stay 64-bit hex the books can read; a
// single node's ids are as before (boot nanoseconds, no tag).
func TestIDGenNodesNeverMeet(t *testing.T) {
	a, b := newIDGen("n1"), newIDGen("n2")
	b.n.Store(a.n.Load())
	seen := make(map[string]bool, 200000)
	var last uint64
	for range 100000 {
		ida, idb := a.next(), b.next()
		if seen[ida] || seen[idb] || ida == idb {
			t.Fatalf("id issued twice: %s / %s", ida, idb)
		}
		seen[ida], seen[idb] = true, true
		n, err := strconv.ParseUint(ida, 16, 64)
		if err != nil || n <= last || n>>48 != idTag("n1") {
			t.Fatalf("id %s of n1: %v, after %x, tag %x", ida, err, last, idTag("n1"))
		}
		last = n
	}
	single := newIDGen("")
	n, _ := strconv.ParseUint(single.next(), 16, 64)
	if time.Since(time.Unix(0, int64(n))) > time.Minute {
		t.Fatalf("a single node's id %x is not its boot time in nanoseconds", n)
	}
	f, err := parseShared(sharedValue(sharedNode, "n1", strconv.FormatUint(idTag("n1"), 16)))
	testutil.RequireEqual(t, err, nil, "node fact")
	testutil.RequireEqual(t, f.node+"/"+strconv.FormatUint(f.tag, 16), "n1/"+strconv.FormatUint(idTag("n1"), 16), "node fact fields")
	if _, err := parseShared(sharedValue(sharedNode, "n1", "0")); !errors.Is(err, errBadShared) {
		t.Fatalf("tag 0: %v", err)
	}
}

// TestTagOwnerSeesAnotherNode: a node fact of another node with this
// node's tag is what joinShared refuses to start with; this node's own
// fact (from its last run) is not a conflict.
func TestTagOwnerSeesAnotherNode(t *testing.T) {
	g := &Gateway{cfg: &Config{Cluster: &cluster.Config{Node: "x"}}}
	tag := strconv.FormatUint(idTag("x"), 16)
	testutil.RequireEqual(t, g.applyShared(sharedValue(sharedNode, "x", tag)), nil, "own fact")
	testutil.RequireEqual(t, g.tagOwner(idTag("x")), "x", "own fact only")
	testutil.RequireEqual(t, g.applyShared(sharedValue(sharedNode, "y", tag)), nil, "other node's fact")
	testutil.RequireEqual(t, g.applyShared(sharedValue(sharedNode, "x", tag)), nil, "own fact again")
	testutil.RequireEqual(t, g.tagOwner(idTag("x")), "y", "the other node with the same tag")
}
