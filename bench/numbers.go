package bench

import "strconv"

// Number pools. Every number is a valid North American number (area code
// and exchange both in 2xx–9xx) so that a gateway that validates numbers
// accepts them; the pools do not overlap, so the simulator can tell a
// confirmation sent to a handset from an MT sent to a recipient.
var (
	// suppressedAreas holds the recipients the harness opts out before a
	// run: index i ↦ one number, 8M per area code, 80M in all.
	suppressedAreas = []int{438, 450, 579, 819, 873, 367, 418, 581, 613, 343}
	// allowedAreas holds recipients nobody opted out.
	allowedAreas = []int{416, 647}
	// handsetAreas holds the handsets that send MOs.
	handsetAreas = []int{604, 778, 236}
)

const perArea = 800 * 10000 // exchanges 200–999 × lines 0000–9999

// OurNumber is the tenant's sender number in generated configs.
const OurNumber = "+15145550199"

// MaxSuppressed is the largest suppressed-pool size.
const MaxSuppressed = perArea * 10

// SuppressedNumber returns the i-th number of the suppressed pool (E.164).
func SuppressedNumber(i int) string { return "+" + string(appendNANP(nil, suppressedAreas, i)) }

// AllowedNumber returns the i-th number of the pool nobody opted out of.
func AllowedNumber(i int) string { return "+" + string(appendNANP(nil, allowedAreas, i)) }

// HandsetNumber returns the i-th handset of the MO pool.
func HandsetNumber(i int) string { return "+" + string(appendNANP(nil, handsetAreas, i)) }

// isHandset reports whether digits (no "+") is in the handset pool.
func isHandset(digits []byte) bool {
	if len(digits) != 11 || digits[0] != '1' {
		return false
	}
	a := int(digits[1]-'0')*100 + int(digits[2]-'0')*10 + int(digits[3]-'0')
	for _, h := range handsetAreas {
		if a == h {
			return true
		}
	}
	return false
}

// appendNANP appends the digits (country code 1, no "+") of the i-th
// number of the pool spanning areas; i wraps around the pool.
func appendNANP(dst []byte, areas []int, i int) []byte {
	if i < 0 {
		i = -i
	}
	i %= perArea * len(areas)
	area := areas[i/perArea]
	r := i % perArea
	exch := 200 + r/10000
	line := r % 10000
	dst = append(dst, '1')
	dst = strconv.AppendInt(dst, int64(area), 10)
	dst = strconv.AppendInt(dst, int64(exch), 10)
	var l [4]byte
	for k := 3; k >= 0; k-- {
		l[k] = byte('0' + line%10)
		line /= 10
	}
	return append(dst, l[:]...)
}
