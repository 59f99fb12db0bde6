package coding

import (
	"unicode/utf8"
)

// esc is the GSM 03.38 escape septet that selects the extension table.
const esc = 0x1B

// gsmBasic is the GSM 03.38 default alphabet indexed by septet (smpp.md §8).
// Index 0x1B is ESC and is never produced by the decoder.
var gsmBasic = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', esc, 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// gsmExt is the extension table: the septet after ESC → character; 0 means
// no character.
var gsmExt = [128]rune{
	0x0A: '\f',
	0x14: '^',
	0x28: '{',
	0x29: '}',
	0x2F: '\\',
	0x3C: '[',
	0x3D: '~',
	0x3E: ']',
	0x40: '|',
	0x65: '€',
}

// Encoder lookup values: the low byte is the septet, the high byte says
// which table it is in. Zero means not representable.
const (
	inBasic = 1 << 8
	inExt   = 2 << 8
)

var (
	gsmEncLow  [256]uint16     // runes below U+0100
	gsmEncHigh map[rune]uint16 // the Greek capitals and €
)

func init() {
	gsmEncHigh = make(map[rune]uint16)
	set := func(r rune, v uint16) {
		if r < 256 {
			gsmEncLow[r] = v
		} else {
			gsmEncHigh[r] = v
		}
	}
	for i, r := range gsmBasic {
		if i != esc {
			set(r, inBasic|uint16(i))
		}
	}
	for i, r := range gsmExt {
		if r != 0 {
			set(r, inExt|uint16(i))
		}
	}
}

// gsmLookup returns the table entry for r (0 if not representable).
func gsmLookup(r rune) uint16 {
	if r < 256 {
		if r < 0 {
			return 0
		}
		return gsmEncLow[r]
	}
	return gsmEncHigh[r]
}

// SeptetLen returns the number of septets s needs in the GSM 03.38 default
// alphabet; an extension character (such as € or {) counts two. ok is false
// if some character is not representable, and n then counts only the
// representable ones.
func SeptetLen(s string) (n int, ok bool) {
	ok = true
	for i := 0; i < len(s); {
		var r rune
		if c := s[i]; c < utf8.RuneSelf {
			r = rune(c)
			i++
		} else {
			var size int
			r, size = utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				ok = false
				i++
				continue
			}
			i += size
		}
		switch gsmLookup(r) >> 8 {
		case 1:
			n++
		case 2:
			n += 2
		default:
			ok = false
		}
	}
	return n, ok
}

// IsGSM7 reports whether every character of s is in the GSM 03.38 default
// alphabet or its extension table.
func IsGSM7(s string) bool {
	_, ok := SeptetLen(s)
	return ok
}

// AppendGSM7 appends s to dst in the unpacked GSM 03.38 form SMPP uses for
// data_coding 0: one septet per octet, extension characters as ESC plus
// code. On an unrepresentable character it returns dst with the characters
// before it appended and an *EncodeError.
func AppendGSM7(dst []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); {
		var r rune
		size := 1
		if c := s[i]; c < utf8.RuneSelf {
			// Fast path for ASCII: most MT text.
			if v := gsmEncLow[c]; v>>8 == 1 {
				dst = append(dst, byte(v))
				i++
				continue
			}
			r = rune(c)
		} else {
			r, size = utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return dst, &EncodeError{Coding: GSM7, Rune: r, Offset: i}
			}
		}
		v := gsmLookup(r)
		switch v >> 8 {
		case 1:
			dst = append(dst, byte(v))
		case 2:
			dst = append(dst, esc, byte(v))
		default:
			return dst, &EncodeError{Coding: GSM7, Rune: r, Offset: i}
		}
		i += size
	}
	return dst, nil
}

// EncodeGSM7 returns s in unpacked GSM 03.38 form; see AppendGSM7.
func EncodeGSM7(s string) ([]byte, error) {
	n, _ := SeptetLen(s)
	return AppendGSM7(make([]byte, 0, n), s)
}

