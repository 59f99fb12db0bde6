package smpp

import (
	"fmt"
	"strings"
)

// BindMode says which way a bind carries messages.
type BindMode uint8

// Bind modes.
const (
	BindTransmitter BindMode = iota + 1 // MT only
	BindReceiver                        // MO and receipts only
	BindTransceiver                     // both
)

func (m BindMode) String() string {
	switch m {
	case BindTransmitter:
		return "transmitter"
	case BindReceiver:
		return "receiver"
	case BindTransceiver:
		return "transceiver"
	}
	return "bind_mode(" + itoa(int(m)) + ")"
}

// CanSubmit reports whether an ESME bound in m may submit messages.
func (m BindMode) CanSubmit() bool { return m == BindTransmitter || m == BindTransceiver }

// CanReceive reports whether an ESME bound in m may be sent deliver_sm.
func (m BindMode) CanReceive() bool { return m == BindReceiver || m == BindTransceiver }

// ParseBindMode parses "transmitter", "receiver" or "transceiver" (also tx, rx, trx).
func ParseBindMode(s string) (BindMode, error) {
	switch strings.ToLower(s) {
	case "transmitter", "tx":
		return BindTransmitter, nil
	case "receiver", "rx":
		return BindReceiver, nil
	case "transceiver", "trx", "":
		return BindTransceiver, nil
	}
	return 0, fmt.Errorf("smpp: unknown bind mode %q (want transmitter, receiver or transceiver)", s)
}

func bindModeOf(id CommandID) BindMode {
	switch id {
	case BindTransmitterID:
		return BindTransmitter
	case BindReceiverID:
		return BindReceiver
	case BindTransceiverID:
		return BindTransceiver
	}
	return 0
}

func (m BindMode) commandID() CommandID {
	switch m {
	case BindTransmitter:
		return BindTransmitterID
	case BindReceiver:
		return BindReceiverID
	}
	return BindTransceiverID
}

// InterfaceVersion is SMPP 3.4's interface_version.
const InterfaceVersion = 0x34

// Address is a TON, an NPI and an address string.
type Address struct {
	TON  uint8
	NPI  uint8
	Addr []byte
}

func (a Address) String() string { return fmt.Sprintf("%d/%d/%q", a.TON, a.NPI, a.Addr) }

func (r *reader) address(field string, max int, status CommandStatus) Address {
	var a Address
	a.TON = r.u8("addr_ton") // constant names: concatenation here cost a third of decode time
	a.NPI = r.u8("addr_npi")
	a.Addr = r.cstring(field, max, status)
	return a
}

func appendAddress(dst []byte, a Address, max int, status CommandStatus, op, field string) ([]byte, error) {
	dst = append(dst, a.TON, a.NPI)
	return appendCString(dst, a.Addr, max, status, op, field)
}

// Bind is bind_transmitter, bind_receiver or bind_transceiver, by Mode.
type Bind struct {
	Mode             BindMode
	SystemID         []byte // max 16 with NUL
	Password         []byte // max 9 with NUL
	SystemType       []byte // max 13 with NUL
	InterfaceVersion uint8
	AddrTON          uint8
	AddrNPI          uint8
	AddressRange     []byte // max 41 with NUL
}

// CommandID implements PDU.
func (p *Bind) CommandID() CommandID { return p.Mode.commandID() }

// AppendBinary implements PDU.
func (p *Bind) AppendBinary(dst []byte) ([]byte, error) {
	op := p.CommandID().String()
	var err error
	if dst, err = appendCString(dst, p.SystemID, 16, StatusInvSysID, op, "system_id"); err != nil {
		return dst, err
	}
	if dst, err = appendCString(dst, p.Password, 9, StatusInvPaswd, op, "password"); err != nil {
		return dst, err
	}
	if dst, err = appendCString(dst, p.SystemType, 13, StatusInvSysTyp, op, "system_type"); err != nil {
		return dst, err
	}
	dst = append(dst, p.InterfaceVersion, p.AddrTON, p.AddrNPI)
	return appendCString(dst, p.AddressRange, 41, StatusInvSrcAdr, op, "address_range")
}

// UnmarshalBinary implements PDU.
func (p *Bind) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: p.CommandID().String()}
	p.SystemID = r.cstring("system_id", 16, StatusInvSysID)
	p.Password = r.cstring("password", 9, StatusInvPaswd)
	p.SystemType = r.cstring("system_type", 13, StatusInvSysTyp)
	p.InterfaceVersion = r.u8("interface_version")
	p.AddrTON = r.u8("addr_ton")
	p.AddrNPI = r.u8("addr_npi")
	p.AddressRange = r.cstring("address_range", 41, StatusInvSrcAdr)
	return r.done()
}

func (p *Bind) String() string {
	return fmt.Sprintf("%s{system_id=%q password=*** system_type=%q interface_version=0x%02x addr=%d/%d/%q}",
		p.CommandID(), p.SystemID, p.SystemType, p.InterfaceVersion, p.AddrTON, p.AddrNPI, p.AddressRange)
}

// BindResp is the response to a bind; on error it may have an empty body.
type BindResp struct {
	Mode     BindMode
	SystemID []byte // max 16 with NUL
	TLVs     TLVs   // sc_interface_version
}

