package dlr

import (
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

func TestNormalizeID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"0", "0"},
		{"000", "0"},
		{"12345", "12345"},
		{"0000012345", "12345"},
		{" 12345\x00", "12345"},
		{"ABCdef", "abcdef"},
		{"0E999F21-2E4B-4C5A", "e999f21-2e4b-4c5a"},
		{"e999f21-2e4b-4c5a", "e999f21-2e4b-4c5a"},
		{"00A", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			testutil.RequireEqual(t, NormalizeID(tt.in), tt.want)
		})
	}
}

func TestEquivalent(t *testing.T) {
	tests := []struct {
		name          string
		resp, receipt string
		base          IDBase
		want          bool
	}{
		{"identical", "12345", "12345", Same, true},
		{"zero padded to 10 digits", "12345", "0000012345", Same, true},
		{"case only", "abc123DEF", "ABC123def", Same, true},
		{"dropped leading zero and case", "0E999F21-2E4B-4C5A-9D1F", "e999f21-2e4b-4c5a-9d1f", Same, true},
		{"different ids", "12345", "12346", Same, false},
		{"hex vs decimal without base", "1a2b3c", "1715004", Same, false},
		{"resp hex, dlr decimal", "1A2B3C", "1715004", RespHexDLRDec, true},
		{"resp hex padded, dlr decimal padded", "001a2b3c", "0001715004", RespHexDLRDec, true},
		{"resp hex, dlr decimal, mismatch", "1A2B3C", "1715005", RespHexDLRDec, false},
		{"resp decimal, dlr hex", "1715004", "001A2B3C", RespDecDLRHex, true},
		{"resp decimal, dlr hex, digits only", "4660", "1234", RespDecDLRHex, true},
		{"resp decimal, dlr hex, wrong way round", "1234", "4660", RespDecDLRHex, false},
		{"over 64 bits falls back to the string", "FFFFFFFFFFFFFFFFFF", "0ffffffffffffffffff", RespDecDLRHex, true},
		{"over 64 bits, other base, no match", "123456789012345678901234", "1a249b1f10a06c96aff2", RespDecDLRHex, false},
		{"uuid with base set", "0E999F21-2E4B", "e999f21-2e4b", RespHexDLRDec, true},
		{"max uint64", "ffffffffffffffff", "18446744073709551615", RespHexDLRDec, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.RequireEqual(t, Equivalent(tt.resp, tt.receipt, tt.base), tt.want)
		})
	}
}

func TestCanonicalKey(t *testing.T) {
	testutil.RequireEqual(t, CanonicalKey("00FF", RespHexDLRDec, false), "255")
	testutil.RequireEqual(t, CanonicalKey("00255", RespHexDLRDec, true), "255")
	testutil.RequireEqual(t, CanonicalKey("FF", RespDecDLRHex, true), "255")
	testutil.RequireEqual(t, CanonicalKey("255", RespDecDLRHex, false), "255")
	testutil.RequireEqual(t, CanonicalKey("00FF", Same, false), "ff")
	testutil.RequireEqual(t, CanonicalKey("zz9", RespHexDLRDec, false), "zz9")
	testutil.RequireEqual(t, CanonicalKey("000", RespHexDLRDec, false), "0")
}

func TestIDVariants(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"1715004", []string{"1715004", "1a2b3c", "24203268"}},
		{"001A2B3C", []string{"1a2b3c", "1715004"}},
		{"0E999F21-2E4B", []string{"e999f21-2e4b"}},
		{"0", []string{"0"}},
		{"9", []string{"9"}},
		{"10", []string{"10", "a", "16"}},
		{"", []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			testutil.RequireEqual(t, IDVariants(tt.in), tt.want)
		})
	}
}

func TestIDBaseString(t *testing.T) {
	testutil.RequireEqual(t, Same.String(), "same")
	testutil.RequireEqual(t, RespHexDLRDec.String(), "resp-hex-dlr-dec")
	testutil.RequireEqual(t, RespDecDLRHex.String(), "resp-dec-dlr-hex")
	testutil.RequireEqual(t, IDBase(9).String(), "IDBase(9)")
}
