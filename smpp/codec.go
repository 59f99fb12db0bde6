package smpp

import (
	"bytes"
	"encoding/binary"
)

// HeaderLen is the size of the PDU header: four big-endian uint32s.
const HeaderLen = 16

// DefaultMaxPDUSize is the default cap on command_length. The specification
// sets none; a PDU carrying a full 64 KiB message_payload needs about 70 KB.
const DefaultMaxPDUSize = 4096

// reader is a bounds-checked cursor over a PDU body. Every read checks the
// remaining length and returns an error instead of panicking; the first
// error sticks, so decoders read all fields and check err once.
type reader struct {
	b   []byte
	off int
	err error
	op  string // PDU name, for errors
}

func (r *reader) fail(status CommandStatus, field, reason string) {
	if r.err == nil {
		r.err = &StatusError{Status: status, Op: r.op + "." + field, Reason: reason}
	}
}

func (r *reader) u8(field string) uint8 {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(StatusInvCmdLen, field, "body ends before field")
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16(field string) uint16 {
	if r.err != nil {
		return 0
	}
	if len(r.b)-r.off < 2 {
		r.fail(StatusInvCmdLen, field, "body ends before field")
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

// cstring reads a NUL-terminated C-octet string of at most max octets
// including the NUL. The result aliases the body. A missing NUL within max
// octets fails with status.
func (r *reader) cstring(field string, max int, status CommandStatus) []byte {
	if r.err != nil {
		return nil
	}
	rest := r.b[r.off:]
	lim := len(rest)
	if lim > max {
		lim = max
	}
	if i := bytes.IndexByte(rest[:lim], 0); i >= 0 {
		r.off += i + 1
		return rest[:i:i]
	}
	if len(rest) < max {
		r.fail(StatusInvCmdLen, field, "body ends before NUL terminator")
	} else {
		r.fail(status, field, "longer than maximum "+itoa(max)+" octets including NUL")
	}
	return nil
}

// timeField reads schedule_delivery_time / validity_period: empty or exactly
// 17 octets including the NUL.
func (r *reader) timeField(field string, status CommandStatus) []byte {
	v := r.cstring(field, 17, status)
	if r.err == nil && len(v) != 0 && len(v) != 16 {
		r.fail(status, field, "must be empty or 16 characters")
	}
	return v
}

// octets reads n octets, aliased.
func (r *reader) octets(field string, n int, status CommandStatus) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b)-r.off < n {
		r.fail(status, field, "length exceeds body")
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// tlvs takes the rest of the body as the TLV section and validates it.
func (r *reader) tlvs(t *TLVs) {
	if r.err != nil {
		return
	}
	rest := r.b[r.off:]
	if err := validateTLVs(rest, r.op); err != nil {
		r.err = err
		return
	}
	t.b = rest[:len(rest):len(rest)]
	r.off = len(r.b)
}

// respTLVs takes the rest of a response's body as its TLV section, as
// received. Responses are not refused for their TLVs: a peer's answer to
// our request matters more than its optional parameters, and a submit_sm_resp
// refused for a malformed TLV would turn an accepted message into a failure
// (and invite a duplicate). Unknown tags are kept and skipped by the typed
// accessors; a malformed section round-trips byte for byte, and the
// accessors stop at its first bad TLV.
func (r *reader) respTLVs(t *TLVs) {
	if r.err != nil {
		return
	}
	*t = respTLVs(r.b[r.off:])
	r.off = len(r.b)
}

// respTLVs returns b as a response's TLV section (nil when empty, so an
// empty section decodes to the zero TLVs).
func respTLVs(b []byte) TLVs {
	if len(b) == 0 {
		return TLVs{}
	}
	return TLVs{b: b[:len(b):len(b)]}
}

// spaced returns t's String with a leading space, or "" for no TLVs.
func spaced(t TLVs) string {
	if t.Len() == 0 {
		return ""
	}
	return " " + t.String()
}

// done fails if unread octets remain (for PDUs without TLVs).
func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail(StatusInvCmdLen, "body", itoa(len(r.b)-r.off)+" unexpected trailing octets")
	}
	return r.err
}

// writer helpers append into a caller-owned buffer and validate lengths.

func appendCString(dst []byte, v []byte, max int, status CommandStatus, op, field string) ([]byte, error) {
	if len(v) >= max {
		return dst, &StatusError{Status: status, Op: op + "." + field, Reason: "longer than maximum " + itoa(max) + " octets including NUL"}
	}
	for _, c := range v {
		if c == 0 {
			return dst, &StatusError{Status: status, Op: op + "." + field, Reason: "contains NUL"}
		}
	}
	dst = append(dst, v...)
	return append(dst, 0), nil
}

func appendTime(dst []byte, v []byte, status CommandStatus, op, field string) ([]byte, error) {
	if len(v) != 0 && len(v) != 16 {
		return dst, &StatusError{Status: status, Op: op + "." + field, Reason: "must be empty or 16 characters"}
	}
	return appendCString(dst, v, 17, status, op, field)
}

func appendU16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendU32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// itoa formats small non-negative ints without fmt (kept off hot paths).
func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