// CommandID implements PDU.
func (p *BindResp) CommandID() CommandID { return p.Mode.commandID() | RespBit }

// AppendBinary implements PDU.
func (p *BindResp) AppendBinary(dst []byte) ([]byte, error) {
	dst, err := appendCString(dst, p.SystemID, 16, StatusInvSysID, p.CommandID().String(), "system_id")
	if err != nil {
		return dst, err
	}
	return append(dst, p.TLVs.b...), nil
}

// UnmarshalBinary implements PDU.
func (p *BindResp) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: p.CommandID().String()}
	p.SystemID = r.cstring("system_id", 16, StatusInvSysID)
	r.respTLVs(&p.TLVs)
	return r.err
}

func (p *BindResp) String() string {
	return fmt.Sprintf("%s{system_id=%q %s}", p.CommandID(), p.SystemID, p.TLVs)
}

// Outbind asks an ESME to bind (SMSC to ESME); it has no response.
type Outbind struct {
	SystemID []byte
	Password []byte
}

// CommandID implements PDU.
func (p *Outbind) CommandID() CommandID { return OutbindID }

// AppendBinary implements PDU.
func (p *Outbind) AppendBinary(dst []byte) ([]byte, error) {
	dst, err := appendCString(dst, p.SystemID, 16, StatusInvSysID, "outbind", "system_id")
	if err != nil {
		return dst, err
	}
	return appendCString(dst, p.Password, 9, StatusInvPaswd, "outbind", "password")
}

// UnmarshalBinary implements PDU.
func (p *Outbind) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: "outbind"}
	p.SystemID = r.cstring("system_id", 16, StatusInvSysID)
	p.Password = r.cstring("password", 9, StatusInvPaswd)
	return r.done()
}

func (p *Outbind) String() string {
	return fmt.Sprintf("outbind{system_id=%q password=***}", p.SystemID)
}

// empty is the shared body of PDUs without fields.
type empty struct{}

func (empty) AppendBinary(dst []byte) ([]byte, error) { return dst, nil }

func unmarshalEmpty(b []byte, op string) error {
	if len(b) != 0 {
		return &StatusError{Status: StatusInvCmdLen, Op: op, Reason: "body must be empty"}
	}
	return nil
}

// GenericNack answers a PDU that could not be processed at all. Like every
// response it keeps any TLVs a peer appended (see respTLVs).
type GenericNack struct{ TLVs TLVs }

// Unbind ends a session.
type Unbind struct{ empty }

// UnbindResp answers unbind.
type UnbindResp struct{ TLVs TLVs }

// EnquireLink is the keepalive.
type EnquireLink struct{ empty }

// EnquireLinkResp answers enquire_link.
type EnquireLinkResp struct{ TLVs TLVs }

// CancelSMResp answers cancel_sm.
type CancelSMResp struct{ TLVs TLVs }

// ReplaceSMResp answers replace_sm.
type ReplaceSMResp struct{ TLVs TLVs }

func (*GenericNack) CommandID() CommandID     { return GenericNackID }
func (*Unbind) CommandID() CommandID          { return UnbindID }
func (*UnbindResp) CommandID() CommandID      { return UnbindRespID }
func (*EnquireLink) CommandID() CommandID     { return EnquireLinkID }
func (*EnquireLinkResp) CommandID() CommandID { return EnquireLinkRespID }
func (*CancelSMResp) CommandID() CommandID    { return CancelSMRespID }
func (*ReplaceSMResp) CommandID() CommandID   { return ReplaceSMRespID }

func (p *GenericNack) AppendBinary(dst []byte) ([]byte, error) { return append(dst, p.TLVs.b...), nil }
func (p *UnbindResp) AppendBinary(dst []byte) ([]byte, error)  { return append(dst, p.TLVs.b...), nil }
func (p *EnquireLinkResp) AppendBinary(dst []byte) ([]byte, error) {
	return append(dst, p.TLVs.b...), nil
}
func (p *CancelSMResp) AppendBinary(dst []byte) ([]byte, error) { return append(dst, p.TLVs.b...), nil }
func (p *ReplaceSMResp) AppendBinary(dst []byte) ([]byte, error) {
	return append(dst, p.TLVs.b...), nil
}

func (p *GenericNack) UnmarshalBinary(b []byte) error     { p.TLVs = respTLVs(b); return nil }
func (*Unbind) UnmarshalBinary(b []byte) error            { return unmarshalEmpty(b, "unbind") }
func (p *UnbindResp) UnmarshalBinary(b []byte) error      { p.TLVs = respTLVs(b); return nil }
func (*EnquireLink) UnmarshalBinary(b []byte) error       { return unmarshalEmpty(b, "enquire_link") }
func (p *EnquireLinkResp) UnmarshalBinary(b []byte) error { p.TLVs = respTLVs(b); return nil }
func (p *CancelSMResp) UnmarshalBinary(b []byte) error    { p.TLVs = respTLVs(b); return nil }
func (p *ReplaceSMResp) UnmarshalBinary(b []byte) error   { p.TLVs = respTLVs(b); return nil }

