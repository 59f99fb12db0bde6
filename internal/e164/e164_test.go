package e164

import (
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// Valid's edges: 7 and 15 digits are E.164, 6 and 16 are not; no leading
// 0, no "+" missing, digits only.
func TestValid(t *testing.T) {
	for in, want := range map[string]bool{
		"+6831234": true, "+683123": false, "+123456789012345": true, "+1234567890123456": false,
		"+0123456789": false, "15145550123": false, "+1514555012a": false, "+": false, "": false,
	} {
		testutil.RequireEqual(t, Valid(in), want, in)
	}
}

// The WhatsApp id forms map onto one key, with or without "+", and other
// numbers are left as they are.
func TestPersonDigits(t *testing.T) {
	for in, want := range map[string]string{
		"5215512345678":  "525512345678",  // Mexico's legacy 521 wa_id
		"+525512345678":  "525512345678",  // already canonical
		"541123456789":   "5491123456789", // Argentina without the mobile 9
		"551187654321":   "5511987654321", // Brazil before the ninth digit
		"+15145550123":   "15145550123",
		"not-a-number-x": "not-a-number-x",
	} {
		testutil.RequireEqual(t, PersonDigits(in), want, in)
	}
}
