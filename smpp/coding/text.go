package coding

import (
	"unicode/utf16"
	"unicode/utf8"
)

// UCS2Len returns the number of UTF-16 code units s needs: one per character
// in the Basic Multilingual Plane, two for others (emoji, for example).
// Invalid UTF-8 counts one unit per bad byte (encoded as U+FFFD).
func UCS2Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r > 0xFFFF {
			n++
		}
	}
	return n
}

// AppendUCS2 appends s to dst as UTF-16BE, which is what SMSCs carry for
// data_coding 8; characters outside the BMP become surrogate pairs and
// invalid UTF-8 becomes U+FFFD. It cannot fail.
func AppendUCS2(dst []byte, s string) []byte {
	for _, r := range s {
		if r <= 0xFFFF {
			dst = append(dst, byte(r>>8), byte(r))
			continue
		}
		r1, r2 := utf16.EncodeRune(r)
		dst = append(dst, byte(r1>>8), byte(r1), byte(r2>>8), byte(r2))
	}
	return dst
}

// EncodeUCS2 returns s as UTF-16BE; see AppendUCS2.
func EncodeUCS2(s string) []byte {
	return AppendUCS2(make([]byte, 0, 2*len(s)), s)
}

// AppendDecodeUCS2 appends the UTF-8 text of the UTF-16BE octets b to dst.
// Octets that start with the byte order mark FF FE (U+FFFE is no
// character, so this is a little-endian BOM, as some handsets and SMSCs
// send) are read as UTF-16LE, without the mark. It never fails: a lone
// surrogate and a trailing odd octet each become U+FFFD.
func AppendDecodeUCS2(dst, b []byte) []byte {
	i, hi, lo := 0, 0, 1
	if len(b) >= 2 && b[0] == 0xFF && b[1] == 0xFE {
		i, hi, lo = 2, 1, 0
	}
	for ; i+1 < len(b); i += 2 {
		u := rune(b[i+hi])<<8 | rune(b[i+lo])
		switch {
		case u < utf8.RuneSelf:
			dst = append(dst, byte(u))
			continue
		case !utf16.IsSurrogate(u):
		case u < 0xDC00 && i+3 < len(b):
			// High surrogate: combine with a following low surrogate.
			r := utf16.DecodeRune(u, rune(b[i+2+hi])<<8|rune(b[i+2+lo]))
			if r != utf8.RuneError {
				u = r
				i += 2
			} else {
				u = utf8.RuneError
			}
		default:
			u = utf8.RuneError
		}
		dst = utf8.AppendRune(dst, u)
	}
	if i < len(b) {
		dst = utf8.AppendRune(dst, utf8.RuneError)
	}
	return dst
}

// DecodeUCS2 returns the text of the UTF-16BE octets b; see AppendDecodeUCS2.
func DecodeUCS2(b []byte) string {
	return string(AppendDecodeUCS2(make([]byte, 0, len(b)+len(b)/2), b))
}

// AppendLatin1 appends s to dst in ISO-8859-1 (data_coding 3). A character
// above U+00FF, or invalid UTF-8, gives an *EncodeError.
func AppendLatin1(dst []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r > 0xFF || (r == utf8.RuneError && size == 1) {
			return dst, &EncodeError{Coding: Latin1, Rune: r, Offset: i}
		}
		dst = append(dst, byte(r))
		i += size
	}
	return dst, nil
}

// DecodeLatin1 returns the text of the ISO-8859-1 octets b. Every octet is a
// character, so it cannot fail.
func DecodeLatin1(b []byte) string {
	out := make([]byte, 0, len(b)+len(b)/4)
	for _, c := range b {
		if c < utf8.RuneSelf {
			out = append(out, c)
		} else {
			out = append(out, 0xC0|c>>6, 0x80|c&0x3F)
		}
	}
	return string(out)
}

// AppendIA5 appends s to dst in IA5/ASCII (data_coding 1). A character above
// U+007F gives an *EncodeError.
func AppendIA5(dst []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, _ := utf8.DecodeRuneInString(s[i:])
			return dst, &EncodeError{Coding: IA5, Rune: r, Offset: i}
		}
		dst = append(dst, c)
	}
	return dst, nil
}

// DecodeIA5 returns the text of the IA5/ASCII octets b; an octet above 0x7F
// becomes '?'.
func DecodeIA5(b []byte) string {
	for i, c := range b {
		if c >= utf8.RuneSelf {
			out := make([]byte, len(b))
			copy(out, b[:i])
			for j := i; j < len(b); j++ {
				out[j] = b[j]
				if b[j] >= utf8.RuneSelf {
					out[j] = '?'
				}
			}
			return string(out)
		}
	}
	return string(b)
}