func (p *GenericNack) String() string     { return "generic_nack{" + p.TLVs.String() + "}" }
func (*Unbind) String() string            { return "unbind{}" }
func (p *UnbindResp) String() string      { return "unbind_resp{" + p.TLVs.String() + "}" }
func (*EnquireLink) String() string       { return "enquire_link{}" }
func (p *EnquireLinkResp) String() string { return "enquire_link_resp{" + p.TLVs.String() + "}" }
func (p *CancelSMResp) String() string    { return "cancel_sm_resp{" + p.TLVs.String() + "}" }
func (p *ReplaceSMResp) String() string   { return "replace_sm_resp{" + p.TLVs.String() + "}" }

// esm_class and registered_delivery bits used by optgate.
const (
	ESMClassUDHI           = 0x40 // short_message starts with a user data header
	ESMClassReceipt        = 0x04 // deliver_sm: SMSC delivery receipt
	ESMClassIntermediate   = 0x20 // deliver_sm: intermediate delivery notification
	ESMClassTypeMask       = 0x3C // message type bits 2–5
	RegisteredDeliveryMask = 0x03 // 0 none, 1 success or failure, 2 failure only
)

// SM is the body shared by submit_sm and deliver_sm (SMPP 3.4 §4.4.1, §4.6.1).
type SM struct {
	ServiceType          []byte  // max 6 with NUL
	Source               Address // addr max 21 with NUL
	Dest                 Address // addr max 21 with NUL
	ESMClass             uint8
	ProtocolID           uint8
	PriorityFlag         uint8
	ScheduleDeliveryTime []byte // empty or 16 characters
	ValidityPeriod       []byte // empty or 16 characters
	RegisteredDelivery   uint8
	ReplaceIfPresent     uint8
	DataCoding           uint8
	SMDefaultMsgID       uint8
	ShortMessage         []byte // 0–254 octets; sm_length is derived
	TLVs                 TLVs
}

// MaxShortMessage is the largest short_message an SM may carry.
const MaxShortMessage = 254

func (p *SM) appendBinary(dst []byte, op string) ([]byte, error) {
	var err error
	if dst, err = appendCString(dst, p.ServiceType, 6, StatusInvSerTyp, op, "service_type"); err != nil {
		return dst, err
	}
	if dst, err = appendAddress(dst, p.Source, 21, StatusInvSrcAdr, op, "source_addr"); err != nil {
		return dst, err
	}
	if dst, err = appendAddress(dst, p.Dest, 21, StatusInvDstAdr, op, "destination_addr"); err != nil {
		return dst, err
	}
	dst = append(dst, p.ESMClass, p.ProtocolID, p.PriorityFlag)
	if dst, err = appendTime(dst, p.ScheduleDeliveryTime, StatusInvSched, op, "schedule_delivery_time"); err != nil {
		return dst, err
	}
	if dst, err = appendTime(dst, p.ValidityPeriod, StatusInvExpiry, op, "validity_period"); err != nil {
		return dst, err
	}
	if len(p.ShortMessage) > MaxShortMessage {
		return dst, &StatusError{Status: StatusInvMsgLen, Op: op + ".short_message", Reason: "longer than 254 octets"}
	}
	if len(p.ShortMessage) > 0 && p.TLVs.Has(TagMessagePayload) {
		return dst, &StatusError{Status: StatusInvTLVVal, Op: op + ".message_payload", Reason: "both short_message and message_payload set"}
	}
	dst = append(dst, p.RegisteredDelivery, p.ReplaceIfPresent, p.DataCoding, p.SMDefaultMsgID, byte(len(p.ShortMessage)))
	dst = append(dst, p.ShortMessage...)
	return append(dst, p.TLVs.b...), nil
}

func (p *SM) unmarshalBinary(b []byte, op string) error {
	r := reader{b: b, op: op}
	p.ServiceType = r.cstring("service_type", 6, StatusInvSerTyp)
	p.Source = r.address("source_addr", 21, StatusInvSrcAdr)
	p.Dest = r.address("destination_addr", 21, StatusInvDstAdr)
	p.ESMClass = r.u8("esm_class")
	p.ProtocolID = r.u8("protocol_id")
	p.PriorityFlag = r.u8("priority_flag")
	p.ScheduleDeliveryTime = r.timeField("schedule_delivery_time", StatusInvSched)
	p.ValidityPeriod = r.timeField("validity_period", StatusInvExpiry)
	p.RegisteredDelivery = r.u8("registered_delivery")
	p.ReplaceIfPresent = r.u8("replace_if_present_flag")
	p.DataCoding = r.u8("data_coding")
	p.SMDefaultMsgID = r.u8("sm_default_msg_id")
	n := int(r.u8("sm_length"))
	if r.err == nil && n > MaxShortMessage {
		r.fail(StatusInvMsgLen, "sm_length", "greater than 254")
	}
	p.ShortMessage = r.octets("short_message", n, StatusInvMsgLen)
	r.tlvs(&p.TLVs)
	if r.err == nil && n > 0 && p.TLVs.Has(TagMessagePayload) {
		r.fail(StatusInvTLVVal, "message_payload", "both short_message and message_payload set")
	}
	return r.err
}

// Text returns the message octets: message_payload if present, else
// short_message (aliased).
func (p *SM) Text() []byte {
	if v, ok := p.TLVs.MessagePayload(); ok {
		return v
	}
	return p.ShortMessage
}

