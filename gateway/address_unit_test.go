package gateway

import (
	"errors"
	"testing"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
)

// Address conversion alone, on a Gateway built without New (stageGateway).

func TestSMPPNumberAndDest(t *testing.T) {
	g := stageGateway(t, false)
	acme := g.tenants["acme"]
	for _, tc := range []struct {
		name string
		a    smpp.Address
		want string
		kind consent.AddressKind
		err  error // of smppDest; nil: want
	}{
		{"ours, TON 1", addr(consent.TONInternational, "15145550199"), stageNumber, consent.AddressNumber, nil},
		{"ours, TON 0", addr(consent.TONUnknown, "15145550199"), stageNumber, consent.AddressNumber, nil},
		{"international", addr(consent.TONInternational, "447700900123"), "+447700900123", consent.AddressNumber, nil},
		{"national in the region", addr(consent.TONNational, "5145550123"), stageTo, consent.AddressNumber, nil},
		{"alphanumeric", addr(consent.TONAlphanumeric, "ACME"), "ACME", consent.AddressAlphanumeric, consent.ErrInvalidNumber},
		{"short code", addr(consent.TONAbbreviated, "12345"), "12345", consent.AddressShortCode, consent.ErrInvalidNumber},
	} {
		n, kind, err := g.smppNumber(tc.a, acme.cfg.DefaultRegion)
		if err != nil || n != tc.want || kind != tc.kind {
			t.Errorf("smppNumber %s: %q %v %v, want %q %v", tc.name, n, kind, err, tc.want, tc.kind)
		}
		d, err := g.smppDest(acme, tc.a)
		switch {
		case tc.err == nil && (err != nil || d != tc.want):
			t.Errorf("smppDest %s: %q %v, want %q", tc.name, d, err, tc.want)
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("smppDest %s: %q %v, want %v", tc.name, d, err, tc.err)
		}
	}
	if _, err := g.smppDest(acme, addr(consent.TONInternational, "12")); !errors.Is(err, consent.ErrInvalidNumber) {
		t.Errorf("smppDest of 12: %v", err)
	}
}

func TestSenderFor(t *testing.T) {
	g := stageGateway(t, false)
	acme, beta := g.tenants["acme"], g.tenants["beta"]
	for _, tc := range []struct {
		name string
		t    *Tenant
		addr string
		ton  uint8
		want string
		err  error
	}{
		{"own number", acme, stageNumber, consent.TONInternational, stageNumber, nil},
		{"own number, national form", acme, "5145550199", consent.TONNational, stageNumber, nil},
		{"own number as numeric TON 5", acme, "15145550199", consent.TONAlphanumeric, stageNumber, nil},
		{"another tenant's number", acme, stageBetaNumber, consent.TONInternational, "", ErrSenderNotOwned},
		{"another tenant's number as numeric TON 5", acme, "15145550111", consent.TONAlphanumeric, "", ErrSenderNotOwned},
		{"nobody's number", acme, "+15145550000", consent.TONInternational, "", ErrSenderNotOwned},
		{"short code", acme, "12345", consent.TONAbbreviated, "", ErrSenderNotOwned},
		{"listed sender id", beta, "BETA", consent.TONAlphanumeric, "BETA", nil},
		{"another tenant's sender id", acme, "BETA", consent.TONAlphanumeric, "", ErrSenderNotOwned},
		{"unlisted id, tenant with numbers and no sender_ids", acme, "ACME", consent.TONAlphanumeric, "ACME", nil},
		{"unlisted id, tenant with sender_ids", beta, "OTHER", consent.TONAlphanumeric, "", ErrSenderNotOwned},
		{"malformed id", acme, "FAR-TOO-LONG-ID", consent.TONAlphanumeric, "", consent.ErrInvalidSender},
	} {
		got, err := g.senderFor(tc.t, tc.addr, tc.ton, npiISDN)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: %q %v, want %v", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestAddrIntoAndHTTPSenderTON(t *testing.T) {
	if a := addrOf(stageNumber, consent.TONInternational, npiISDN); a.TON != consent.TONInternational || a.NPI != npiISDN || string(a.Addr) != stageNumber[1:] {
		t.Errorf("number: %+v", a)
	}
	if a := addrOf("ACME", consent.TONInternational, npiISDN); a.TON != consent.TONAlphanumeric || a.NPI != npiUnknown || string(a.Addr) != "ACME" {
		t.Errorf("alphanumeric: %+v", a)
	}
	for from, want := range map[string]uint8{"ACME": consent.TONAlphanumeric, "+15145550199": consent.TONUnknown,
		"514-555-0199": consent.TONUnknown, "A1": consent.TONAlphanumeric} {
		if got := httpSenderTON(from); got != want {
			t.Errorf("httpSenderTON(%q) = %d, want %d", from, got, want)
		}
	}
}
