package smpp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

func samplePDUs() []PDU {
	sm := SM{
		ServiceType: []byte("CMT"),
		Source:      Address{TON: 5, NPI: 0, Addr: []byte("Acme")},
		Dest:        Address{TON: 1, NPI: 1, Addr: []byte("15145550100")},
		ESMClass:    0x40, ProtocolID: 0, PriorityFlag: 1,
		ValidityPeriod:     []byte("000001000000000R"),
		RegisteredDelivery: 1, DataCoding: 8,
		ShortMessage: []byte{0x05, 0x00, 0x03, 0x01, 0x02, 0x01, 0x00, 'H', 0x00, 'i'},
	}
	_ = sm.TLVs.SetUint16(TagUserMessageReference, 7)
	var vendor TLVs
	_ = vendor.SetBytes([]byte{0x14, 0x00, 0x00, 0x03, 'a', 'b', 'c', 0x02, 0x04, 0x00, 0x02, 0x00, 0x09})
	dsm := DeliverSM{SM: sm}
	dsm.ESMClass = ESMClassReceipt
	dsm.TLVs = vendor
	var payload DataSM
	payload.Source = Address{1, 1, []byte("33612345678")}
	payload.Dest = Address{1, 1, []byte("15145550100")}
	_ = payload.TLVs.Set(TagMessagePayload, bytes.Repeat([]byte("x"), 300))
	var br BindResp
	br.Mode = BindTransceiver
	br.SystemID = []byte("smsc")
	_ = br.TLVs.SetUint8(TagSCInterfaceVersion, 0x34)
	return []PDU{
		&Bind{Mode: BindTransmitter, SystemID: []byte("acct"), Password: []byte("secret"), SystemType: []byte("VMS"), InterfaceVersion: 0x34, AddrTON: 1, AddrNPI: 1, AddressRange: []byte("^1")},
		&Bind{Mode: BindReceiver, SystemID: []byte("a")},
		&Bind{Mode: BindTransceiver, SystemID: []byte("123456789012345"), Password: []byte("12345678")},
		&br,
		&BindResp{Mode: BindReceiver, SystemID: []byte("x")},
		&Outbind{SystemID: []byte("smsc"), Password: []byte("pw")},
		&Unbind{}, &UnbindResp{}, &EnquireLink{}, &EnquireLinkResp{}, &GenericNack{},
		&SubmitSM{SM: sm},
		&SubmitSMResp{MessageID: []byte("0e999f21-aa")},
		&dsm,
		&DeliverSMResp{},
		&payload,
		&DataSMResp{MessageID: []byte("42")},
		&SubmitMulti{Source: Address{1, 1, []byte("1")}, Dests: []MultiDest{{Flag: DestSME, Addr: Address{1, 1, []byte("2")}}, {Flag: DestDistribution, DLName: []byte("list")}}, ShortMessage: []byte("hi")},
		&SubmitMultiResp{MessageID: []byte("9"), Unsuccess: []UnsuccessSME{{Addr: Address{1, 1, []byte("2")}, Status: StatusInvDstAdr}}},
		&QuerySM{MessageID: []byte("9"), Source: Address{1, 1, []byte("1")}},
		&QuerySMResp{MessageID: []byte("9"), FinalDate: []byte("241231235959000+"), MessageState: 2},
		&CancelSM{MessageID: []byte("9"), Source: Address{1, 1, []byte("1")}, Dest: Address{1, 1, []byte("2")}},
		&CancelSMResp{},
		&ReplaceSM{MessageID: []byte("9"), Source: Address{1, 1, []byte("1")}, ShortMessage: []byte("new")},
		&ReplaceSMResp{},
		&AlertNotification{Source: Address{1, 1, []byte("1")}, ESMEAddr: Address{1, 1, []byte("2")}},
		// Responses with TLVs, as SMPP v5.0-style SMSCs send them.
		&SubmitSMResp{MessageID: []byte("v5"), TLVs: vendor},
		&DeliverSMResp{TLVs: vendor},
		&QuerySMResp{MessageID: []byte("9"), MessageState: 2, TLVs: vendor},
		&EnquireLinkResp{TLVs: vendor},
	}
}

func TestRoundTripAllPDUs(t *testing.T) {
	for _, p := range samplePDUs() {
		t.Run(p.CommandID().String(), func(t *testing.T) {
			b, err := AppendPDU(nil, StatusOK, 0x7FFFFFFF, p)
			requireNoErr(t, err)
			h, q, err := Decode(b)
			requireNoErr(t, err)
			testutil.RequireEqual(t, h.ID, p.CommandID())
			testutil.RequireEqual(t, h.Sequence, uint32(0x7FFFFFFF))
			testutil.RequireEqual(t, int(h.Length), len(b))
			b2, err := AppendPDU(nil, StatusOK, 0x7FFFFFFF, q)
			requireNoErr(t, err)
			if !bytes.Equal(b, b2) {
				t.Fatalf("re-encode differs:\n%x\n%x", b, b2)
			}
			if s := q.String(); !strings.HasPrefix(s, p.CommandID().String()) {
				t.Fatalf("String() = %q", s)
			}
		})
	}
}