func (p *SM) string(op string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s{service_type=%q src=%s dst=%s esm_class=0x%02x protocol_id=%d priority=%d",
		op, p.ServiceType, p.Source, p.Dest, p.ESMClass, p.ProtocolID, p.PriorityFlag)
	if len(p.ScheduleDeliveryTime) > 0 {
		fmt.Fprintf(&sb, " schedule=%q", p.ScheduleDeliveryTime)
	}
	if len(p.ValidityPeriod) > 0 {
		fmt.Fprintf(&sb, " validity=%q", p.ValidityPeriod)
	}
	fmt.Fprintf(&sb, " registered_delivery=%d data_coding=0x%02x sm_length=%d short_message=",
		p.RegisteredDelivery, p.DataCoding, len(p.ShortMessage))
	writeBytes(&sb, p.ShortMessage)
	if p.TLVs.Len() > 0 {
		sb.WriteByte(' ')
		sb.WriteString(p.TLVs.String())
	}
	sb.WriteByte('}')
	return sb.String()
}

// SubmitSM submits one short message (ESME to SMSC).
type SubmitSM struct{ SM }

// CommandID implements PDU.
func (p *SubmitSM) CommandID() CommandID { return SubmitSMID }

// AppendBinary implements PDU.
func (p *SubmitSM) AppendBinary(dst []byte) ([]byte, error) { return p.appendBinary(dst, "submit_sm") }

// UnmarshalBinary implements PDU.
func (p *SubmitSM) UnmarshalBinary(b []byte) error { return p.unmarshalBinary(b, "submit_sm") }

func (p *SubmitSM) String() string { return p.string("submit_sm") }

// DeliverSM delivers a mobile-originated message or a receipt (SMSC to ESME).
type DeliverSM struct{ SM }

// CommandID implements PDU.
func (p *DeliverSM) CommandID() CommandID { return DeliverSMID }

// AppendBinary implements PDU.
func (p *DeliverSM) AppendBinary(dst []byte) ([]byte, error) {
	return p.appendBinary(dst, "deliver_sm")
}

// UnmarshalBinary implements PDU.
func (p *DeliverSM) UnmarshalBinary(b []byte) error { return p.unmarshalBinary(b, "deliver_sm") }

func (p *DeliverSM) String() string { return p.string("deliver_sm") }

// IsReceipt reports whether the deliver_sm is a delivery receipt or an
// intermediate notification rather than a mobile-originated message.
func (p *DeliverSM) IsReceipt() bool {
	return p.ESMClass&ESMClassTypeMask == ESMClassReceipt || p.ESMClass&ESMClassTypeMask == ESMClassIntermediate
}

func appendMessageID(dst, id []byte, op string) ([]byte, error) {
	return appendCString(dst, id, 65, StatusInvMsgID, op, "message_id")
}

// unmarshalMessageID reads a response's message_id and keeps what follows
// as its TLVs.
func unmarshalMessageID(b []byte, op string, t *TLVs) ([]byte, error) {
	r := reader{b: b, op: op}
	id := r.cstring("message_id", 65, StatusInvMsgID)
	r.respTLVs(t)
	return id, r.err
}

// SubmitSMResp answers submit_sm with the SMSC's message id, and any TLVs
// the SMSC appended (SMPP v5.0 SMSCs send some, e.g. additional_status_info_text).
type SubmitSMResp struct {
	MessageID []byte // max 65 with NUL
	TLVs      TLVs
}

// CommandID implements PDU.
func (p *SubmitSMResp) CommandID() CommandID { return SubmitSMRespID }

// AppendBinary implements PDU.
func (p *SubmitSMResp) AppendBinary(dst []byte) ([]byte, error) {
	dst, err := appendMessageID(dst, p.MessageID, "submit_sm_resp")
	if err != nil {
		return dst, err
	}
	return append(dst, p.TLVs.b...), nil
}

// UnmarshalBinary implements PDU.
func (p *SubmitSMResp) UnmarshalBinary(b []byte) (err error) {
	p.MessageID, err = unmarshalMessageID(b, "submit_sm_resp", &p.TLVs)
	return err
}

func (p *SubmitSMResp) String() string {
	if p.TLVs.Len() > 0 {
		return fmt.Sprintf("submit_sm_resp{message_id=%q %s}", p.MessageID, p.TLVs)
	}
	return fmt.Sprintf("submit_sm_resp{message_id=%q}", p.MessageID)
}

// DeliverSMResp answers deliver_sm; its message_id is always empty in 3.4,
// but a non-empty one from a peer is accepted, and so are TLVs.
type DeliverSMResp struct {
	MessageID []byte // max 65 with NUL; empty in 3.4
	TLVs      TLVs
}

// CommandID implements PDU.
func (p *DeliverSMResp) CommandID() CommandID { return DeliverSMRespID }

// AppendBinary implements PDU.
func (p *DeliverSMResp) AppendBinary(dst []byte) ([]byte, error) {
	dst, err := appendMessageID(dst, p.MessageID, "deliver_sm_resp")
	if err != nil {
		return dst, err
	}
	return append(dst, p.TLVs.b...), nil
}

