package smpp

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Tag is an optional parameter tag.
type Tag uint16

// TLV tags optgate reads or writes. Tags in 0x1400–0x3FFF are SMSC vendor
// tags; unknown tags are kept byte-exact.
const (
	TagDestAddrSubunit       Tag = 0x0005
	TagSourceAddrSubunit     Tag = 0x000D
	TagPayloadType           Tag = 0x0019
	TagAdditionalStatusInfo  Tag = 0x001D
	TagReceiptedMessageID    Tag = 0x001E
	TagUserMessageReference  Tag = 0x0204
	TagSourcePort            Tag = 0x020A
	TagDestinationPort       Tag = 0x020B
	TagSarMsgRefNum          Tag = 0x020C
	TagLanguageIndicator     Tag = 0x020D
	TagSarTotalSegments      Tag = 0x020E
	TagSarSegmentSeqnum      Tag = 0x020F
	TagSCInterfaceVersion    Tag = 0x0210
	TagNetworkErrorCode      Tag = 0x0423
	TagMessagePayload        Tag = 0x0424
	TagDeliveryFailureReason Tag = 0x0425
	TagMoreMessagesToSend    Tag = 0x0426
	TagMessageState          Tag = 0x0427
	TagUssdServiceOp         Tag = 0x0501
)

var tagNames = map[Tag]string{
	TagDestAddrSubunit: "dest_addr_subunit", TagSourceAddrSubunit: "source_addr_subunit",
	TagPayloadType: "payload_type", TagAdditionalStatusInfo: "additional_status_info_text",
	TagReceiptedMessageID: "receipted_message_id", TagUserMessageReference: "user_message_reference",
	TagSourcePort: "source_port", TagDestinationPort: "destination_port", TagSarMsgRefNum: "sar_msg_ref_num",
	TagLanguageIndicator: "language_indicator", TagSarTotalSegments: "sar_total_segments",
	TagSarSegmentSeqnum: "sar_segment_seqnum", TagSCInterfaceVersion: "sc_interface_version",
	TagNetworkErrorCode: "network_error_code", TagMessagePayload: "message_payload",
	TagDeliveryFailureReason: "delivery_failure_reason", TagMoreMessagesToSend: "more_messages_to_send",
	TagMessageState: "message_state", TagUssdServiceOp: "ussd_service_op",
}

// tagLimits gives, for known tags, the fixed value size (exact) or the
// maximum size (variable); size 0 means no limit is known. A switch, not a
// map: it runs for every TLV decoded.
func tagLimits(t Tag) (size int, exact bool) {
	switch t {
	case TagDestAddrSubunit, TagSourceAddrSubunit, TagPayloadType, TagLanguageIndicator,
		TagSarTotalSegments, TagSarSegmentSeqnum, TagSCInterfaceVersion, TagDeliveryFailureReason,
		TagMoreMessagesToSend, TagMessageState, TagUssdServiceOp:
		return 1, true
	case TagUserMessageReference, TagSourcePort, TagDestinationPort, TagSarMsgRefNum:
		return 2, true
	case TagNetworkErrorCode:
		return 3, true
	case TagReceiptedMessageID:
		return 65, false
	case TagAdditionalStatusInfo:
		return 256, false
	}
	return 0, false
}

// checkTLVLen validates a value length for tag.
func checkTLVLen(tag Tag, n int, op string) error {
	sz, exact := tagLimits(tag)
	switch {
	case sz == 0:
		return nil
	case exact && n != sz:
		return &StatusError{Status: StatusInvTLVLen, Op: op + "." + tag.String(), Reason: "length " + itoa(n) + ", want " + itoa(sz)}
	case !exact && n > sz:
		return &StatusError{Status: StatusInvTLVLen, Op: op + "." + tag.String(), Reason: "longer than " + itoa(sz)}
	}
	return nil
}

func (t Tag) String() string {
	if n, ok := tagNames[t]; ok {
		return n
	}
	return fmt.Sprintf("tlv(0x%04X)", uint16(t))
}

// TLVs is the optional-parameter section of a PDU, kept as its wire bytes
// so that unknown and vendor TLVs pass through decode and encode unchanged.
// Typed accessors scan it; a PDU carries a handful of TLVs at most. The zero
// value is an empty section.
type TLVs struct {
	b []byte
}

// Bytes returns the section's wire form (aliased).
func (t TLVs) Bytes() []byte { return t.b }

// Len returns the size of the section in octets.
func (t TLVs) Len() int { return len(t.b) }