// AppendDecodeGSM7 appends the UTF-8 text of the unpacked septets b to dst.
// It never fails: an octet above 0x7F becomes '?', ESC followed by a code
// that has no extension character yields the basic-table character for the
// code (as 3GPP TS 23.038 asks of handsets), ESC ESC yields a space, and an
// ESC at the end is dropped.
func AppendDecodeGSM7(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= 0x80:
			dst = append(dst, '?')
			continue
		case c != esc:
			if r := gsmBasic[c]; r < utf8.RuneSelf {
				dst = append(dst, byte(r))
			} else {
				dst = utf8.AppendRune(dst, r)
			}
			continue
		}
		i++
		if i == len(b) {
			break // trailing ESC
		}
		c = b[i]
		switch {
		case c >= 0x80:
			dst = append(dst, '?')
		case gsmExt[c] != 0:
			dst = utf8.AppendRune(dst, gsmExt[c])
		case c == esc:
			dst = append(dst, ' ') // reserved for a further extension table
		default:
			dst = utf8.AppendRune(dst, gsmBasic[c])
		}
	}
	return dst
}

// DecodeGSM7 returns the text of the unpacked septets b; see AppendDecodeGSM7.
func DecodeGSM7(b []byte) string {
	// ASCII-range septets decode to at most 2 octets of UTF-8 each (3 for €
	// and the Greek capitals); len(b)+len(b)/2 fits typical text.
	return string(AppendDecodeGSM7(make([]byte, 0, len(b)+len(b)/2), b))
}

// PackSeptets appends the septets (one per octet, high bit ignored) to dst
// in packed 7-bit form, least significant bit first (3GPP TS 23.038 §6.1.2.1).
// When the last octet would carry 7 spare bits they hold CR, as TS 23.038
// §6.1.2.3.1 asks, so a receiver does not read a trailing '@'.
func PackSeptets(dst, septets []byte) []byte {
	var acc uint32
	nbits := 0
	for _, s := range septets {
		acc |= uint32(s&0x7F) << nbits
		nbits += 7
		if nbits >= 8 {
			dst = append(dst, byte(acc))
			acc >>= 8
			nbits -= 8
		}
	}
	if nbits > 0 {
		if nbits == 1 {
			acc |= '\r' << 1
		}
		dst = append(dst, byte(acc))
	}
	return dst
}

// UnpackSeptets appends n septets unpacked from packed to dst, one per octet.
// If n is negative it is inferred from len(packed): a final septet that fills
// 7 spare bits is dropped if it is CR (the TS 23.038 padding) and kept
// otherwise, so zero padding decodes as a trailing '@'. Pass n when the
// septet count is known. n larger than packed holds is cut short.
func UnpackSeptets(dst, packed []byte, n int) []byte {
	maxN := len(packed) * 8 / 7
	infer := n < 0
	if infer || n > maxN {
		n = maxN
	}
	var acc uint32
	nbits := 0
	j := 0
	start := len(dst)
	for k := 0; k < n; k++ {
		if nbits < 7 {
			acc |= uint32(packed[j]) << nbits
			j++
			nbits += 8
		}
		dst = append(dst, byte(acc&0x7F))
		acc >>= 7
		nbits -= 7
	}
	if infer && n > 0 && len(packed)%7 == 0 && len(dst) > start && dst[len(dst)-1] == '\r' {
		dst = dst[:len(dst)-1]
	}
	return dst
}

// AppendGSM7Packed appends s to dst as packed GSM 03.38 septets; see
// AppendGSM7 and PackSeptets. The packed form carries no septet count, so
// keep SeptetLen(s) if the receiver needs it.
func AppendGSM7Packed(dst []byte, s string) ([]byte, error) {
	var buf [160]byte
	septets, err := AppendGSM7(buf[:0], s)
	if err != nil {
		return dst, err
	}
	return PackSeptets(dst, septets), nil
}

// EncodeGSM7Packed returns s as packed GSM 03.38 septets.
func EncodeGSM7Packed(s string) ([]byte, error) {
	return AppendGSM7Packed(nil, s)
}

// DecodeGSM7Packed returns the text of n packed septets (n < 0: infer, see
// UnpackSeptets).
func DecodeGSM7Packed(b []byte, n int) string {
	var buf [160]byte
	return DecodeGSM7(UnpackSeptets(buf[:0], b, n))
}