// UnmarshalBinary implements PDU.
func (p *DeliverSMResp) UnmarshalBinary(b []byte) (err error) {
	p.MessageID, err = unmarshalMessageID(b, "deliver_sm_resp", &p.TLVs)
	return err
}

func (p *DeliverSMResp) String() string {
	if p.TLVs.Len() > 0 {
		return fmt.Sprintf("deliver_sm_resp{message_id=%q %s}", p.MessageID, p.TLVs)
	}
	return fmt.Sprintf("deliver_sm_resp{message_id=%q}", p.MessageID)
}

// DataSM carries a message in either direction (SMPP 3.4 §4.7.1).
type DataSM struct {
	ServiceType        []byte  // max 6 with NUL
	Source             Address // addr max 65 with NUL
	Dest               Address // addr max 65 with NUL
	ESMClass           uint8
	RegisteredDelivery uint8
	DataCoding         uint8
	TLVs               TLVs // message_payload carries the text
}

// CommandID implements PDU.
func (p *DataSM) CommandID() CommandID { return DataSMID }

// AppendBinary implements PDU.
func (p *DataSM) AppendBinary(dst []byte) ([]byte, error) {
	var err error
	if dst, err = appendCString(dst, p.ServiceType, 6, StatusInvSerTyp, "data_sm", "service_type"); err != nil {
		return dst, err
	}
	if dst, err = appendAddress(dst, p.Source, 65, StatusInvSrcAdr, "data_sm", "source_addr"); err != nil {
		return dst, err
	}
	if dst, err = appendAddress(dst, p.Dest, 65, StatusInvDstAdr, "data_sm", "destination_addr"); err != nil {
		return dst, err
	}
	dst = append(dst, p.ESMClass, p.RegisteredDelivery, p.DataCoding)
	return append(dst, p.TLVs.b...), nil
}

// UnmarshalBinary implements PDU.
func (p *DataSM) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: "data_sm"}
	p.ServiceType = r.cstring("service_type", 6, StatusInvSerTyp)
	p.Source = r.address("source_addr", 65, StatusInvSrcAdr)
	p.Dest = r.address("destination_addr", 65, StatusInvDstAdr)
	p.ESMClass = r.u8("esm_class")
	p.RegisteredDelivery = r.u8("registered_delivery")
	p.DataCoding = r.u8("data_coding")
	r.tlvs(&p.TLVs)
	return r.err
}

func (p *DataSM) String() string {
	return fmt.Sprintf("data_sm{service_type=%q src=%s dst=%s esm_class=0x%02x registered_delivery=%d data_coding=0x%02x %s}",
		p.ServiceType, p.Source, p.Dest, p.ESMClass, p.RegisteredDelivery, p.DataCoding, p.TLVs)
}

// DataSMResp answers data_sm.
type DataSMResp struct {
	MessageID []byte // max 65 with NUL
	TLVs      TLVs
}

// CommandID implements PDU.
func (p *DataSMResp) CommandID() CommandID { return DataSMRespID }

// AppendBinary implements PDU.
func (p *DataSMResp) AppendBinary(dst []byte) ([]byte, error) {
	dst, err := appendCString(dst, p.MessageID, 65, StatusInvMsgID, "data_sm_resp", "message_id")
	if err != nil {
		return dst, err
	}
	return append(dst, p.TLVs.b...), nil
}

// UnmarshalBinary implements PDU.
func (p *DataSMResp) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: "data_sm_resp"}
	p.MessageID = r.cstring("message_id", 65, StatusInvMsgID)
	r.respTLVs(&p.TLVs)
	return r.err
}

func (p *DataSMResp) String() string {
	return fmt.Sprintf("data_sm_resp{message_id=%q %s}", p.MessageID, p.TLVs)
}

// Destination flags of submit_multi.
const (
	DestSME          = 1 // an SME address
	DestDistribution = 2 // a distribution list name
)

// MultiDest is one destination of submit_multi.
type MultiDest struct {
	Flag   uint8   // DestSME or DestDistribution
	Addr   Address // when Flag is DestSME (addr max 21 with NUL)
	DLName []byte  // when Flag is DestDistribution (max 21 with NUL)
}

// SubmitMulti submits one message to up to 254 destinations (§4.5.1).
type SubmitMulti struct {
	ServiceType          []byte
	Source               Address
	Dests                []MultiDest
	ESMClass             uint8
	ProtocolID           uint8
	PriorityFlag         uint8
	ScheduleDeliveryTime []byte
	ValidityPeriod       []byte
	RegisteredDelivery   uint8
	ReplaceIfPresent     uint8
	DataCoding           uint8
	SMDefaultMsgID       uint8
	ShortMessage         []byte
	TLVs                 TLVs
}

// CommandID implements PDU.
func (p *SubmitMulti) CommandID() CommandID { return SubmitMultiID }

