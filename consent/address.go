package consent

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// ErrAmbiguousNumber is returned by NormalizeAddress when an address of
// unknown type reads as two different valid numbers (international and
// national): it is refused rather than guessed. It is kept apart from
// ErrInvalidNumber so callers can say why.
var ErrAmbiguousNumber = errors.New("consent: ambiguous number")

// AddressKind says what NormalizeAddress made of an address.
type AddressKind uint8

// Address kinds.
const (
	// AddressNumber is a phone number, returned in canonical E.164.
	AddressNumber AddressKind = iota
	// AddressAlphanumeric is an alphanumeric sender id (TON 5), kept as is.
	AddressAlphanumeric
	// AddressShortCode is an abbreviated number (TON 6), kept as is: it is
	// not an E.164 number and is never turned into one.
	AddressShortCode
)

// SMPP type-of-number values (SMPP 3.4 §5.2.5) NormalizeAddress reads.
const (
	TONUnknown       uint8 = 0
	TONInternational uint8 = 1
	TONNational      uint8 = 2
	TONNetwork       uint8 = 3
	TONSubscriber    uint8 = 4
	TONAlphanumeric  uint8 = 5
	TONAbbreviated   uint8 = 6
)

// NormalizeAddress reads an address as an SMSC or a platform sends it (an
// SMPP source_addr or destination_addr with its TON; HTTP forms are "+"
// numbers or TON 0 strings) and returns the number in canonical E.164 (the
// form NormalizeRecipient(ChannelSMS, …) returns, so consent keys agree),
// or the alphanumeric id or short code kept as is. region (e.g. "US") is
// where national forms are read; "" means none can be.
//
//   - A "+" prefix is international whatever the TON (5 and 6 excepted).
//   - TON 1 (international): digits with the country code; an international
//     dialling prefix in front (00, 011, or region's own, e.g. 0011 in AU)
//     is removed. The number must be possible (NormalizeRecipient's rule).
//   - TON 2 (national) and 4 (subscriber): a national number of region; it
//     must be valid there (phonenumbers.IsValidNumber): a French 06… number
//     read in US is refused, never sent as +1 06….
//   - TON 0 (unknown), 3 and anything else: both readings are tried, the
//     international one (the digits, after removing an international
//     prefix) and the national one in region. If exactly one is a valid
//     number, or both are the same number, that is the answer; if both are
//     valid and differ the error matches ErrAmbiguousNumber; if neither is
//     valid it matches ErrInvalidNumber.
//   - TON 5 (alphanumeric) and 6 (abbreviated) are kept as they are.
//
// Blanks, dashes, dots, slashes and parentheses between the digits are
// dropped. NPI is not used: SMSCs set it carelessly and the TON and the digits
// decide. Errors match ErrInvalidNumber or ErrAmbiguousNumber and quote the
// input. A number result is a fixed point: NormalizeAddress(out, 1, npi, r)
// and NormalizeRecipient(ChannelSMS, r, out) both return out.
func NormalizeAddress(addr string, ton, npi uint8, region string) (string, AddressKind, error) {
	_ = npi
	s := strings.TrimSpace(addr)
	if s == "" {
		return "", AddressNumber, fmt.Errorf("%w: empty", ErrInvalidNumber)
	}
	if len(s) > maxNumberInput {
		return "", AddressNumber, fmt.Errorf("%w: %q…: longer than %d bytes", ErrInvalidNumber, s[:16], maxNumberInput)
	}
	switch ton {
	case TONAlphanumeric:
		return s, AddressAlphanumeric, nil
	case TONAbbreviated:
		return s, AddressShortCode, nil
	}
	if strings.ContainsAny(s, visualSeparators) {
		// "+1 (202) 555-1001" as people and APIs write it.
		s = strings.Map(func(r rune) rune {
			if strings.ContainsRune(visualSeparators, r) {
				return -1
			}
			return r
		}, s)
		if s == "" {
			return "", AddressNumber, fmt.Errorf("%w: %q: no digits", ErrInvalidNumber, addr)
		}
	}
	if s[0] == '+' {
		if !allDigits(s[1:]) {
			return "", AddressNumber, fmt.Errorf("%w: %q: not digits after +", ErrInvalidNumber, s)
		}
		out, err := NormalizeRecipient(ChannelSMS, "", s)
		return out, AddressNumber, err
	}
	if !allDigits(s) {
		return "", AddressNumber, fmt.Errorf("%w: %q: not digits", ErrInvalidNumber, s)
	}
	switch ton {
	case TONInternational:
		d := s
		if d[0] == '0' {
			rest, ok := stripIDD(d, region)
			if !ok {
				return "", AddressNumber, fmt.Errorf("%w: %q: an international number starts with its country code", ErrInvalidNumber, s)
			}
			d = rest
		}
		out, err := NormalizeRecipient(ChannelSMS, "", "+"+d)
		return out, AddressNumber, err
	case TONNational, TONSubscriber:
		out, ok := nationalReading(s, region)
		if !ok {
			return "", AddressNumber, fmt.Errorf("%w: %q: not a valid national number in region %q", ErrInvalidNumber, s, region)
		}
		return out, AddressNumber, nil
	}
	// Unknown type: the international and the national readings.
	var intl string
	intlOK := false
	if d := s; d[0] != '0' {
		intl, intlOK = validInternational(d)
	} else if rest, ok := stripIDD(d, region); ok {
		intl, intlOK = validInternational(rest)
	}
	nat, natOK := nationalReading(s, region)
	switch {
	case intlOK && natOK && intl != nat:
		return "", AddressNumber, fmt.Errorf("%w: %q reads as %s (international) and as %s (national in %s)", ErrAmbiguousNumber, s, intl, nat, region)
	case intlOK:
		return intl, AddressNumber, nil
	case natOK:
		return nat, AddressNumber, nil
	}
	return "", AddressNumber, fmt.Errorf("%w: %q: neither a valid international number nor a valid national number in region %q", ErrInvalidNumber, s, region)
}

