package consent

import (
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// maxNumberInput bounds what NormalizeRecipient accepts before parsing.
const maxNumberInput = 64

// NormalizeRecipient returns the E.164 form ("+" and digits) of a recipient.
// SMS numbers may be in any format phonenumbers parses, national numbers
// being read in defaultRegion (e.g. "US"). WhatsApp recipients are wa_ids
// (digits with the country code, no "+"); a leading "+" is accepted too.
// A number that does not parse or has an impossible length returns an error
// matching ErrInvalidNumber that quotes the input. Numbers in ranges unknown
// to the metadata are accepted (possible, not necessarily valid): an opt-out
// from such a number must still be honoured. Input already in canonical
// E.164 (see canonicalDigits) is returned as is without calling
// phonenumbers, which is also what Check's fast path relies on.
func NormalizeRecipient(channel, defaultRegion, s string) (string, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidNumber)
	}
	if len(in) > maxNumberInput {
		return "", fmt.Errorf("%w: %q…: longer than %d bytes", ErrInvalidNumber, in[:16], maxNumberInput)
	}
	if d, ok := canonicalDigits(channel, in); ok {
		// Already canonical: phonenumbers would return it unchanged.
		if len(in) > 0 && in[0] == '+' {
			return in, nil
		}
		return "+" + d, nil
	}
	region := defaultRegion
	if channel == ChannelWhatsApp {
		d := strings.TrimPrefix(in, "+")
		if !allDigits(d) {
			return "", fmt.Errorf("%w: %q: a WhatsApp id is digits only", ErrInvalidNumber, s)
		}
		in, region = "+"+d, "ZZ"
	}
	num, err := phonenumbers.Parse(in, region)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidNumber, s, err)
	}
	if !phonenumbers.IsPossibleNumber(num) {
		return "", fmt.Errorf("%w: %q: not a possible number", ErrInvalidNumber, s)
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ccInfo describes one country calling code for the E.164 fast path.
type ccInfo struct {
	valid bool
	ndd   []string // national (trunk) prefixes of its regions, digits only
}

// callingCodes is indexed by country calling code (1–999).
var callingCodes = func() (t [1000]ccInfo) {
	for cc := 1; cc < len(t); cc++ {
		regions := phonenumbers.GetRegionCodesForCountryCode(cc)
		if len(regions) == 0 {
			continue
		}
		t[cc].valid = true
		for _, r := range regions {
			if p := phonenumbers.GetNddPrefixForRegion(r, true); p != "" {
				t[cc].ndd = append(t[cc].ndd, p)
			}
		}
	}
	return t
}()

// canonicalDigits reports whether s is already a canonical E.164 number for
// the purpose of Check's allocation-free fast path, returning the digits
// after "+". It accepts "+" and 7–15 digits (for WhatsApp also bare digits)
// whose country code exists and whose national part starts with neither 0
// nor a national trunk prefix of that country: the forms phonenumbers would
// rewrite. Anything else takes the slow path through NormalizeRecipient.
// It does not validate number ranges: nothing can be suppressed under an
// invalid number, so such a number is simply not found.
func canonicalDigits(channel, s string) (string, bool) {
	var d string
	switch {
	case len(s) > 0 && s[0] == '+':
		d = s[1:]
	case channel == ChannelWhatsApp:
		d = s
	default:
		return "", false
	}
	if len(d) < 7 || len(d) > 15 || !allDigits(d) || d[0] == '0' {
		return "", false
	}
	cc := 0
	for l := 1; l <= 3; l++ {
		cc = cc*10 + int(d[l-1]-'0')
		info := &callingCodes[cc]
		if !info.valid {
			continue
		}
		nat := d[l:]
		if len(nat) < 4 || nat[0] == '0' {
			return "", false
		}
		for _, p := range info.ndd {
			if strings.HasPrefix(nat, p) {
				return "", false
			}
		}
		return d, true
	}
	return "", false
}