// AppendBinary implements PDU.
func (p *SubmitMulti) AppendBinary(dst []byte) ([]byte, error) {
	const op = "submit_multi"
	var err error
	if dst, err = appendCString(dst, p.ServiceType, 6, StatusInvSerTyp, op, "service_type"); err != nil {
		return dst, err
	}
	if dst, err = appendAddress(dst, p.Source, 21, StatusInvSrcAdr, op, "source_addr"); err != nil {
		return dst, err
	}
	if len(p.Dests) == 0 || len(p.Dests) > 254 {
		return dst, &StatusError{Status: StatusInvNumDests, Op: op + ".number_of_dests", Reason: "must be 1–254"}
	}
	dst = append(dst, byte(len(p.Dests)))
	for _, d := range p.Dests {
		dst = append(dst, d.Flag)
		switch d.Flag {
		case DestSME:
			dst, err = appendAddress(dst, d.Addr, 21, StatusInvDstAdr, op, "dest_address")
		case DestDistribution:
			dst, err = appendCString(dst, d.DLName, 21, StatusInvDLName, op, "dl_name")
		default:
			err = &StatusError{Status: StatusInvDestFlag, Op: op + ".dest_flag", Reason: "must be 1 or 2"}
		}
		if err != nil {
			return dst, err
		}
	}
	dst = append(dst, p.ESMClass, p.ProtocolID, p.PriorityFlag)
	if dst, err = appendTime(dst, p.ScheduleDeliveryTime, StatusInvSched, op, "schedule_delivery_time"); err != nil {
		return dst, err
	}
	if dst, err = appendTime(dst, p.ValidityPeriod, StatusInvExpiry, op, "validity_period"); err != nil {
		return dst, err
	}
	if len(p.ShortMessage) > MaxShortMessage {
		return dst, &StatusError{Status: StatusInvMsgLen, Op: op + ".short_message", Reason: "longer than 254 octets"}
	}
	dst = append(dst, p.RegisteredDelivery, p.ReplaceIfPresent, p.DataCoding, p.SMDefaultMsgID, byte(len(p.ShortMessage)))
	dst = append(dst, p.ShortMessage...)
	return append(dst, p.TLVs.b...), nil
}

// UnmarshalBinary implements PDU.
func (p *SubmitMulti) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: "submit_multi"}
	p.ServiceType = r.cstring("service_type", 6, StatusInvSerTyp)
	p.Source = r.address("source_addr", 21, StatusInvSrcAdr)
	n := int(r.u8("number_of_dests"))
	if r.err == nil && (n == 0 || n > 254) {
		r.fail(StatusInvNumDests, "number_of_dests", "must be 1–254")
	}
	p.Dests = p.Dests[:0]
	for i := 0; i < n && r.err == nil; i++ {
		var d MultiDest
		d.Flag = r.u8("dest_flag")
		switch {
		case r.err != nil:
		case d.Flag == DestSME:
			d.Addr = r.address("dest_address", 21, StatusInvDstAdr)
		case d.Flag == DestDistribution:
			d.DLName = r.cstring("dl_name", 21, StatusInvDLName)
		default:
			r.fail(StatusInvDestFlag, "dest_flag", "must be 1 or 2")
		}
		p.Dests = append(p.Dests, d)
	}
	p.ESMClass = r.u8("esm_class")
	p.ProtocolID = r.u8("protocol_id")
	p.PriorityFlag = r.u8("priority_flag")
	p.ScheduleDeliveryTime = r.timeField("schedule_delivery_time", StatusInvSched)
	p.ValidityPeriod = r.timeField("validity_period", StatusInvExpiry)
	p.RegisteredDelivery = r.u8("registered_delivery")
	p.ReplaceIfPresent = r.u8("replace_if_present_flag")
	p.DataCoding = r.u8("data_coding")
	p.SMDefaultMsgID = r.u8("sm_default_msg_id")
	sl := int(r.u8("sm_length"))
	if r.err == nil && sl > MaxShortMessage {
		r.fail(StatusInvMsgLen, "sm_length", "greater than 254")
	}
	p.ShortMessage = r.octets("short_message", sl, StatusInvMsgLen)
	r.tlvs(&p.TLVs)
	return r.err
}

func (p *SubmitMulti) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "submit_multi{service_type=%q src=%s dests=[", p.ServiceType, p.Source)
	for i, d := range p.Dests {
		if i > 0 {
			sb.WriteByte(' ')
		}
		if d.Flag == DestDistribution {
			fmt.Fprintf(&sb, "dl:%q", d.DLName)
		} else {
			sb.WriteString(d.Addr.String())
		}
	}
	fmt.Fprintf(&sb, "] esm_class=0x%02x registered_delivery=%d data_coding=0x%02x sm_length=%d short_message=",
		p.ESMClass, p.RegisteredDelivery, p.DataCoding, len(p.ShortMessage))
	writeBytes(&sb, p.ShortMessage)
	if p.TLVs.Len() > 0 {
		sb.WriteByte(' ')
		sb.WriteString(p.TLVs.String())
	}
	sb.WriteByte('}')
	return sb.String()
}

// UnsuccessSME is a destination submit_multi could not deliver to.
type UnsuccessSME struct {
	Addr   Address
	Status CommandStatus
}

// SubmitMultiResp answers submit_multi.
type SubmitMultiResp struct {
	MessageID []byte
	Unsuccess []UnsuccessSME
	TLVs      TLVs
}

// CommandID implements PDU.
func (p *SubmitMultiResp) CommandID() CommandID { return SubmitMultiRespID }

