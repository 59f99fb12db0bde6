package coding

import (
	"fmt"
	"strconv"
)

// Method says how the parts of a long message are tied together.
type Method uint8

const (
	// UDH8 prepends the 6-octet UDH 05 00 03 RR TT SS (8-bit reference,
	// what Kannel sends) and sets UDHI. It is the zero value.
	UDH8 Method = iota
	// UDH16 prepends the 7-octet UDH 06 08 04 RRRR TT SS (16-bit reference).
	UDH16
	// SAR sends the parts without a UDH; the caller sets the sar_msg_ref_num,
	// sar_total_segments and sar_segment_seqnum TLVs from Part.Ref, Total
	// and Seq. Parts are sized as for UDH8 (153 septets, 67 UCS-2
	// characters, 134 octets), not as whole messages, because SMSCs commonly
	// turn SAR into a UDH before delivering over the air and must have room
	// for it.
	SAR
	// Payload returns a single part carrying the whole encoded text, for the
	// message_payload TLV; the SMSC splits it.
	Payload
)

var methodNames = [...]string{UDH8: "UDH8", UDH16: "UDH16", SAR: "SAR", Payload: "Payload"}

func (m Method) String() string {
	if int(m) < len(methodNames) {
		return methodNames[m]
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// MaxPayload is the largest message_payload value: the TLV length is 16 bits.
const MaxPayload = 65535

// MaxParts is the most parts a concatenated message can have: the total is
// one octet in the UDH and in sar_total_segments.
const MaxParts = 255

// SplitOptions controls Split. The zero value splits with automatic coding,
// an 8-bit-reference UDH, reference 0 and up to 255 parts.
type SplitOptions struct {
	// Coding is the data_coding to encode with. GSM7, the zero value, means
	// automatic: GSM-7 when every character is representable, else UCS-2
	// (see Best). Any other supported value is used as given; 8-bit codings
	// take the string's bytes unchanged.
	Coding DataCoding

	// Method selects UDH8 (default), UDH16, SAR or Payload.
	Method Method

	// Ref is the concatenation reference shared by the parts. UDH8 uses its
	// low 8 bits. The caller should vary it per message and destination.
	Ref uint16

	// MaxParts limits the number of parts; 0 or more than 255 mean 255.
	MaxParts int
}

// Part is one short_message of a split text.
//
// A part with Total 1 is a whole message: it carries no UDH and must be
// sent without sar_* TLVs. For UDH methods, Data starts with the UDH and
// UDHI is true (set esm_class 0x40); for SAR, Ref, Total and Seq are the
// values for the sar_* TLVs.
type Part struct {
	Data   []byte     // encoded short_message, UDH included for UDH methods
	UDHI   bool       // Data starts with a UDH
	Ref    uint16     // reference as sent (8 bits for UDH8)
	Total  uint8      // number of parts
	Seq    uint8      // 1-based position
	Coding DataCoding // data_coding to send the part with
}

// capacity returns the octets of encoded text that fit in a single message
// and in each part of a multipart one (smpp.md §7).
func capacity(a alphabet, m Method) (single, per int) {
	switch a {
	case alphGSM7:
		if m == UDH16 {
			return 160, 152
		}
		return 160, 153
	case alphUCS2:
		if m == UDH16 {
			return 140, 132 // 66 characters
		}
		return 140, 134 // 67 characters
	}
	if m == UDH16 {
		return 140, 133
	}
	return 140, 134
}

// partEnd returns where the part that starts at start ends, at most per
// octets later, without separating a GSM-7 ESC from its code or a UTF-16
// surrogate pair.
func partEnd(enc []byte, start, per int, a alphabet) int {
	end := start + per
	if end >= len(enc) {
		return len(enc)
	}
	switch a {
	case alphGSM7:
		// The encoder emits 0x1B only as an escape prefix, never as a code.
		if enc[end-1] == esc {
			end--
		}
	case alphUCS2:
		if u := enc[end-2]; u >= 0xD8 && u <= 0xDB {
			end -= 2
		}
	}
	return end
}

// Split encodes s and cuts it into parts as opt says. A text that fits in
// one message (160 GSM-7 septets, 70 UCS-2 code units or 140 octets) gives a
// single part without UDH; longer ones give parts of 153/152 septets, 67/66
// UCS-2 code units or 134/133 octets for 8- and 16-bit references. Errors
// are an *EncodeError for a character the chosen coding cannot represent,
// ErrTooManyParts (wrapped) when the text needs more than opt.MaxParts
// parts, and ErrTooLong for a Payload above MaxPayload octets.
//
// The parts' Data share one backing array, each capped at its own length.
func Split(s string, opt SplitOptions) ([]Part, error) {
	dc := opt.Coding
	if dc == GSM7 {
		dc = Best(s)
	}
	a := alphabetOf(dc)
	if a == alphUnsupported {
		return nil, fmt.Errorf("%w %v", ErrUnsupported, dc)
	}
	if opt.Method > Payload {
		return nil, fmt.Errorf("coding: unknown split method %v", opt.Method)
	}
	hint := len(s)
	if a == alphUCS2 {
		hint *= 2
	}
	enc, err := Append(make([]byte, 0, hint), dc, s)
	if err != nil {
		return nil, err
	}
	if opt.Method == Payload {
		if len(enc) > MaxPayload {
			return nil, fmt.Errorf("%w: %d octets exceed message_payload maximum %d", ErrTooLong, len(enc), MaxPayload)
		}
		return []Part{{Data: enc, Total: 1, Seq: 1, Coding: dc}}, nil
	}
	single, per := capacity(a, opt.Method)
	if len(enc) <= single {
		return []Part{{Data: enc, Total: 1, Seq: 1, Coding: dc}}, nil
	}
	maxParts := opt.MaxParts
	if maxParts <= 0 || maxParts > MaxParts {
		maxParts = MaxParts
	}
	n := 0
	for start := 0; start < len(enc); start = partEnd(enc, start, per, a) {
		n++
	}
	if n > maxParts {
		return nil, fmt.Errorf("%w: text needs %d parts, limit %d", ErrTooManyParts, n, maxParts)
	}
	parts := make([]Part, n)
	ref := opt.Ref
	hdr := 0
	switch opt.Method {
	case UDH8:
		ref &= 0xFF
		hdr = 6
	case UDH16:
		hdr = 7
	}
	var buf []byte
	if hdr > 0 {
		buf = make([]byte, 0, len(enc)+n*hdr)
	}
	start := 0
	for i := range parts {
		end := partEnd(enc, start, per, a)
		p := &parts[i]
		p.Ref, p.Total, p.Seq, p.Coding = ref, uint8(n), uint8(i+1), dc
		if hdr == 0 {
			p.Data = enc[start:end:end]
		} else {
			off := len(buf)
			buf = appendConcatUDH(buf, opt.Method == UDH16, ref, uint8(n), uint8(i+1))
			buf = append(buf, enc[start:end]...)
			p.Data = buf[off:len(buf):len(buf)] // buf never grows: its capacity was exact
			p.UDHI = true
		}
		start = end
	}
	return parts, nil
}

// Segments returns how many SMS parts s needs with automatic coding and an
// 8-bit-reference UDH, and the coding Best chooses: the figure for length
// budgets and pricing. It agrees with len(Split(s, SplitOptions{})) when
// the text needs at most 255 parts, and keeps counting beyond that. It does
// not allocate.
func Segments(s string) (n int, coding DataCoding) {
	coding = Best(s)
	single, per := 160, 153
	if coding == UCS2 {
		single, per = 70, 67
	}
	total, cur := 0, 0
	n = 1
	for _, r := range s {
		w := 1
		if coding == GSM7 {
			if gsmLookup(r)>>8 == 2 {
				w = 2
			}
		} else if r > 0xFFFF {
			w = 2
		}
		total += w
		if cur+w > per {
			n++
			cur = 0
		}
		cur += w
	}
	if total <= single {
		return 1, coding
	}
	return n, coding
}