// SetBytes replaces the whole section after validating it.
func (t *TLVs) SetBytes(b []byte) error {
	if err := validateTLVs(b, "tlv"); err != nil {
		return err
	}
	t.b = append(t.b[:0:0], b...)
	return nil
}

func validateTLVs(b []byte, op string) error {
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return &StatusError{Status: StatusInvTLVStream, Op: op + ".tlv", Reason: "truncated TLV header"}
		}
		tag := Tag(binary.BigEndian.Uint16(b[off:]))
		n := int(binary.BigEndian.Uint16(b[off+2:]))
		off += 4
		if len(b)-off < n {
			return &StatusError{Status: StatusInvTLVLen, Op: op + "." + tag.String(), Reason: "length exceeds body"}
		}
		if err := checkTLVLen(tag, n, op); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// Get returns the value of the first TLV with tag (aliased) and whether it
// is present.
func (t TLVs) Get(tag Tag) ([]byte, bool) {
	b := t.b
	for off := 0; off+4 <= len(b); {
		tg := Tag(binary.BigEndian.Uint16(b[off:]))
		n := int(binary.BigEndian.Uint16(b[off+2:]))
		off += 4
		if off+n > len(b) {
			return nil, false
		}
		if tg == tag {
			return b[off : off+n : off+n], true
		}
		off += n
	}
	return nil, false
}

// Has reports whether tag is present.
func (t TLVs) Has(tag Tag) bool { _, ok := t.Get(tag); return ok }

// Uint8 returns a one-octet TLV value.
func (t TLVs) Uint8(tag Tag) (uint8, bool) {
	v, ok := t.Get(tag)
	if !ok || len(v) != 1 {
		return 0, false
	}
	return v[0], true
}

// Uint16 returns a two-octet TLV value.
func (t TLVs) Uint16(tag Tag) (uint16, bool) {
	v, ok := t.Get(tag)
	if !ok || len(v) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(v), true
}

// CString returns a C-octet-string TLV value without its NUL.
func (t TLVs) CString(tag Tag) ([]byte, bool) {
	v, ok := t.Get(tag)
	if !ok {
		return nil, false
	}
	if n := len(v); n > 0 && v[n-1] == 0 {
		v = v[:n-1]
	}
	return v, true
}

// Del removes every TLV with tag.
func (t *TLVs) Del(tag Tag) {
	b := t.b
	out := b[:0:0]
	changed := false
	for off := 0; off+4 <= len(b); {
		tg := Tag(binary.BigEndian.Uint16(b[off:]))
		n := int(binary.BigEndian.Uint16(b[off+2:]))
		end := off + 4 + n
		if end > len(b) {
			end = len(b)
		}
		if tg == tag {
			changed = true
		} else {
			out = append(out, b[off:end]...)
		}
		off = end
	}
	if changed {
		t.b = out
	}
}

// Set replaces the TLVs with tag by one with value v. It copies the section
// first, so a decoded PDU's input buffer is never written.
func (t *TLVs) Set(tag Tag, v []byte) error {
	if len(v) > 0xFFFF {
		return &StatusError{Status: StatusInvTLVLen, Op: "tlv." + tag.String(), Reason: "value longer than 65535"}
	}
	if err := checkTLVLen(tag, len(v), "tlv"); err != nil {
		return err
	}
	t.Del(tag)
	nb := make([]byte, 0, len(t.b)+4+len(v))
	nb = append(nb, t.b...)
	nb = appendU16(nb, uint16(tag))
	nb = appendU16(nb, uint16(len(v)))
	t.b = append(nb, v...)
	return nil
}

// SetUint8 sets a one-octet TLV.
func (t *TLVs) SetUint8(tag Tag, v uint8) error { return t.Set(tag, []byte{v}) }

// SetUint16 sets a two-octet TLV.
func (t *TLVs) SetUint16(tag Tag, v uint16) error { return t.Set(tag, []byte{byte(v >> 8), byte(v)}) }

// SetCString sets a C-octet-string TLV, adding the NUL.
func (t *TLVs) SetCString(tag Tag, v string) error {
	b := make([]byte, len(v)+1)
	copy(b, v)
	return t.Set(tag, b)
}

// Each calls fn for every TLV in wire order until fn returns false.
func (t TLVs) Each(fn func(tag Tag, v []byte) bool) {
	b := t.b
	for off := 0; off+4 <= len(b); {
		tg := Tag(binary.BigEndian.Uint16(b[off:]))
		n := int(binary.BigEndian.Uint16(b[off+2:]))
		off += 4
		if off+n > len(b) {
			return
		}
		if !fn(tg, b[off:off+n:off+n]) {
			return
		}
		off += n
	}
}

