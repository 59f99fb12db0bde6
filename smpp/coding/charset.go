package coding

import "fmt"

// ParseCharset parses the name of what an SMSC means by data_coding 0 or 1
// (an alt-charset setting, as Kannel has): "gsm7" (GSM 03.38, one septet an
// octet), "ia5" (ASCII) or "latin1" (ISO-8859-1). It returns the
// DataCoding whose decoder and encoder read and write that alphabet.
func ParseCharset(s string) (DataCoding, error) {
	switch s {
	case "gsm7":
		return GSM7, nil
	case "ia5":
		return IA5, nil
	case "latin1":
		return Latin1, nil
	}
	return GSM7, fmt.Errorf("coding: unknown charset %q (want gsm7, ia5 or latin1)", s)
}

// CharsetName is the inverse of ParseCharset for GSM7, IA5 and Latin1, and
// the lower-case String of dc otherwise ("ucs2", "binary", ...).
func CharsetName(dc DataCoding) string {
	switch alphabetOf(dc) {
	case alphGSM7:
		return "gsm7"
	case alphIA5:
		return "ia5"
	case alphLatin1:
		return "latin1"
	case alphUCS2:
		return "ucs2"
	case alph8Bit:
		return "binary"
	}
	return "dc" + fmt.Sprint(uint8(dc))
}

// AltReading reports the other alphabet octets read as read (GSM7, IA5,
// Latin1, 8-bit data or a coding Decode does not implement) make sense in
// when they make little sense in read, for screening both readings of text
// from SMSCs that mislabel it:
//
//   - read as IA5 or Latin-1, octets that are all 7-bit and hold a GSM
//     03.38 code that is a control character in ASCII (0x00–0x1F other than
//     LF and CR: 0x1F is É, 0x1B the escape to the extension table) or one
//     of 0x7B–0x7F (ä ö ñ ü à in GSM 03.38) are GSM-7 mislabelled, as
//     node-smpp sends data_coding 1;
//   - read as GSM-7 or IA5, an octet above 0x7F (no septet is) means
//     Latin-1 mislabelled, as some SMSCs send data_coding 0;
//   - labelled 8-bit data (2, 4, 0xF4...) or a coding Decode does not
//     implement (5, 9, 13, 14...), octets that are all printable ASCII
//     are text, as some SMSCs label it: IA5.
//
// ok is false when b reads well as read (the usual case). It does not
// allocate and looks at each octet once.
func AltReading(read DataCoding, b []byte) (alt DataCoding, ok bool) {
	a := alphabetOf(read)
	if a == alph8Bit || a == alphUnsupported {
		if len(b) == 0 {
			return read, false
		}
		for _, c := range b {
			if (c < 0x20 && c != '\n' && c != '\r') || c >= 0x7F {
				return read, false
			}
		}
		return IA5, true
	}
	if a != alphGSM7 && a != alphIA5 && a != alphLatin1 {
		return read, false
	}
	gsmOnly, high := false, false
	for _, c := range b {
		switch {
		case c >= 0x80:
			high = true
		case c < 0x20 && c != '\n' && c != '\r', c >= 0x7B:
			gsmOnly = true
		}
	}
	switch {
	case high && a != alphLatin1:
		return Latin1, true
	case gsmOnly && !high && a != alphGSM7:
		return GSM7, true
	}
	return read, false
}

// LittleEndianUCS2 reports whether UCS-2 octets b, with no byte order
// mark, are UTF-16LE, as some SMSCs send data_coding 8: an even number of
// them, every second octet zero and no first one. Read big-endian, such
// octets are only characters U+xx00, which no text is made of; read
// little-endian they are Latin-1 text ("S\x00T\x00O\x00P\x00" is STOP).
// It then returns that text. It does not allocate when ok is false.
func LittleEndianUCS2(b []byte) (text string, ok bool) {
	if len(b) < 2 || len(b)%2 != 0 {
		return "", false
	}
	for i := 0; i < len(b); i += 2 {
		if b[i] == 0 || b[i+1] != 0 {
			return "", false
		}
	}
	return DecodeUCS2(append([]byte{0xFF, 0xFE}, b...)), true
}

// PackedGSM7Reading reports whether octets labelled data_coding 0 or 1
// (one septet an octet) are GSM 03.38 septets packed eight to seven
// octets, as some SMSCs send: their Latin-1 reading holds a control
// character and an octet above 0x7F (no septet is one), and unpacked they
// are letters, digits, blanks and ASCII punctuation only. It then returns
// the unpacked text ("\x53\xEA\x13\x0A" is STOP). It does not allocate when
// the octets read well one to an octet.
func PackedGSM7Reading(b []byte) (text string, ok bool) {
	ctrl, high := false, false
	for _, c := range b {
		switch {
		case c >= 0x80:
			high = true
			if c <= 0x9F {
				ctrl = true
			}
		case c < 0x20 && c != '\n' && c != '\r', c == 0x7F:
			ctrl = true
		}
	}
	if !ctrl || !high {
		return "", false
	}
	septets := UnpackSeptets(make([]byte, 0, len(b)*8/7), b, -1)
	if n := len(septets); n > 0 && len(b)%7 == 0 && septets[n-1] == 0 {
		septets = septets[:n-1] // zero fill of 7 spare bits, not an '@'
	}
	for _, s := range septets {
		switch {
		case s >= 'a' && s <= 'z', s >= 'A' && s <= 'Z', s >= '0' && s <= '9', s == '\n', s == '\r':
		case s >= 0x20 && s <= 0x3F && s != 0x24: // blank and punctuation as in ASCII (0x24 is ¤)
		default:
			return "", false
		}
	}
	return DecodeGSM7(septets), true
}