// AppendBinary implements PDU.
func (p *SubmitMultiResp) AppendBinary(dst []byte) ([]byte, error) {
	const op = "submit_multi_resp"
	dst, err := appendCString(dst, p.MessageID, 65, StatusInvMsgID, op, "message_id")
	if err != nil {
		return dst, err
	}
	if len(p.Unsuccess) > 254 {
		return dst, &StatusError{Status: StatusInvNumDests, Op: op + ".no_unsuccess", Reason: "more than 254"}
	}
	dst = append(dst, byte(len(p.Unsuccess)))
	for _, u := range p.Unsuccess {
		if dst, err = appendAddress(dst, u.Addr, 21, StatusInvDstAdr, op, "dest_addr"); err != nil {
			return dst, err
		}
		dst = appendU32(dst, uint32(u.Status))
	}
	return append(dst, p.TLVs.b...), nil
}

// UnmarshalBinary implements PDU.
func (p *SubmitMultiResp) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: "submit_multi_resp"}
	p.MessageID = r.cstring("message_id", 65, StatusInvMsgID)
	n := int(r.u8("no_unsuccess"))
	p.Unsuccess = p.Unsuccess[:0]
	for i := 0; i < n && r.err == nil; i++ {
		var u UnsuccessSME
		u.Addr = r.address("dest_addr", 21, StatusInvDstAdr)
		hi := r.u16("error_status_code")
		lo := r.u16("error_status_code")
		u.Status = CommandStatus(uint32(hi)<<16 | uint32(lo))
		p.Unsuccess = append(p.Unsuccess, u)
	}
	r.respTLVs(&p.TLVs)
	return r.err
}

func (p *SubmitMultiResp) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "submit_multi_resp{message_id=%q unsuccess=[", p.MessageID)
	for i, u := range p.Unsuccess {
		if i > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s:%s", u.Addr, u.Status)
	}
	sb.WriteByte(']')
	if p.TLVs.Len() > 0 {
		sb.WriteByte(' ')
		sb.WriteString(p.TLVs.String())
	}
	sb.WriteByte('}')
	return sb.String()
}

// QuerySM asks for a message's state.
type QuerySM struct {
	MessageID []byte  // max 65 with NUL
	Source    Address // addr max 21 with NUL
}

// CommandID implements PDU.
func (p *QuerySM) CommandID() CommandID { return QuerySMID }

// AppendBinary implements PDU.
func (p *QuerySM) AppendBinary(dst []byte) ([]byte, error) {
	dst, err := appendCString(dst, p.MessageID, 65, StatusInvMsgID, "query_sm", "message_id")
	if err != nil {
		return dst, err
	}
	return appendAddress(dst, p.Source, 21, StatusInvSrcAdr, "query_sm", "source_addr")
}

// UnmarshalBinary implements PDU.
func (p *QuerySM) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: "query_sm"}
	p.MessageID = r.cstring("message_id", 65, StatusInvMsgID)
	p.Source = r.address("source_addr", 21, StatusInvSrcAdr)
	return r.done()
}

func (p *QuerySM) String() string {
	return fmt.Sprintf("query_sm{message_id=%q src=%s}", p.MessageID, p.Source)
}

// QuerySMResp answers query_sm.
type QuerySMResp struct {
	MessageID    []byte // max 65 with NUL
	FinalDate    []byte // empty or 16 characters
	MessageState uint8
	ErrorCode    uint8
	TLVs         TLVs
}

// CommandID implements PDU.
func (p *QuerySMResp) CommandID() CommandID { return QuerySMRespID }

// AppendBinary implements PDU.
func (p *QuerySMResp) AppendBinary(dst []byte) ([]byte, error) {
	dst, err := appendCString(dst, p.MessageID, 65, StatusInvMsgID, "query_sm_resp", "message_id")
	if err != nil {
		return dst, err
	}
	if dst, err = appendTime(dst, p.FinalDate, StatusInvSched, "query_sm_resp", "final_date"); err != nil {
		return dst, err
	}
	dst = append(dst, p.MessageState, p.ErrorCode)
	return append(dst, p.TLVs.b...), nil
}

// UnmarshalBinary implements PDU.
func (p *QuerySMResp) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: "query_sm_resp"}
	p.MessageID = r.cstring("message_id", 65, StatusInvMsgID)
	p.FinalDate = r.timeField("final_date", StatusInvSched)
	p.MessageState = r.u8("message_state")
	p.ErrorCode = r.u8("error_code")
	r.respTLVs(&p.TLVs)
	return r.err
}

func (p *QuerySMResp) String() string {
	return fmt.Sprintf("query_sm_resp{message_id=%q final_date=%q message_state=%d error_code=%d%s}",
		p.MessageID, p.FinalDate, p.MessageState, p.ErrorCode, spaced(p.TLVs))
}

// CancelSM cancels a pending message.
type CancelSM struct {
	ServiceType []byte
	MessageID   []byte
	Source      Address
	Dest        Address
}

// CommandID implements PDU.
func (p *CancelSM) CommandID() CommandID { return CancelSMID }

// AppendBinary implements PDU.
func (p *CancelSM) AppendBinary(dst []byte) ([]byte, error) {
	const op = "cancel_sm"
	var err error
	if dst, err = appendCString(dst, p.ServiceType, 6, StatusInvSerTyp, op, "service_type"); err != nil {
		return dst, err
	}
	if dst, err = appendCString(dst, p.MessageID, 65, StatusInvMsgID, op, "message_id"); err != nil {
		return dst, err
	}
	if dst, err = appendAddress(dst, p.Source, 21, StatusInvSrcAdr, op, "source_addr"); err != nil {
		return dst, err
	}
	return appendAddress(dst, p.Dest, 21, StatusInvDstAdr, op, "destination_addr")
}

