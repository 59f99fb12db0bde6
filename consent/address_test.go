package consent

import (
	"errors"
	"testing"
)

func TestNormalizeAddress(t *testing.T) {
	type want struct {
		out  string
		kind AddressKind
		err  error
	}
	num := func(s string) want { return want{out: s} }
	bad := want{err: ErrInvalidNumber}
	amb := want{err: ErrAmbiguousNumber}
	for _, c := range []struct {
		name, addr string
		ton        uint8
		region     string
		want       want
	}{
		{"intl digits", "12025551001", TONInternational, "US", num("+12025551001")},
		{"intl with +", "+12025551001", TONInternational, "US", num("+12025551001")},
		{"intl with 00", "0033612345671", TONInternational, "US", num("+33612345671")},
		{"intl with 011", "01133612345671", TONInternational, "FR", num("+33612345671")},
		{"intl with the region's prefix (AU 0011)", "001133612345671", TONInternational, "AU", num("+33612345671")},
		{"intl possible but not valid is kept (opt-outs from unknown ranges count)", "2025551001", TONInternational, "US", num("+2025551001")},
		{"intl starting 0 with no prefix", "0612345601", TONInternational, "US", bad},
		{"intl impossible", "1202", TONInternational, "US", bad},
		{"unknown, valid national only", "2025551001", TONUnknown, "US", num("+12025551001")},
		{"unknown, our number written nationally", "2025550199", TONUnknown, "US", num("+12025550199")},
		{"unknown, valid international only", "33612345671", TONUnknown, "US", num("+33612345671")},
		{"unknown, both readings the same number", "12025551001", TONUnknown, "US", num("+12025551001")},
		{"unknown, 00 prefix", "0012025557003", TONUnknown, "US", num("+12025557003")},
		{"unknown, 011 prefix", "01133612345671", TONUnknown, "US", num("+33612345671")},
		{"unknown, 00 prefix from a FR link", "0033612345671", TONUnknown, "FR", num("+33612345671")},
		{"unknown, French national in FR", "0612345601", TONUnknown, "FR", num("+33612345601")},
		{"unknown, French national in US", "0612345601", TONUnknown, "US", bad},
		{"unknown, plus anywhere", "+33612345671", TONUnknown, "US", num("+33612345671")},
		{"unknown, no region: international only", "2025551001", TONUnknown, "", bad},
		// 20 1012345678 is an Egyptian mobile; 2010123456 is not a US number
		// (area code 201, exchange 012 cannot start with 0), so the Egyptian reading wins...
		{"unknown, only the international reading is valid", "201012345678", TONUnknown, "US", num("+201012345678")},
		// ...and 33 1 23 45 67 89 (Paris) against 0331234567 … none: both readings tested below.
		{"unknown, both valid and different", "4915123456789", TONUnknown, "DE", amb},
		{"unknown, Singapore mobile or a US number", "6596123456", TONUnknown, "US", amb},
		{"unknown, neither valid", "999", TONUnknown, "US", bad},
		{"national in region", "2025551001", TONNational, "US", num("+12025551001")},
		{"national French from a US tenant", "0612345601", TONNational, "US", bad},
		{"national French in FR", "0612345601", TONNational, "FR", num("+33612345601")},
		{"national with a trunk 1", "12025551001", TONNational, "US", num("+12025551001")},
		{"national without a region", "2025551001", TONNational, "", bad},
		{"subscriber number", "2025551001", TONSubscriber, "US", num("+12025551001")},
		{"subscriber number French in US", "0612345601", TONSubscriber, "US", bad},
		{"national written with +", "+12025551001", TONNational, "FR", num("+12025551001")},
		{"network specific read as unknown", "0012025557003", TONNetwork, "US", num("+12025557003")},
		{"alphanumeric kept", "Acme", TONAlphanumeric, "US", want{out: "Acme", kind: AddressAlphanumeric}},
		{"alphanumeric digits kept", "12025551001", TONAlphanumeric, "US", want{out: "12025551001", kind: AddressAlphanumeric}},
		{"short code kept", "12345", TONAbbreviated, "US", want{out: "12345", kind: AddressShortCode}},
		{"letters as a number", "ACME", TONUnknown, "US", bad},
		{"written with separators", "(202) 555-1001", TONUnknown, "US", num("+12025551001")},
		{"international written with separators", "+33 6.12.34.56.71", TONUnknown, "US", num("+33612345671")},
		{"011 written with blanks", "011 33 6 12 34 56 71", TONUnknown, "US", num("+33612345671")},
		{"separators only", " - ( ) ", TONUnknown, "US", bad},
		{"empty", "", TONInternational, "US", bad},
		{"plus only", "+", TONInternational, "US", bad},
		{"too long", "123456789012345678901234567890123456789012345678901234567890123456789", TONUnknown, "US", bad},
		{"only zeros after 00", "000012025557003", TONUnknown, "US", bad},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, kind, err := NormalizeAddress(c.addr, c.ton, 1, c.region)
			if c.want.err != nil {
				if !errors.Is(err, c.want.err) {
					t.Fatalf("NormalizeAddress(%q, ton %d, %s) = %q, %v; want an error matching %v", c.addr, c.ton, c.region, got, err, c.want.err)
				}
				return
			}
			if err != nil || got != c.want.out || kind != c.want.kind {
				t.Fatalf("NormalizeAddress(%q, ton %d, %s) = %q (kind %d), %v; want %q (kind %d)", c.addr, c.ton, c.region, got, kind, err, c.want.out, c.want.kind)
			}
		})
	}
}

