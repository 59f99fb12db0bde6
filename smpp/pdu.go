package smpp

import (
	"encoding/binary"
	"fmt"
)

// CommandID is the command_id field of an SMPP PDU header.
type CommandID uint32

// Command ids of SMPP 3.4. A response's id is its request's id | RespBit.
const (
	GenericNackID         CommandID = 0x80000000
	BindReceiverID        CommandID = 0x00000001
	BindReceiverRespID    CommandID = 0x80000001
	BindTransmitterID     CommandID = 0x00000002
	BindTransmitterRespID CommandID = 0x80000002
	QuerySMID             CommandID = 0x00000003
	QuerySMRespID         CommandID = 0x80000003
	SubmitSMID            CommandID = 0x00000004
	SubmitSMRespID        CommandID = 0x80000004
	DeliverSMID           CommandID = 0x00000005
	DeliverSMRespID       CommandID = 0x80000005
	UnbindID              CommandID = 0x00000006
	UnbindRespID          CommandID = 0x80000006
	ReplaceSMID           CommandID = 0x00000007
	ReplaceSMRespID       CommandID = 0x80000007
	CancelSMID            CommandID = 0x00000008
	CancelSMRespID        CommandID = 0x80000008
	BindTransceiverID     CommandID = 0x00000009
	BindTransceiverRespID CommandID = 0x80000009
	OutbindID             CommandID = 0x0000000B
	EnquireLinkID         CommandID = 0x00000015
	EnquireLinkRespID     CommandID = 0x80000015
	SubmitMultiID         CommandID = 0x00000021
	SubmitMultiRespID     CommandID = 0x80000021
	AlertNotificationID   CommandID = 0x00000102
	DataSMID              CommandID = 0x00000103
	DataSMRespID          CommandID = 0x80000103

	// RespBit marks a response command_id.
	RespBit CommandID = 0x80000000
)

var commandNames = map[CommandID]string{
	GenericNackID: "generic_nack", BindReceiverID: "bind_receiver", BindReceiverRespID: "bind_receiver_resp",
	BindTransmitterID: "bind_transmitter", BindTransmitterRespID: "bind_transmitter_resp",
	QuerySMID: "query_sm", QuerySMRespID: "query_sm_resp", SubmitSMID: "submit_sm", SubmitSMRespID: "submit_sm_resp",
	DeliverSMID: "deliver_sm", DeliverSMRespID: "deliver_sm_resp", UnbindID: "unbind", UnbindRespID: "unbind_resp",
	ReplaceSMID: "replace_sm", ReplaceSMRespID: "replace_sm_resp", CancelSMID: "cancel_sm", CancelSMRespID: "cancel_sm_resp",
	BindTransceiverID: "bind_transceiver", BindTransceiverRespID: "bind_transceiver_resp", OutbindID: "outbind",
	EnquireLinkID: "enquire_link", EnquireLinkRespID: "enquire_link_resp", SubmitMultiID: "submit_multi",
	SubmitMultiRespID: "submit_multi_resp", AlertNotificationID: "alert_notification", DataSMID: "data_sm",
	DataSMRespID: "data_sm_resp",
}

// String returns the spec's name of the command, or its hex value.
func (c CommandID) String() string {
	if n, ok := commandNames[c]; ok {
		return n
	}
	return fmt.Sprintf("command(0x%08X)", uint32(c))
}

// IsResponse reports whether c is a response command_id (generic_nack included).
func (c CommandID) IsResponse() bool { return c&RespBit != 0 }

// Known reports whether c is an SMPP 3.4 command this package decodes.
func (c CommandID) Known() bool { _, ok := commandNames[c]; return ok }

// Header is the 16-octet PDU header.
type Header struct {
	Length   uint32 // command_length: the whole PDU, header included
	ID       CommandID
	Status   CommandStatus
	Sequence uint32 // 0x00000001–0x7FFFFFFF
}

// ParseHeader reads a header from the first 16 octets of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrShortBuffer
	}
	return Header{
		Length:   binary.BigEndian.Uint32(b[0:]),
		ID:       CommandID(binary.BigEndian.Uint32(b[4:])),
		Status:   CommandStatus(binary.BigEndian.Uint32(b[8:])),
		Sequence: binary.BigEndian.Uint32(b[12:]),
	}, nil
}

// AppendBinary appends the header to dst.
func (h Header) AppendBinary(dst []byte) ([]byte, error) {
	dst = appendU32(dst, h.Length)
	dst = appendU32(dst, uint32(h.ID))
	dst = appendU32(dst, uint32(h.Status))
	return appendU32(dst, h.Sequence), nil
}

func (h Header) String() string {
	return fmt.Sprintf("%s seq=%d status=%s len=%d", h.ID, h.Sequence, h.Status, h.Length)
}