// Typed accessors for the tags optgate uses.

// MessagePayload returns message_payload.
func (t TLVs) MessagePayload() ([]byte, bool) { return t.Get(TagMessagePayload) }

// ReceiptedMessageID returns receipted_message_id without its NUL.
func (t TLVs) ReceiptedMessageID() ([]byte, bool) { return t.CString(TagReceiptedMessageID) }

// MessageState returns message_state.
func (t TLVs) MessageState() (uint8, bool) { return t.Uint8(TagMessageState) }

// NetworkErrorCode returns network_error_code as its type and error parts.
func (t TLVs) NetworkErrorCode() (typ uint8, code uint16, ok bool) {
	v, ok := t.Get(TagNetworkErrorCode)
	if !ok || len(v) != 3 {
		return 0, 0, false
	}
	return v[0], binary.BigEndian.Uint16(v[1:]), true
}

// SAR returns the sar_msg_ref_num, sar_total_segments and sar_segment_seqnum
// values; ok is false unless all three are present.
func (t TLVs) SAR() (ref uint16, total, seq uint8, ok bool) {
	ref, ok1 := t.Uint16(TagSarMsgRefNum)
	total, ok2 := t.Uint8(TagSarTotalSegments)
	seq, ok3 := t.Uint8(TagSarSegmentSeqnum)
	return ref, total, seq, ok1 && ok2 && ok3
}

// SetSAR sets the three sar_* TLVs.
func (t *TLVs) SetSAR(ref uint16, total, seq uint8) error {
	if err := t.SetUint16(TagSarMsgRefNum, ref); err != nil {
		return err
	}
	if err := t.SetUint8(TagSarTotalSegments, total); err != nil {
		return err
	}
	return t.SetUint8(TagSarSegmentSeqnum, seq)
}

// UserMessageReference returns user_message_reference.
func (t TLVs) UserMessageReference() (uint16, bool) { return t.Uint16(TagUserMessageReference) }

// SourcePort returns source_port.
func (t TLVs) SourcePort() (uint16, bool) { return t.Uint16(TagSourcePort) }

// DestinationPort returns destination_port.
func (t TLVs) DestinationPort() (uint16, bool) { return t.Uint16(TagDestinationPort) }

// LanguageIndicator returns language_indicator.
func (t TLVs) LanguageIndicator() (uint8, bool) { return t.Uint8(TagLanguageIndicator) }

// SCInterfaceVersion returns sc_interface_version.
func (t TLVs) SCInterfaceVersion() (uint8, bool) { return t.Uint8(TagSCInterfaceVersion) }

// MoreMessagesToSend returns more_messages_to_send.
func (t TLVs) MoreMessagesToSend() (uint8, bool) { return t.Uint8(TagMoreMessagesToSend) }

// PayloadType returns payload_type.
func (t TLVs) PayloadType() (uint8, bool) { return t.Uint8(TagPayloadType) }

// UssdServiceOp returns ussd_service_op.
func (t TLVs) UssdServiceOp() (uint8, bool) { return t.Uint8(TagUssdServiceOp) }

// String prints the TLVs for logs: name=value pairs, printable strings quoted.
func (t TLVs) String() string {
	if len(t.b) == 0 {
		return ""
	}
	var sb strings.Builder
	first := true
	t.Each(func(tag Tag, v []byte) bool {
		if !first {
			sb.WriteByte(' ')
		}
		first = false
		sb.WriteString(tag.String())
		sb.WriteByte('=')
		switch len(v) {
		case 1:
			fmt.Fprintf(&sb, "%d", v[0])
		case 2:
			fmt.Fprintf(&sb, "%d", binary.BigEndian.Uint16(v))
		default:
			writeBytes(&sb, v)
		}
		return true
	})
	return sb.String()
}

// writeBytes writes b quoted if it is printable ASCII (a trailing NUL
// dropped), else as hex.
func writeBytes(sb *strings.Builder, b []byte) {
	s := b
	if n := len(s); n > 0 && s[n-1] == 0 {
		s = s[:n-1]
	}
	for _, c := range s {
		if c < 0x20 || c > 0x7E {
			fmt.Fprintf(sb, "0x%x", b)
			return
		}
	}
	fmt.Fprintf(sb, "%q", s)
}