func TestPasswordNotPrinted(t *testing.T) {
	s := (&Bind{Mode: BindTransceiver, SystemID: []byte("acct"), Password: []byte("hunter2")}).String()
	if strings.Contains(s, "hunter2") {
		t.Fatalf("password printed: %s", s)
	}
}

func TestUnknownTLVPreservedByteExact(t *testing.T) {
	var sm SubmitSM
	sm.Dest.Addr = []byte("1")
	raw := []byte{0x14, 0x01, 0x00, 0x02, 0xBE, 0xEF, 0x3F, 0xFF, 0x00, 0x00}
	requireNoErr(t, sm.TLVs.SetBytes(raw))
	b, err := AppendPDU(nil, 0, 1, &sm)
	requireNoErr(t, err)
	if !bytes.HasSuffix(b, raw) {
		t.Fatalf("TLVs not preserved: %x", b)
	}
	_, q, err := Decode(b)
	requireNoErr(t, err)
	testutil.RequireEqual(t, q.(*SubmitSM).TLVs.Bytes(), raw)
	v, ok := q.(*SubmitSM).TLVs.Get(0x1401)
	testutil.RequireEqual(t, ok, true)
	testutil.RequireEqual(t, v, []byte{0xBE, 0xEF})
}

func TestTypedTLVs(t *testing.T) {
	var x TLVs
	requireNoErr(t, x.SetSAR(0x1234, 3, 2))
	requireNoErr(t, x.SetCString(TagReceiptedMessageID, "abc"))
	requireNoErr(t, x.SetUint8(TagMessageState, 2))
	requireNoErr(t, x.Set(TagNetworkErrorCode, []byte{3, 0, 5}))
	ref, tot, seq, ok := x.SAR()
	testutil.RequireEqual(t, [4]any{ref, tot, seq, ok}, [4]any{uint16(0x1234), uint8(3), uint8(2), true})
	id, _ := x.ReceiptedMessageID()
	testutil.RequireEqual(t, string(id), "abc")
	st, _ := x.MessageState()
	testutil.RequireEqual(t, st, uint8(2))
	typ, code, ok := x.NetworkErrorCode()
	testutil.RequireEqual(t, [3]any{typ, code, ok}, [3]any{uint8(3), uint16(5), true})
	// Replacing keeps one copy.
	requireNoErr(t, x.SetUint8(TagMessageState, 5))
	n := 0
	x.Each(func(tag Tag, _ []byte) bool {
		if tag == TagMessageState {
			n++
		}
		return true
	})
	testutil.RequireEqual(t, n, 1)
	if err := x.Set(TagSarTotalSegments, []byte{1, 2}); StatusOf(err) != StatusInvTLVLen {
		t.Fatalf("wrong-size fixed TLV: %v", err)
	}
	if s := x.String(); !strings.Contains(s, "receipted_message_id=\"abc\"") {
		t.Fatalf("String: %s", s)
	}
}

// Field maximum lengths are checked on encode and decode with the right status.
func TestFieldLimits(t *testing.T) {
	long := func(n int) []byte { return bytes.Repeat([]byte("9"), n) }
	cases := []struct {
		name string
		p    PDU
		want CommandStatus
	}{
		{"system_id", &Bind{Mode: BindTransmitter, SystemID: long(16)}, StatusInvSysID},
		{"password", &Bind{Mode: BindTransmitter, Password: long(9)}, StatusInvPaswd},
		{"system_type", &Bind{Mode: BindTransmitter, SystemType: long(13)}, StatusInvSysTyp},
		{"source_addr", &SubmitSM{SM{Source: Address{Addr: long(21)}}}, StatusInvSrcAdr},
		{"destination_addr", &SubmitSM{SM{Dest: Address{Addr: long(21)}}}, StatusInvDstAdr},
		{"service_type", &SubmitSM{SM{ServiceType: long(6)}}, StatusInvSerTyp},
		{"schedule", &SubmitSM{SM{ScheduleDeliveryTime: long(5)}}, StatusInvSched},
		{"validity", &SubmitSM{SM{ValidityPeriod: long(17)}}, StatusInvExpiry},
		{"short_message", &SubmitSM{SM{ShortMessage: long(255)}}, StatusInvMsgLen},
		{"message_id", &SubmitSMResp{MessageID: long(65)}, StatusInvMsgID},
		{"data_sm source", &DataSM{Source: Address{Addr: long(65)}}, StatusInvSrcAdr},
		{"nul in field", &SubmitSM{SM{Dest: Address{Addr: []byte("1\x002")}}}, StatusInvDstAdr},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := AppendPDU(nil, 0, 1, tc.p)
			var se *StatusError
			if !errors.As(err, &se) || se.Status != tc.want {
				t.Fatalf("encode: got %v, want %s", err, tc.want)
			}
		})
	}
	// At the limit is fine.
	_, err := AppendPDU(nil, 0, 1, &SubmitSM{SM{Source: Address{Addr: long(20)}, ShortMessage: long(254)}})
	requireNoErr(t, err)
}

