// Package e164 is the module's one check of the E.164 form and its one map
// of the WhatsApp ids that stand for another number (Mexico's 521,
// Argentina's 54 without the mobile 9, Brazil's mobiles of before the ninth
// digit). It is a leaf: consent, whatsapp and the gateway import it, and so
// none of them has to import another for a number rule (smpp, consent and
// whatsapp never import each other).
package e164

import "github.com/nyaruka/phonenumbers"

// Valid reports whether s is written as an E.164 number: "+" and then
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
func Valid(s string) bool {
	return len(s) > 0 && s[0] == '+' && ValidDigits(s[1:])
}

// ValidDigits reports whether d (without the "+") is 7 to 15 digits, the
// first not 0: Valid's rule for the digits.
func ValidDigits(d string) bool {
	return len(d) >= 7 && len(d) <= 15 && d[0] != '0' && AllDigits(d)
}

// AllDigits reports whether s is one or more ASCII digits.
func AllDigits(s string) bool {
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

// Equivalent maps the digits (country code first, no "+") of a number
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
func Equivalent(d string) (string, bool) {
	if len(d) < 12 || d[0] != '5' {
		return "", false
	}
	switch {
	case len(d) == 13 && d[1] == '2' && d[2] == '1' && AllDigits(d):
		// 52 1 + 10 digits.
		return "52" + d[3:], true
	case len(d) == 12 && d[1] == '4' && d[2] != '9' && d[2] != '0' && AllDigits(d):
		// 54 + 10 digits without the mobile 9.
		if eq := "549" + d[2:]; validMobile(eq) {
			return eq, true
		}
	case len(d) == 12 && d[1] == '5' && d[2] != '0' && d[3] != '0' && d[4] >= '6' && d[4] <= '9' && AllDigits(d):
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
// equivalent forms of Equivalent. It does not validate d; it allocates
// only when it rewrites.
func PersonDigits(d string) string {
	if len(d) > 0 && d[0] == '+' {
		d = d[1:]
	}
	if eq, ok := Equivalent(d); ok {
		return eq
	}
	return d
}