// visualSeparators are the characters a written number may hold between
// its digits; NormalizeAddress drops them.
const visualSeparators = " -.()/"

// validInternational reads digits (country code first) as an international number
// and reports whether it is valid; the result is canonical.
func validInternational(d string) (string, bool) {
	if d == "" || d[0] == '0' {
		return "", false
	}
	out, err := NormalizeRecipient(ChannelSMS, "", "+"+d)
	if err != nil {
		return "", false
	}
	num, err := phonenumbers.Parse(out, "ZZ")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", false
	}
	return out, true
}

// nationalReading reads digits as a number dialled in region and reports
// whether it is valid; the result is canonical.
func nationalReading(d, region string) (string, bool) {
	if region == "" || region == "ZZ" {
		return "", false
	}
	num, err := phonenumbers.Parse(d, region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", false
	}
	out, err := NormalizeRecipient(ChannelSMS, "", phonenumbers.Format(num, phonenumbers.E164))
	if err != nil {
		return "", false
	}
	return out, true
}

// stripIDD removes an international dialling prefix from d: region's own
// (from the phonenumbers metadata), then 011 and 00, which SMSCs put in
// front of international numbers whatever their region. It reports false
// when none is there or nothing but zeros would be left in front.
func stripIDD(d, region string) (string, bool) {
	if re := iddPattern(region); re != nil {
		if loc := re.FindStringIndex(d); loc != nil && loc[1] < len(d) && d[loc[1]] != '0' {
			return d[loc[1]:], true
		}
	}
	for _, p := range [...]string{"011", "00"} {
		if strings.HasPrefix(d, p) && len(d) > len(p) && d[len(p)] != '0' {
			return d[len(p):], true
		}
	}
	return "", false
}

var (
	iddOnce sync.Once
	idd     map[string]*regexp.Regexp // region → anchored international prefix
)

// iddPattern returns region's international dialling prefix as an anchored
// pattern, or nil.
func iddPattern(region string) *regexp.Regexp {
	if region == "" {
		return nil
	}
	iddOnce.Do(func() {
		idd = map[string]*regexp.Regexp{}
		coll, err := phonenumbers.MetadataCollection()
		if err != nil {
			return
		}
		for _, md := range coll.GetMetadata() {
			p := md.GetInternationalPrefix()
			if p == "" || md.GetId() == "" {
				continue
			}
			if re, err := regexp.Compile(`^(?:` + p + `)`); err == nil {
				idd[md.GetId()] = re
			}
		}
	})
	return idd[region]
}

// KnownRegion reports whether region is a region code the phone number
// metadata knows (e.g. "US", "FR"), as config checks need.
func KnownRegion(region string) bool {
	return region != "" && supportedRegions()[region]
}

var (
	regionsOnce sync.Once
	regions     map[string]bool
)

func supportedRegions() map[string]bool {
	regionsOnce.Do(func() { regions = phonenumbers.GetSupportedRegions() })
	return regions
}