// UnmarshalBinary implements PDU.
func (p *CancelSM) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: "cancel_sm"}
	p.ServiceType = r.cstring("service_type", 6, StatusInvSerTyp)
	p.MessageID = r.cstring("message_id", 65, StatusInvMsgID)
	p.Source = r.address("source_addr", 21, StatusInvSrcAdr)
	p.Dest = r.address("destination_addr", 21, StatusInvDstAdr)
	return r.done()
}

func (p *CancelSM) String() string {
	return fmt.Sprintf("cancel_sm{service_type=%q message_id=%q src=%s dst=%s}", p.ServiceType, p.MessageID, p.Source, p.Dest)
}

// ReplaceSM replaces a pending message.
type ReplaceSM struct {
	MessageID            []byte
	Source               Address
	ScheduleDeliveryTime []byte
	ValidityPeriod       []byte
	RegisteredDelivery   uint8
	SMDefaultMsgID       uint8
	ShortMessage         []byte
}

// CommandID implements PDU.
func (p *ReplaceSM) CommandID() CommandID { return ReplaceSMID }

// AppendBinary implements PDU.
func (p *ReplaceSM) AppendBinary(dst []byte) ([]byte, error) {
	const op = "replace_sm"
	var err error
	if dst, err = appendCString(dst, p.MessageID, 65, StatusInvMsgID, op, "message_id"); err != nil {
		return dst, err
	}
	if dst, err = appendAddress(dst, p.Source, 21, StatusInvSrcAdr, op, "source_addr"); err != nil {
		return dst, err
	}
	if dst, err = appendTime(dst, p.ScheduleDeliveryTime, StatusInvSched, op, "schedule_delivery_time"); err != nil {
		return dst, err
	}
	if dst, err = appendTime(dst, p.ValidityPeriod, StatusInvExpiry, op, "validity_period"); err != nil {
		return dst, err
	}
	if len(p.ShortMessage) > MaxShortMessage {
		return dst, &StatusError{Status: StatusInvMsgLen, Op: op + ".short_message", Reason: "longer than 254 octets"}
	}
	dst = append(dst, p.RegisteredDelivery, p.SMDefaultMsgID, byte(len(p.ShortMessage)))
	return append(dst, p.ShortMessage...), nil
}

// UnmarshalBinary implements PDU.
func (p *ReplaceSM) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: "replace_sm"}
	p.MessageID = r.cstring("message_id", 65, StatusInvMsgID)
	p.Source = r.address("source_addr", 21, StatusInvSrcAdr)
	p.ScheduleDeliveryTime = r.timeField("schedule_delivery_time", StatusInvSched)
	p.ValidityPeriod = r.timeField("validity_period", StatusInvExpiry)
	p.RegisteredDelivery = r.u8("registered_delivery")
	p.SMDefaultMsgID = r.u8("sm_default_msg_id")
	n := int(r.u8("sm_length"))
	if r.err == nil && n > MaxShortMessage {
		r.fail(StatusInvMsgLen, "sm_length", "greater than 254")
	}
	p.ShortMessage = r.octets("short_message", n, StatusInvMsgLen)
	return r.done()
}

func (p *ReplaceSM) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "replace_sm{message_id=%q src=%s registered_delivery=%d sm_length=%d short_message=",
		p.MessageID, p.Source, p.RegisteredDelivery, len(p.ShortMessage))
	writeBytes(&sb, p.ShortMessage)
	sb.WriteByte('}')
	return sb.String()
}

// AlertNotification tells an ESME that a subscriber became available; it has
// no response.
type AlertNotification struct {
	Source   Address // addr max 65 with NUL
	ESMEAddr Address // addr max 65 with NUL
	TLVs     TLVs
}

// CommandID implements PDU.
func (p *AlertNotification) CommandID() CommandID { return AlertNotificationID }

// AppendBinary implements PDU.
func (p *AlertNotification) AppendBinary(dst []byte) ([]byte, error) {
	dst, err := appendAddress(dst, p.Source, 65, StatusInvSrcAdr, "alert_notification", "source_addr")
	if err != nil {
		return dst, err
	}
	if dst, err = appendAddress(dst, p.ESMEAddr, 65, StatusInvDstAdr, "alert_notification", "esme_addr"); err != nil {
		return dst, err
	}
	return append(dst, p.TLVs.b...), nil
}

// UnmarshalBinary implements PDU.
func (p *AlertNotification) UnmarshalBinary(b []byte) error {
	r := reader{b: b, op: "alert_notification"}
	p.Source = r.address("source_addr", 65, StatusInvSrcAdr)
	p.ESMEAddr = r.address("esme_addr", 65, StatusInvDstAdr)
	r.tlvs(&p.TLVs)
	return r.err
}

func (p *AlertNotification) String() string {
	return fmt.Sprintf("alert_notification{src=%s esme=%s %s}", p.Source, p.ESMEAddr, p.TLVs)
}
