package dlr

import (
	"strconv"
	"strings"
)

// IDBase says in which base a bind writes message ids, the way Jasmin's
// dlr_msgid does (Kannel's msg-id-type is the same idea as a bitmask).
type IDBase uint8

const (
	// Same: submit_sm_resp and receipts use the same form.
	Same IDBase = iota
	// RespHexDLRDec: submit_sm_resp ids are hexadecimal, receipt ids decimal.
	RespHexDLRDec
	// RespDecDLRHex: submit_sm_resp ids are decimal, receipt ids hexadecimal.
	RespDecDLRHex
)

func (b IDBase) String() string {
	switch b {
	case Same:
		return "same"
	case RespHexDLRDec:
		return "resp-hex-dlr-dec"
	case RespDecDLRHex:
		return "resp-dec-dlr-hex"
	}
	return "IDBase(" + strconv.Itoa(int(b)) + ")"
}

// NormalizeID returns the form of a message id used for storing and
// matching (smpp.md §10): surrounding space and NULs trimmed, lower case,
// leading zeros stripped. An id of only zeros becomes "0"; an empty id stays
// empty. It makes "0E999F21-…" and "e999f21-…" equal, and "0000012345" and
// "12345".
func NormalizeID(id string) string {
	id = strings.Trim(id, " \t\r\n\x00")
	id = strings.ToLower(id)
	if t := strings.TrimLeft(id, "0"); t != "" {
		return t
	}
	if id != "" {
		return "0"
	}
	return ""
}

// CanonicalKey maps a message id to the key under which both sides of a
// correlation meet. fromReceipt says whether id comes from a delivery
// receipt (text id: or receipted_message_id) or from a submit_sm_resp.
//
// The rules: the id is normalised (NormalizeID). If base says this side is
// hexadecimal (the resp side for RespHexDLRDec, the receipt side for
// RespDecDLRHex) and the id parses as a hexadecimal number that fits in 64
// bits, the key is that number in decimal; the decimal side is therefore
// already in canonical form. Anything else — base Same, an id longer than
// 64 bits, a UUID or other non-numeric id — keeps the normalised string.
func CanonicalKey(id string, base IDBase, fromReceipt bool) string {
	n := NormalizeID(id)
	hexSide := (base == RespHexDLRDec && !fromReceipt) || (base == RespDecDLRHex && fromReceipt)
	if hexSide {
		if v, err := strconv.ParseUint(n, 16, 64); err == nil {
			return strconv.FormatUint(v, 10)
		}
	}
	return n
}

// Equivalent reports whether respID, from a submit_sm_resp, and receiptID,
// from a delivery receipt, name the same message on a bind configured with
// base. It compares their CanonicalKeys.
func Equivalent(respID, receiptID string, base IDBase) bool {
	return CanonicalKey(respID, base, false) == CanonicalKey(receiptID, base, true)
}

// IDVariants returns the keys to try when the base of a bind is not known:
// the normalised id first, then, if it is a decimal number that fits in 64
// bits, its hexadecimal form, then, if it is a hexadecimal number, its
// decimal form. Duplicates are left out. Store under NormalizeID and look up
// every variant, or the reverse.
func IDVariants(id string) []string {
	n := NormalizeID(id)
	out := []string{n}
	add := func(s string) {
		for _, o := range out {
			if o == s {
				return
			}
		}
		out = append(out, s)
	}
	if v, err := strconv.ParseUint(n, 10, 64); err == nil {
		add(strconv.FormatUint(v, 16))
	}
	if v, err := strconv.ParseUint(n, 16, 64); err == nil {
		add(strconv.FormatUint(v, 10))
	}
	return out
}
