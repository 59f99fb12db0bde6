package consent

import (
	"fmt"
	"strings"

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
		if !allDigits(d) {
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
	if eq, ok := equivalentForm(phonenumbers.Format(num, phonenumbers.E164)[1:]); ok {
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

// ValidE164 reports whether s is written as an E.164 number: "+" and then
// 7 to 15 digits, the first not 0. It checks the form only (it does not
// consult the numbering plan; NormalizeRecipient does that) and it is the
// one E.164 check of the module: the gateway's recipient and sender checks,
// its config and consent's fast path all use it.
//
// 15 is ITU-T E.164's maximum (country code included). E.164 sets no
// minimum; 7 is the shortest international number in service (a 1-digit
// country code with a 6-digit national number is not assigned, and the
// 3-digit codes with 4-digit numbers, such as Niue +683 and Tokelau +690,
// make 7). A leading 0 is never a country code.
func ValidE164(s string) bool {
	return len(s) > 0 && s[0] == '+' && e164Digits(s[1:])
}

// e164Digits reports whether d (without the "+") is 7 to 15 digits, the
// first not 0: ValidE164's rule for the digits.
func e164Digits(d string) bool {
	return len(d) >= 7 && len(d) <= 15 && d[0] != '0' && allDigits(d)
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
				if !allDigits(alt) {
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
// Numbers of the codes that have equivalent forms (equivalentForm) never
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
	if !e164Digits(d) {
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

// equivalentForm maps the digits (country code first, no "+") of a number
// written in a form that stands for the same line as another E.164 number
// onto that canonical form, and reports whether it did. It returns ("",
// false) for every number that is already canonical, which is almost all
// of them: only codes 52, 54 and 55 are looked at. The forms:
//
//   - Mexico (52): until 2019 mobiles were dialled from abroad as
//     "+52 1" + 10 digits; Mexico dropped the "1" (IFT's 2019 numbering
//     plan: every number is 10 digits, +52 + 10 digits in E.164), but
//     WhatsApp still writes the wa_id of many Mexican mobiles as
//     "521" + 10 digits. "521" + 10 digits maps to "52" + the 10 digits;
//     "52" + 11 digits has no other meaning (phonenumbers: too long).
//   - Argentina (54): a mobile's international form is "+54 9" + area code +
//     subscriber (10 digits), and that is its wa_id ("549…"); the same
//     subscriber written without the 9 ("+54" + 10 digits) is what national
//     directories and many platforms store. Both are valid for phonenumbers
//     (the second as a fixed line: a 10-digit Argentine number is either,
//     the ranges are shared), so "54" + 10 digits maps to "549" + the 10
//     digits when phonenumbers says that form is a valid mobile. The key of
//     an Argentine landline is then its mobile form, which no other line
//     can have: the subscriber number is the same.
//   - Brazil (55): mobiles gained a ninth digit "9" (ANATEL, 2012–2016) in
//     front of the 8 digits they had, which began with 6–9 (landlines begin
//     with 2–5 and kept 8 digits). WhatsApp ids of accounts made before the
//     change still have the old 8 digits. "55" + 2-digit area code +
//     8 digits beginning with 6–9 maps to "55" + area + "9" + the 8 digits
//     when phonenumbers says the result is a valid mobile.
//
// The canonical forms are what the country's numbering plan uses today
// and what the WhatsApp ids of new accounts are, except Mexico, where the
// canonical form is the plan's (the "521" wa_id is the legacy one).
func equivalentForm(d string) (string, bool) {
	if len(d) < 12 || d[0] != '5' {
		return "", false
	}
	switch {
	case len(d) == 13 && d[1] == '2' && d[2] == '1' && allDigits(d):
		// 52 1 + 10 digits.
		return "52" + d[3:], true
	case len(d) == 12 && d[1] == '4' && d[2] != '9' && d[2] != '0' && allDigits(d):
		// 54 + 10 digits without the mobile 9.
		if eq := "549" + d[2:]; validMobile(eq) {
			return eq, true
		}
	case len(d) == 12 && d[1] == '5' && d[2] != '0' && d[3] != '0' && d[4] >= '6' && d[4] <= '9' && allDigits(d):
		// 55 + area + 8-digit mobile of before the ninth digit.
		if eq := d[:4] + "9" + d[4:]; validMobile(eq) {
			return eq, true
		}
	}
	return "", false
}

// validMobile reports whether phonenumbers says "+"+d is a valid mobile
// number (or one that may be mobile or fixed).
func validMobile(d string) bool {
	num, err := phonenumbers.Parse("+"+d, "ZZ")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return false
	}
	t := phonenumbers.GetNumberType(num)
	return t == phonenumbers.MOBILE || t == phonenumbers.FIXED_LINE_OR_MOBILE
}

// PersonDigits returns the canonical digits (no "+") of a WhatsApp id or
// E.164 number for keys outside the consent store (the WhatsApp window,
// the wa_id book): d itself, without a leading "+", unless it is one of the
// equivalent forms of equivalentForm. It does not validate d; it allocates
// only when it rewrites.
func PersonDigits(d string) string {
	if len(d) > 0 && d[0] == '+' {
		d = d[1:]
	}
	if eq, ok := equivalentForm(d); ok {
		return eq
	}
	return d
}
