package consent

import (
	"fmt"
	"strings"

	"github.com/optgate/optgate/internal/e164"

	"github.com/nyaruka/phonenumbers"
)

// maxNumberInput bounds what NormalizeRecipient accepts before parsing.
const maxNumberInput = 64

// NormalizeRecipient returns the E.164 form ("+" and digits) of a recipient:
// the one key under which a person's consent, WhatsApp window, last channel
// and marketing preference are stored and checked, on every channel.
// SMS numbers may be in any format phonenumbers parses, national numbers
// being read in defaultRegion (e.g. "US"). WhatsApp recipients are wa_ids
// (digits with the country code, no "+"); a leading "+" is accepted too.
// A number that does not parse or whose length is not possible for its
// country (phonenumbers.IsPossibleNumberWithReason must say IS_POSSIBLE: a
// number that is only possible locally, without its area code, is refused
// too) returns an error matching ErrInvalidNumber that quotes the input
// and says why. Numbers in ranges unknown
// to the metadata are accepted (possible, not necessarily valid): an opt-out
// from such a number must still be honoured. Input already in canonical
// E.164 (see canonicalDigits) is returned as is without calling
// phonenumbers, which is also what Check's fast path relies on.
//
// Numbers with two E.164 forms for one line (the WhatsApp ids of Mexico,
// Argentina and Brazil, whatsapp.md §14) map to one of them, see
// equivalentForm; the result is a fixed point.
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
		if !e164.AllDigits(d) {
			return "", fmt.Errorf("%w: %q: a WhatsApp id is digits only", ErrInvalidNumber, s)
		}
		in, region = "+"+d, "ZZ"
	}
	num, err := phonenumbers.Parse(in, region)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidNumber, s, err)
	}
	// A form WhatsApp (or an old directory) writes for a number that has
	// another E.164 form today is keyed under that one (see equivalentForm),
	// before the length check refuses it (Mexico's "+521…" is too long).
	if eq, ok := e164.Equivalent(phonenumbers.Format(num, phonenumbers.E164)[1:]); ok {
		if num, err = phonenumbers.Parse("+"+eq, "ZZ"); err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrInvalidNumber, s, err)
		}
	}
	if why := phonenumbers.IsPossibleNumberWithReason(num); why != phonenumbers.IS_POSSIBLE {
		return "", fmt.Errorf("%w: %q: not a possible number (%s)", ErrInvalidNumber, s, impossibleReason(why))
	}
	out := phonenumbers.Format(num, phonenumbers.E164)
	// The result must be a fixed point, or the same person could be stored
	// under one form and checked under another. phonenumbers strips a
	// national prefix again from some degenerate inputs (e.g. "+49000000").
	if out != in {
		if again, err := phonenumbers.Parse(out, "ZZ"); err != nil || phonenumbers.Format(again, phonenumbers.E164) != out {
			return "", fmt.Errorf("%w: %q: no stable E.164 form", ErrInvalidNumber, s)
		}
	}
	return out, nil
}

// impossibleReason words a phonenumbers length verdict for an error.
func impossibleReason(v phonenumbers.ValidationResult) string {
	switch v {
	case phonenumbers.INVALID_COUNTRY_CODE:
		return "unknown country code"
	case phonenumbers.TOO_SHORT:
		return "too short for its country"
	case phonenumbers.TOO_LONG:
		return "too long for its country"
	case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		return "a local number without its area code"
	default:
		return "no number of that length in its country"
	}
}

// ccInfo describes one country calling code for the E.164 fast path.
type ccInfo struct {
	known bool     // a country calling code
	fast  bool     // its numbers may take the fast path (see canonicalDigits)
	ndd   []string // literal national prefixes for parsing, digits only
	// lengths has bit n set when a national significant number of n digits
	// is possible (IS_POSSIBLE) for the code, as phonenumbers decides it:
	// the possible lengths of the general description of the code's main
	// region, local-only lengths excluded.
	lengths uint32
}

// callingCodes is indexed by country calling code (1–999). It is built from
// the phonenumbers metadata of each code's main region (the one Parse uses
// for "+cc…" input): a code whose main region strips a national prefix given
// by a pattern (rather than literal digits), or rewrites it with a transform
// rule, never takes the fast path.
var callingCodes = func() (t [1000]ccInfo) {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return t // no metadata: everything takes the slow path
	}
	for _, md := range coll.GetMetadata() {
		cc := int(md.GetCountryCode())
		if cc <= 0 || cc >= len(t) {
			continue
		}
		// Parsing "+cc…" uses the metadata of the main region of cc only.
		if main := phonenumbers.GetRegionCodeForCountryCode(cc); md.GetId() != main {
			continue
		}
		info := &t[cc]
		if !info.known {
			info.known, info.fast = true, true
		}
		gd := md.GetGeneralDesc()
		if gd.GetNationalNumberPattern() == "" {
			// No metadata: phonenumbers accepts 2–17 digits.
			for n := phonenumbers.MIN_LENGTH_FOR_NSN; n <= phonenumbers.MAX_LENGTH_FOR_NSN; n++ {
				info.lengths |= 1 << n
			}
		} else {
			for _, n := range gd.GetPossibleLength() {
				if n > 0 && n < 32 {
					info.lengths |= 1 << n
				}
			}
		}
		p := md.GetNationalPrefixForParsing()
		if p == "" {
			p = md.GetNationalPrefix()
		}
		switch {
		case md.GetNationalPrefixTransformRule() != "":
			info.fast = false
		case p == "":
		default:
			// Literal prefixes and alternations of them ("0|180020" for GB);
			// any other pattern sends the code to the slow path.
			for _, alt := range strings.Split(p, "|") {
				if !e164.AllDigits(alt) {
					info.fast = false
					break
				}
				info.ndd = append(info.ndd, alt)
			}
		}
	}
	return t
}()

// canonicalDigits reports whether s is already a canonical E.164 number for
// the purpose of Check's allocation-free fast path, returning the digits
// after "+". It accepts "+" and 7–15 digits (for WhatsApp also bare digits)
// whose country code exists, whose regions strip at most a literal national
// prefix, and whose national part starts with neither 0 nor such a prefix:
// and whose national part has a length possible for the code (callingCodes
// .lengths, from the phonenumbers metadata): phonenumbers accepts those as
// possible and returns them unchanged (TestCanonicalFastPath checks this on
// random numbers and every region's example numbers). Anything else takes
// the slow path through phonenumbers, which refuses impossible numbers; so
// Check on an impossible number returns an ErrInvalidNumber error (never
// "allow"): its caller must not send.
// Numbers of the codes that have equivalent forms (e164.Equivalent) never
// take the fast path, whatever the metadata says, so that a STOP stored
// under the canonical form is found from either form.
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
	if !e164.ValidDigits(d) {
		return "", false
	}
	cc := 0
	for l := 1; l <= 3; l++ {
		cc = cc*10 + int(d[l-1]-'0')
		info := &callingCodes[cc]
		if !info.known {
			continue
		}
		if !info.fast {
			return "", false
		}
		nat := d[l:]
		if cc == 54 || cc == 55 || cc == 52 && len(nat) == 11 {
			return "", false // may be an equivalent form: see equivalentForm
		}
		if len(nat) < 4 || nat[0] == '0' || info.lengths&(1<<len(nat)) == 0 {
			return "", false // impossible lengths go to phonenumbers, which refuses them
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