// Golden vectors: hex PDUs, some from node-smpp captures (testdata/*.hex)
// and the ugly cases written by hand.
func TestDecodeVectors(t *testing.T) {
	cases := []struct {
		name   string
		hex    string
		status CommandStatus // expected decode error status, 0 for success
		check  func(t *testing.T, p PDU)
	}{
		{name: "enquire_link max seq", hex: "000000100000001500000000" + "7fffffff"},
		{name: "submit_sm_resp empty message_id", hex: "00000011800000040000000000000001" + "00",
			check: func(t *testing.T, p PDU) { testutil.RequireEqual(t, len(p.(*SubmitSMResp).MessageID), 0) }},
		{name: "submit_sm_resp error no body", hex: "00000010800000040000005800000002",
			check: func(t *testing.T, p PDU) { testutil.RequireEqual(t, len(p.(*SubmitSMResp).MessageID), 0) }},
		{name: "missing NUL in message_id", hex: "00000012800000040000000000000001" + "4142", status: StatusInvCmdLen},
		{name: "sm_length beyond body", hex: submitHex("ff", "41"), status: StatusInvMsgLen},
		{name: "truncated TLV", hex: submitHex("00", "") + "0204", status: StatusInvTLVStream},
		{name: "TLV length beyond body", hex: submitHex("00", "") + "02040009ffff", status: StatusInvTLVLen},
		{name: "trailing bytes in enquire_link", hex: "000000110000001500000000000000" + "0101", status: StatusInvCmdLen},
		{name: "unknown command id", hex: "00000010000000990000000000000001", status: StatusInvCmdID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hex.DecodeString(tc.hex)
			requireNoErr(t, err)
			// Fix up command_length for hand-written vectors.
			b[0], b[1], b[2], b[3] = byte(len(b)>>24), byte(len(b)>>16), byte(len(b)>>8), byte(len(b))
			_, p, err := Decode(b)
			if tc.status != 0 {
				if StatusOf(err) != tc.status {
					t.Fatalf("got %v (%s), want %s", err, StatusOf(err), tc.status)
				}
				return
			}
			requireNoErr(t, err)
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

// submitHex builds a submit_sm with empty fields, the given sm_length and
// short_message (hex).
func submitHex(smLen, sm string) string {
	return "00000000000000040000000000000001" + "00" + "0101" + "00" + "0101" + "3100" + "000000" + "00" + "00" + "00" + "00" + "00" + "00" + smLen + sm
}

func TestTwoPDUsInOneBuffer(t *testing.T) {
	b, _ := AppendPDU(nil, 0, 1, &EnquireLink{})
	b, _ = AppendPDU(b, 0, 2, &SubmitSM{SM{Dest: Address{Addr: []byte("1")}, ShortMessage: []byte("x")}})
	h, err := ParseHeader(b)
	requireNoErr(t, err)
	_, _, err = Decode(b[:h.Length])
	requireNoErr(t, err)
	h2, p, err := Decode(b[h.Length:])
	requireNoErr(t, err)
	testutil.RequireEqual(t, h2.Sequence, uint32(2))
	testutil.RequireEqual(t, string(p.(*SubmitSM).ShortMessage), "x")
}

func TestStatusString(t *testing.T) {
	testutil.RequireEqual(t, StatusThrottled.String(), "ESME_RTHROTTLED")
	testutil.RequireEqual(t, StatusXTAppn.String(), "ESME_RX_T_APPN")
	testutil.RequireEqual(t, StatusOptedOut.String(), "OPTGATE_ROPTEDOUT")
	testutil.RequireEqual(t, CommandStatus(0x456).String(), "vendor(0x00000456)")
	testutil.RequireEqual(t, SubmitSMRespID.String(), "submit_sm_resp")
	err := error(&StatusError{Status: StatusInvDstAdr, Op: "submit_sm"})
	testutil.RequireEqual(t, StatusOf(err), StatusInvDstAdr)
	testutil.RequireEqual(t, StatusOf(errors.New("x")), StatusSysErr)
	testutil.RequireEqual(t, StatusThrottled.Temporary(), true)
	testutil.RequireEqual(t, StatusXRAppn.Temporary(), false)
}