// PDU is the body of one SMPP operation. Bodies are plain structs in the
// specification's field order. UnmarshalBinary makes the byte-slice fields
// alias its input, so the input must stay unchanged while the PDU is used;
// AppendBinary appends the body to a caller-owned buffer and checks every
// field's maximum length.
type PDU interface {
	CommandID() CommandID
	AppendBinary(dst []byte) ([]byte, error)
	UnmarshalBinary(body []byte) error
	String() string
}

// New returns an empty PDU for id, or nil for an unknown command_id.
func New(id CommandID) PDU {
	switch id {
	case GenericNackID:
		return &GenericNack{}
	case BindReceiverID, BindTransmitterID, BindTransceiverID:
		return &Bind{Mode: bindModeOf(id)}
	case BindReceiverRespID, BindTransmitterRespID, BindTransceiverRespID:
		return &BindResp{Mode: bindModeOf(id &^ RespBit)}
	case OutbindID:
		return &Outbind{}
	case UnbindID:
		return &Unbind{}
	case UnbindRespID:
		return &UnbindResp{}
	case EnquireLinkID:
		return &EnquireLink{}
	case EnquireLinkRespID:
		return &EnquireLinkResp{}
	case SubmitSMID:
		return &SubmitSM{}
	case SubmitSMRespID:
		return &SubmitSMResp{}
	case DeliverSMID:
		return &DeliverSM{}
	case DeliverSMRespID:
		return &DeliverSMResp{}
	case DataSMID:
		return &DataSM{}
	case DataSMRespID:
		return &DataSMResp{}
	case SubmitMultiID:
		return &SubmitMulti{}
	case SubmitMultiRespID:
		return &SubmitMultiResp{}
	case QuerySMID:
		return &QuerySM{}
	case QuerySMRespID:
		return &QuerySMResp{}
	case CancelSMID:
		return &CancelSM{}
	case CancelSMRespID:
		return &CancelSMResp{}
	case ReplaceSMID:
		return &ReplaceSM{}
	case ReplaceSMRespID:
		return &ReplaceSMResp{}
	case AlertNotificationID:
		return &AlertNotification{}
	}
	return nil
}

// Decode parses one whole PDU (header and body). The returned PDU aliases b.
// A response with a non-zero command_status may carry an empty body; it
// decodes to an empty PDU. Decode never panics; errors are *StatusError (a
// recoverable body error, the header is valid) or ErrShortBuffer,
// ErrCommandLength and ErrUnknownCommand wrapped with context.
func Decode(b []byte) (Header, PDU, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	if h.Length < HeaderLen || int(h.Length) != len(b) {
		return h, nil, fmt.Errorf("%w: command_length %d, have %d octets", ErrCommandLength, h.Length, len(b))
	}
	p := New(h.ID)
	if p == nil {
		return h, nil, &StatusError{Status: StatusInvCmdID, Op: h.ID.String(), Reason: ErrUnknownCommand.Error()}
	}
	body := b[HeaderLen:]
	if h.ID.IsResponse() && h.Status != StatusOK && len(body) == 0 {
		return h, p, nil
	}
	if err := p.UnmarshalBinary(body); err != nil {
		return h, p, err
	}
	return h, p, nil
}

// AppendPDU appends a whole PDU, header and body, to dst and fills in
// command_length. A response with a non-zero status is written as its
// header alone (16 octets): SMPP 3.4 says the body "is not returned" then
// (§4.1.2, §4.4.2), and Decode accepts both forms from peers. The
// exceptions are the responses whose body explains a failure: a
// data_sm_resp with TLVs (delivery_failure_reason, network_error_code,
// additional_status_info_text: §4.7.2) and a submit_multi_resp listing
// unsuccessful destinations (§4.5.2) keep their body.
func AppendPDU(dst []byte, status CommandStatus, seq uint32, p PDU) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	var err error
	if status == StatusOK || !p.CommandID().IsResponse() || explainsFailure(p) {
		dst, err = p.AppendBinary(dst)
	}
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start
	binary.BigEndian.PutUint32(dst[start:], uint32(n))
	binary.BigEndian.PutUint32(dst[start+4:], uint32(p.CommandID()))
	binary.BigEndian.PutUint32(dst[start+8:], uint32(status))
	binary.BigEndian.PutUint32(dst[start+12:], seq)
	return dst, nil
}

// explainsFailure reports whether an error response carries a body that
// says why (see AppendPDU).
func explainsFailure(p PDU) bool {
	switch r := p.(type) {
	case *DataSMResp:
		return r.TLVs.Len() > 0
	case *SubmitMultiResp:
		return len(r.Unsuccess) > 0 || r.TLVs.Len() > 0
	}
	return false
}

// Response returns the empty response PDU for a request id (generic_nack for
// unknown ids and for requests without a response).
func Response(id CommandID) PDU {
	if id.IsResponse() || id == AlertNotificationID || id == OutbindID {
		return nil
	}
	if p := New(id | RespBit); p != nil {
		return p
	}
	return &GenericNack{}
}
