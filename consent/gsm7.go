package consent

import (
	"fmt"
	"unicode/utf8"
)

// gsm7Basic is the GSM 03.38 default alphabet (one septet each), without
// ESC (0x1B), which is never a character of its own.
const gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
	"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsm7Ext is the GSM 03.38 extension table (ESC + char: two septets each).
const gsm7Ext = "\f^{}\\[~]|€"

var gsm7Cost = func() map[rune]uint8 {
	m := make(map[rune]uint8, 160)
	for _, r := range gsm7Basic {
		m[r] = 1
	}
	for _, r := range gsm7Ext {
		m[r] = 2
	}
	return m
}()

// gsm7Septets counts the septets s needs in the GSM-7 default alphabet with
// the extension table (extension characters count 2). ok is false when s
// holds a character GSM-7 cannot encode (it then goes out as UCS-2).
func gsm7Septets(s string) (n int, ok bool) {
	for _, r := range s {
		c, found := gsm7Cost[r]
		if !found {
			return 0, false
		}
		n += int(c)
	}
	return n, true
}

// ucs2Units counts UTF-16 code units.
func ucs2Units(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// checkOneSegment reports why s does not fit one SMS segment: 160 septets in
// GSM-7, or 70 UTF-16 units when s needs UCS-2. It returns nil when it fits.
func checkOneSegment(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	if n, ok := gsm7Septets(s); ok {
		if n > 160 {
			return fmt.Errorf("%d GSM-7 septets, one segment holds 160", n)
		}
		return nil
	}
	if n := ucs2Units(s); n > 70 {
		return fmt.Errorf("needs UCS-2 (not GSM-7) and is %d characters, one UCS-2 segment holds 70", n)
	}
	return nil
}
