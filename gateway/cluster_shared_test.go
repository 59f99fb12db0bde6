package gateway

import (
	"errors"
	"testing"
	"time"

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
