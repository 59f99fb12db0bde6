package coding

import "fmt"

// Information element identifiers this package understands (3GPP TS 23.040
// §9.2.3.24).
const (
	IEConcat8  = 0x00 // concatenated SM, 8-bit reference: ref, total, seq
	IEPorts8   = 0x04 // application port addressing, 8-bit: dst, src
	IEPorts16  = 0x05 // application port addressing, 16-bit: dst, src
	IEConcat16 = 0x08 // concatenated SM, 16-bit reference: ref(2), total, seq
)

// UDH is what ParseUDH learned from a user data header. Unknown information
// elements are skipped.
type UDH struct {
	// Len is the size of the header in octets, including the UDHL octet.
	Len int

	// Concat is true if a concatenation element was present; Ref16 tells
	// which form. Seq is 1-based and 1 ≤ Seq ≤ Total.
	Concat bool
	Ref16  bool
	Ref    uint16
	Total  uint8
	Seq    uint8

	// Ports is true if an application port element was present.
	Ports            bool
	SrcPort, DstPort uint16
}

// ParseUDH splits a short_message that starts with a user data header (esm_class
// UDHI set) into the parsed header and the body after it. It returns an error
// wrapping ErrInvalidUDH, and never panics, if the header length exceeds the
// message, an element overruns the header, a known element has the wrong
// length, or a concatenation element numbers its part 0 or beyond the total.
// If an element occurs twice, the last one counts (TS 23.040).
func ParseUDH(sm []byte) (udh UDH, body []byte, err error) {
	if len(sm) == 0 {
		return UDH{}, nil, fmt.Errorf("%w: empty message", ErrInvalidUDH)
	}
	hl := int(sm[0])
	if 1+hl > len(sm) {
		return UDH{}, nil, fmt.Errorf("%w: header length %d exceeds message length %d", ErrInvalidUDH, hl, len(sm)-1)
	}
	udh.Len = 1 + hl
	h := sm[1 : 1+hl]
	for len(h) > 0 {
		if len(h) < 2 {
			return UDH{}, nil, fmt.Errorf("%w: truncated information element", ErrInvalidUDH)
		}
		iei, l := h[0], int(h[1])
		if 2+l > len(h) {
			return UDH{}, nil, fmt.Errorf("%w: element 0x%02x length %d overruns header", ErrInvalidUDH, iei, l)
		}
		v := h[2 : 2+l]
		h = h[2+l:]
		want := -1
		switch iei {
		case IEConcat8:
			want = 3
		case IEConcat16:
			want = 4
		case IEPorts8:
			want = 2
		case IEPorts16:
			want = 4
		default:
			continue
		}
		if l != want {
			return UDH{}, nil, fmt.Errorf("%w: element 0x%02x has length %d, want %d", ErrInvalidUDH, iei, l, want)
		}
		switch iei {
		case IEConcat8:
			udh.Concat, udh.Ref16 = true, false
			udh.Ref, udh.Total, udh.Seq = uint16(v[0]), v[1], v[2]
		case IEConcat16:
			udh.Concat, udh.Ref16 = true, true
			udh.Ref, udh.Total, udh.Seq = uint16(v[0])<<8|uint16(v[1]), v[2], v[3]
		case IEPorts8:
			udh.Ports = true
			udh.DstPort, udh.SrcPort = uint16(v[0]), uint16(v[1])
		case IEPorts16:
			udh.Ports = true
			udh.DstPort, udh.SrcPort = uint16(v[0])<<8|uint16(v[1]), uint16(v[2])<<8|uint16(v[3])
		}
	}
	if udh.Concat && (udh.Total == 0 || udh.Seq == 0 || udh.Seq > udh.Total) {
		return UDH{}, nil, fmt.Errorf("%w: concatenation part %d of %d", ErrInvalidUDH, udh.Seq, udh.Total)
	}
	return udh, sm[udh.Len:], nil
}

// appendConcatUDH appends a UDH holding only a concatenation element.
func appendConcatUDH(dst []byte, ref16 bool, ref uint16, total, seq uint8) []byte {
	if ref16 {
		return append(dst, 6, IEConcat16, 4, byte(ref>>8), byte(ref), total, seq)
	}
	return append(dst, 5, IEConcat8, 3, byte(ref), total, seq)
}