// The ambiguous case of the table is truly ambiguous: both readings are
// valid numbers (a guard against the metadata changing under the test).
func TestNormalizeAddressAmbiguousReadings(t *testing.T) {
	if _, ok := validInternational("4915123456789"); !ok {
		t.Fatal("+49 151 23456789 is not valid")
	}
	if _, ok := nationalReading("4915123456789", "DE"); !ok {
		t.Fatal("4915123456789 is not a valid German national number")
	}
}

func TestKnownRegion(t *testing.T) {
	for r, want := range map[string]bool{"US": true, "FR": true, "GB": true, "ZZ": false, "XX": false, "": false, "us": false} {
		if KnownRegion(r) != want {
			t.Errorf("KnownRegion(%q) = %v", r, !want)
		}
	}
}

func FuzzAddress(f *testing.F) {
	for _, s := range []string{"12025551001", "+12025551001", "0012025557003", "0033612345671", "01133612345671", "2025550199",
		"0612345601", "Acme", "", "+", "00", "011", "0011", "\xff", "4915123456789", "+4407700900123"} {
		for _, ton := range []uint8{0, 1, 2, 4, 5, 6, 9} {
			f.Add(s, ton, uint8(1), uint8(ton))
		}
	}
	regions := []string{"US", "FR", "DE", "GB", "AU", "JP", "", "ZZ"}
	f.Fuzz(func(t *testing.T, s string, ton, npi, r uint8) {
		region := regions[int(r)%len(regions)]
		got, kind, err := NormalizeAddress(s, ton, npi, region)
		if err != nil {
			if !errors.Is(err, ErrInvalidNumber) && !errors.Is(err, ErrAmbiguousNumber) {
				t.Fatalf("%q ton %d: error %v matches neither sentinel", s, ton, err)
			}
			return
		}
		if kind != AddressNumber {
			if ton != TONAlphanumeric && ton != TONAbbreviated {
				t.Fatalf("%q ton %d: kind %d", s, ton, kind)
			}
			return
		}
		if len(got) < 2 || got[0] != '+' || !allDigits(got[1:]) {
			t.Fatalf("%q ton %d %s: not E.164: %q", s, ton, region, got)
		}
		// A fixed point, read as international or by consent.
		again, kind, err := NormalizeAddress(got, TONInternational, npi, region)
		if err != nil || again != got || kind != AddressNumber {
			t.Fatalf("%q ton %d %s: %q then %q, %v", s, ton, region, got, again, err)
		}
		if again, err := NormalizeRecipient(ChannelSMS, region, got); err != nil || again != got {
			t.Fatalf("%q: NormalizeRecipient(%q) = %q, %v", s, got, again, err)
		}
	})
}
