package smpp

// TestWiresharkDissectsEveryPDU checks our encoder against an independent
// decoder, Wireshark's SMPP dissector: one of every PDU our codec has
// (requests and responses, TLVs, UCS-2 text, fields at their maximum
// length) is encoded with AppendPDU, written as a hex dump, wrapped in TCP
// by text2pcap and dissected by tshark. Every frame must dissect without a
// malformed-packet or error-level expert item, and the fields Wireshark
// reads must be the ones we encoded.
//
// It skips when tshark or text2pcap is missing, and fails instead when
// OPTGATE_INTEROP=required.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// wsCase is one PDU and what Wireshark must read in it: field name to the
// values tshark prints, in order (repeated fields have several).
type wsCase struct {
	name   string
	status CommandStatus
	pdu    PDU
	want   map[string][]string
}

func tlvs(t testing.TB, set func(*TLVs) error) TLVs {
	t.Helper()
	var v TLVs
	requireNoErr(t, set(&v))
	return v
}

// wsCases is one of every PDU the codec has. Addresses and ids use the
// spec's maximum lengths (20 octets for SM addresses, 64 for message ids,
// 15/8/12/40 for the bind fields).
func wsCases(t testing.TB) []wsCase {
	maxSys, maxPw, maxType := "optgate-systemX", "secret12", "systemtype12"
	maxRange := strings.Repeat("9", 40)
	src20, dst20 := strings.Repeat("1", 20), strings.Repeat("2", 20)
	msgID64 := strings.Repeat("F", 64)
	absTime, relTime := "241122103000004+", "000001000000000R"
	receipt := "id:" + msgID64 + " sub:001 dlvrd:001 submit date:2411221030 done date:2411221031 stat:DELIVRD err:000 text:Hi"
	ucs2 := ucs2Encode(ucs2Text)
	bmpText := "ARRÊT ДА ✓"
	ucs2BMP := ucs2Encode(bmpText)
	gsm254 := bytes.Repeat([]byte("A"), MaxShortMessage)
	udh := append([]byte{0x05, 0x00, 0x03, 0xA7, 0x02, 0x01}, ucs2...)

	var cs []wsCase
	for _, m := range []BindMode{BindTransmitter, BindReceiver, BindTransceiver} {
		cs = append(cs,
			wsCase{name: "bind_" + m.String(), pdu: &Bind{Mode: m, SystemID: []byte(maxSys), Password: []byte(maxPw), SystemType: []byte(maxType),
				InterfaceVersion: InterfaceVersion, AddrTON: 1, AddrNPI: 1, AddressRange: []byte(maxRange)},
				want: map[string][]string{"smpp.system_id": {maxSys}, "smpp.password": {maxPw}, "smpp.system_type": {maxType},
					"smpp.interface_version": {"0x34"}, "smpp.addr_ton": {"1"}, "smpp.addr_npi": {"1"}, "smpp.address_range": {maxRange}}},
			wsCase{name: "bind_" + m.String() + "_resp", pdu: &BindResp{Mode: m, SystemID: []byte(maxSys),
				TLVs: tlvs(t, func(v *TLVs) error { return v.SetUint8(TagSCInterfaceVersion, InterfaceVersion) })},
				want: map[string][]string{"smpp.system_id": {maxSys}, "smpp.opt_param_tag": {"0x0210"}, "smpp.SC_interface_version": {"0x34"}}},
		)
	}
	cs = append(cs,
		wsCase{name: "bind_transceiver_resp refused, no body", status: StatusInvPaswd, pdu: &BindResp{Mode: BindTransceiver}},
		wsCase{name: "outbind", pdu: &Outbind{SystemID: []byte(maxSys), Password: []byte(maxPw)},
			want: map[string][]string{"smpp.system_id": {maxSys}, "smpp.password": {maxPw}}},
		wsCase{name: "unbind", pdu: &Unbind{}},
		wsCase{name: "unbind_resp", pdu: &UnbindResp{}},
		wsCase{name: "generic_nack", status: StatusInvCmdID, pdu: &GenericNack{}},
		wsCase{name: "enquire_link", pdu: &EnquireLink{}},
		wsCase{name: "enquire_link_resp", pdu: &EnquireLinkResp{}},

		// The ports are not WAP's (2948/9200): with those Wireshark would read
		// the text as WSP.
		wsCase{name: "submit_sm GSM-7 254 octets", pdu: &SubmitSM{SM{ServiceType: []byte("CMT12"), Source: Address{TON: 1, NPI: 1, Addr: []byte(src20)},
			Dest: Address{TON: 1, NPI: 1, Addr: []byte(dst20)}, ProtocolID: 0, PriorityFlag: 1, ScheduleDeliveryTime: []byte(absTime),
			ValidityPeriod: []byte(relTime), RegisteredDelivery: 1, ShortMessage: gsm254,
			TLVs: tlvs(t, func(v *TLVs) error {
				for _, f := range []func() error{
					func() error { return v.SetUint16(TagUserMessageReference, 0x1234) },
					func() error { return v.SetUint16(TagSourcePort, 50001) },
					func() error { return v.SetUint16(TagDestinationPort, 50002) },
					func() error { return v.SetUint8(TagLanguageIndicator, 2) },
					func() error { return v.SetUint8(TagMoreMessagesToSend, 1) },
					func() error { return v.SetUint8(TagPayloadType, 1) },
				} {
					if err := f(); err != nil {
						return err
					}
				}
				return nil
			})}},
			want: map[string][]string{"smpp.service_type": {"CMT12"}, "smpp.source_addr": {src20}, "smpp.destination_addr": {dst20},
				"smpp.source_addr_ton": {"1"}, "smpp.dest_addr_npi": {"1"}, "smpp.priority_flag": {"1"}, "smpp.regdel.receipt": {"1"},
				"smpp.data_coding": {"0x00"}, "smpp.sm_length": {"254"}, "smpp.message": {hex.EncodeToString(gsm254)},
				"smpp.opt_param_tag":          {"0x0204", "0x020a", "0x020b", "0x020d", "0x0426", "0x0019"},
				"smpp.user_message_reference": {"0x1234"}, "smpp.source_port": {"50001"}, "smpp.destination_port": {"50002"},
				"smpp.language_indicator": {"2"}, "smpp.more_messages_to_send": {"1"}, "smpp.payload_type": {"1"}}},
		wsCase{name: "submit_sm UCS-2 with UDH", pdu: &SubmitSM{SM{Dest: Address{TON: 1, NPI: 1, Addr: []byte("33612345678")},
			ESMClass: ESMClassUDHI, DataCoding: 8, ShortMessage: udh}},
			want: map[string][]string{"smpp.destination_addr": {"33612345678"}, "smpp.esm.submit.features": {"0x01"},
				"smpp.data_coding": {"0x08"}, "smpp.sm_length": {strconv.Itoa(len(udh))},
				// Wireshark hands the user data to its GSM SMS dissector, which reads our UDH.
				"gsm_sms.udh.mm.msg_id": {"167"}, "gsm_sms.udh.mm.msg_parts": {"2"}, "gsm_sms.udh.mm.msg_part": {"1"},
				"gsm_sms_ud.short_msg": {hex.EncodeToString(ucs2)}}},
		// Wireshark decodes data_coding 8 as UCS-2 proper: a surrogate pair
		// prints as replacement characters, so this text stays in the BMP.
		wsCase{name: "submit_sm UCS-2", pdu: &SubmitSM{SM{Dest: Address{TON: 1, NPI: 1, Addr: []byte("33612345678")}, DataCoding: 8, ShortMessage: ucs2BMP}},
			want: map[string][]string{"smpp.data_coding": {"0x08"}, "smpp.sm_length": {strconv.Itoa(len(ucs2BMP))}, "smpp.message_text": {bmpText}}},
		wsCase{name: "submit_sm message_payload and sar_*", pdu: &SubmitSM{SM{Dest: Address{TON: 1, NPI: 1, Addr: []byte("33612345678")},
			TLVs: tlvs(t, func(v *TLVs) error {
				if err := v.Set(TagMessagePayload, []byte(longText())); err != nil {
					return err
				}
				return v.SetSAR(0xBEEF, 3, 2)
			})}},
			want: map[string][]string{"smpp.sm_length": {"0"}, "smpp.opt_param_tag": {"0x0424", "0x020c", "0x020e", "0x020f"},
				"smpp.message_payload": {hex.EncodeToString([]byte(longText()))}, "smpp.sar_msg_ref_num": {"0xbeef"},
				"smpp.sar_total_segments": {"3"}, "smpp.sar_segment_seqnum": {"2"}}},
		wsCase{name: "submit_sm_resp", pdu: &SubmitSMResp{MessageID: []byte(msgID64)},
			want: map[string][]string{"smpp.message_id": {msgID64}}},
		wsCase{name: "submit_sm_resp refused", status: 0x401, pdu: &SubmitSMResp{}},

		wsCase{name: "deliver_sm receipt", pdu: &DeliverSM{SM{Source: Address{TON: 1, NPI: 1, Addr: []byte("33612345678")},
			Dest: Address{TON: 5, Addr: []byte("optgate")}, ESMClass: ESMClassReceipt, ShortMessage: []byte(receipt),
			TLVs: tlvs(t, func(v *TLVs) error {
				if err := v.SetCString(TagReceiptedMessageID, msgID64); err != nil {
					return err
				}
				if err := v.SetUint8(TagMessageState, 2); err != nil {
					return err
				}
				return v.Set(TagNetworkErrorCode, []byte{3, 0x01, 0x02})
			})}},
			want: map[string][]string{"smpp.source_addr": {"33612345678"}, "smpp.destination_addr": {"optgate"}, "smpp.dest_addr_ton": {"5"},
				"smpp.esm.submit.msg_type": {"0x01"}, "smpp.sm_length": {strconv.Itoa(len(receipt))}, "smpp.message": {hex.EncodeToString([]byte(receipt))},
				"smpp.opt_param_tag": {"0x001e", "0x0427", "0x0423"}, "smpp.receipted_message_id": {msgID64}, "smpp.message_state": {"2"},
				"smpp.network_error.type": {"3"}, "smpp.network_error.code": {"0x0102"}}},
		wsCase{name: "deliver_sm MO UCS-2 USSD", pdu: &DeliverSM{SM{Source: Address{TON: 1, NPI: 1, Addr: []byte("33612345678")},
			Dest: Address{Addr: []byte("12345")}, DataCoding: 8, ShortMessage: ucs2,
			TLVs: tlvs(t, func(v *TLVs) error { return v.SetUint8(TagUssdServiceOp, 17) })}},
			want: map[string][]string{"smpp.data_coding": {"0x08"}, "smpp.sm_length": {strconv.Itoa(len(ucs2))}, "smpp.opt_param_tag": {"0x0501"},
				"smpp.ussd_service_op": {"17"}}},
		wsCase{name: "deliver_sm_resp", pdu: &DeliverSMResp{}},

		wsCase{name: "data_sm", pdu: &DataSM{ServiceType: []byte("WAP"), Source: Address{TON: 1, NPI: 1, Addr: []byte(strings.Repeat("3", 64))},
			Dest: Address{TON: 1, NPI: 1, Addr: []byte(strings.Repeat("4", 64))}, RegisteredDelivery: 1, DataCoding: 4,
			TLVs: tlvs(t, func(v *TLVs) error {
				if err := v.Set(TagMessagePayload, []byte{0xDE, 0xAD}); err != nil {
					return err
				}
				return v.SetUint16(TagDestinationPort, 2948)
			})},
			want: map[string][]string{"smpp.service_type": {"WAP"}, "smpp.source_addr": {strings.Repeat("3", 64)},
				"smpp.destination_addr": {strings.Repeat("4", 64)}, "smpp.data_coding": {"0x04"},
				"smpp.opt_param_tag": {"0x0424", "0x020b"}, "smpp.message_payload": {"dead"}, "smpp.destination_port": {"2948"}}},
		wsCase{name: "data_sm_resp", pdu: &DataSMResp{MessageID: []byte(msgID64),
			TLVs: tlvs(t, func(v *TLVs) error {
				if err := v.SetUint8(TagDeliveryFailureReason, 1); err != nil {
					return err
				}
				return v.SetCString(TagAdditionalStatusInfo, "no route")
			})},
			want: map[string][]string{"smpp.message_id": {msgID64}, "smpp.opt_param_tag": {"0x0425", "0x001d"},
				"smpp.delivery_failure_reason": {"1"}, "smpp.additional_status_info_text": {"no route"}}},
		// A failed data_sm_resp keeps the TLVs that say why (§4.7.2);
		// Wireshark stops at the header of any error response, so only the
		// header and the absence of errors are checked for it.
		wsCase{name: "data_sm_resp failed, with its reason", status: StatusDeliveryFailure, pdu: &DataSMResp{
			TLVs: tlvs(t, func(v *TLVs) error { return v.SetUint8(TagDeliveryFailureReason, 1) })}},

		wsCase{name: "submit_multi", pdu: &SubmitMulti{Source: Address{TON: 5, Addr: []byte("optgate")},
			Dests: []MultiDest{{Flag: DestSME, Addr: Address{TON: 1, NPI: 1, Addr: []byte(dst20)}},
				{Flag: DestSME, Addr: Address{TON: 1, NPI: 1, Addr: []byte("33612345679")}},
				{Flag: DestDistribution, DLName: []byte(strings.Repeat("d", 20))}},
			RegisteredDelivery: 1, ShortMessage: []byte("hello all")},
			want: map[string][]string{"smpp.source_addr": {"optgate"}, "smpp.destination_addr": {dst20, "33612345679"},
				"smpp.dl_name": {strings.Repeat("d", 20)}, "smpp.sm_length": {"9"}, "smpp.message": {hex.EncodeToString([]byte("hello all"))}}},
		wsCase{name: "submit_multi_resp", pdu: &SubmitMultiResp{MessageID: []byte("m-1"),
			Unsuccess: []UnsuccessSME{{Addr: Address{TON: 1, NPI: 1, Addr: []byte("33612345679")}, Status: StatusInvDstAdr}}},
			want: map[string][]string{"smpp.message_id": {"m-1"}, "smpp.destination_addr": {"33612345679"}, "smpp.error_status_code": {"0x0000000b"}}},

		wsCase{name: "query_sm", pdu: &QuerySM{MessageID: []byte(msgID64), Source: Address{TON: 1, NPI: 1, Addr: []byte(src20)}},
			want: map[string][]string{"smpp.message_id": {msgID64}, "smpp.source_addr": {src20}}},
		wsCase{name: "query_sm_resp", pdu: &QuerySMResp{MessageID: []byte(msgID64), FinalDate: []byte(absTime), MessageState: 2, ErrorCode: 7},
			want: map[string][]string{"smpp.message_id": {msgID64}, "smpp.message_state": {"2"}, "smpp.error_code": {"7"}}},
		wsCase{name: "cancel_sm", pdu: &CancelSM{ServiceType: []byte("CMT"), MessageID: []byte(msgID64),
			Source: Address{TON: 1, NPI: 1, Addr: []byte(src20)}, Dest: Address{TON: 1, NPI: 1, Addr: []byte(dst20)}},
			want: map[string][]string{"smpp.service_type": {"CMT"}, "smpp.message_id": {msgID64}, "smpp.source_addr": {src20}, "smpp.destination_addr": {dst20}}},
		wsCase{name: "cancel_sm_resp", pdu: &CancelSMResp{}},
		wsCase{name: "replace_sm", pdu: &ReplaceSM{MessageID: []byte(msgID64), Source: Address{TON: 1, NPI: 1, Addr: []byte(src20)},
			ScheduleDeliveryTime: []byte(absTime), ValidityPeriod: []byte(relTime), RegisteredDelivery: 1, ShortMessage: []byte("new text")},
			want: map[string][]string{"smpp.message_id": {msgID64}, "smpp.source_addr": {src20}, "smpp.sm_length": {"8"}, "smpp.regdel.receipt": {"1"}}},
		wsCase{name: "replace_sm_resp", pdu: &ReplaceSMResp{}},
		wsCase{name: "alert_notification", pdu: &AlertNotification{Source: Address{TON: 1, NPI: 1, Addr: []byte(strings.Repeat("5", 64))},
			ESMEAddr: Address{TON: 5, Addr: []byte("optgate")},
			TLVs:     tlvs(t, func(v *TLVs) error { return v.SetUint8(0x0422, 0) })}, // ms_availability_status, kept as an unknown tag
			want: map[string][]string{"smpp.source_addr": {strings.Repeat("5", 64)}, "smpp.esme_addr": {"optgate"}, "smpp.esme_addr_ton": {"5"},
				"smpp.opt_param_tag": {"0x0422"}, "smpp.ms_availability_status": {"0"}}},
	)
	return cs
}

// tsharkTools returns the paths of tshark and text2pcap, or skips.
func tsharkTools(t testing.TB) (tshark, text2pcap string) {
	t.Helper()
	var err1, err2 error
	tshark, err1 = exec.LookPath("tshark")
	text2pcap, err2 = exec.LookPath("text2pcap")
	if err1 != nil || err2 != nil {
		missingPeer(t, "tshark/text2pcap not installed: skipping the Wireshark dissector check; install them with `%s` (scripts/test.sh does)", peerInstall)
	}
	return tshark, text2pcap
}

// wsFlatten collects every string value under v by key, in document order.
func wsFlatten(v any, out map[string][]string) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		// Object keys come unordered out of encoding/json; repeated fields are
		// arrays (--no-duplicate-keys), whose order is kept.
		slices.Sort(keys)
		for _, k := range keys {
			switch c := v[k].(type) {
			case string:
				out[k] = append(out[k], c)
			case []any:
				for _, e := range c {
					if s, ok := e.(string); ok {
						out[k] = append(out[k], s)
					} else {
						wsFlatten(e, out)
					}
				}
			default:
				out[k] = append(out[k], "") // a subtree: the key is present
				wsFlatten(c, out)
			}
		}
	case []any:
		for _, e := range v {
			wsFlatten(e, out)
		}
	}
}

// wsSame compares a value tshark printed with the one we expect: numbers
// by value (tshark prints some in hex, some in decimal), FT_BYTES without
// their colons, strings exactly.
func wsSame(got, want string) bool {
	if got == want {
		return true
	}
	g, err1 := strconv.ParseUint(got, 0, 64)
	w, err2 := strconv.ParseUint(want, 0, 64)
	if err1 == nil && err2 == nil {
		return g == w
	}
	return strings.ReplaceAll(got, ":", "") == want
}

func TestWiresharkDissectsEveryPDU(t *testing.T) {
	tshark, text2pcap := tsharkTools(t)
	cases := wsCases(t)
	var dump strings.Builder
	var frames [][]byte
	for i, c := range cases {
		b, err := AppendPDU(nil, c.status, uint32(i+1), c.pdu)
		if err != nil {
			t.Fatalf("%s: encode: %v", c.name, err)
		}
		frames = append(frames, b)
		dir := "O" // requests ESME to SMSC, responses back
		if c.pdu.CommandID().IsResponse() {
			dir = "I"
		}
		dump.WriteString(dir + "\n")
		for off := 0; off < len(b); off += 16 {
			fmt.Fprintf(&dump, "%06x ", off)
			for _, x := range b[off:min(off+16, len(b))] {
				fmt.Fprintf(&dump, " %02x", x)
			}
			dump.WriteByte('\n')
		}
	}
	// A control frame the check must catch: a submit_sm whose sm_length
	// (200) runs past the end of the PDU.
	control, err := AppendPDU(nil, StatusOK, 0x7fffffff, &SubmitSM{SM{Dest: Address{Addr: []byte("1")}, ShortMessage: []byte("short")}})
	requireNoErr(t, err)
	control[len(control)-len("short")-1] = 200
	frames = append(frames, control)
	dump.WriteString("O\n")
	for off := 0; off < len(control); off += 16 {
		fmt.Fprintf(&dump, "%06x ", off)
		for _, x := range control[off:min(off+16, len(control))] {
			fmt.Fprintf(&dump, " %02x", x)
		}
		dump.WriteByte('\n')
	}

	dir := t.TempDir()
	txt, pcap := filepath.Join(dir, "pdus.txt"), filepath.Join(dir, "pdus.pcap")
	requireNoErr(t, os.WriteFile(txt, []byte(dump.String()), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, text2pcap, "-q", "-D", "-T", "40000,2775", txt, pcap).CombinedOutput(); err != nil {
		t.Fatalf("text2pcap: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, tshark, "-r", pcap, "-d", "tcp.port==2775,smpp", "-o", "tcp.desegment_tcp_streams:FALSE",
		"-T", "json", "--no-duplicate-keys")
	cmd.Env = append(os.Environ(), "HOME="+dir) // no user preferences
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	var pkts []struct {
		Source struct {
			Layers map[string]any `json:"layers"`
		} `json:"_source"`
	}
	if err := json.Unmarshal(out, &pkts); err != nil {
		t.Fatalf("tshark json: %v", err)
	}
	testutil.RequireEqual(t, len(pkts), len(cases)+1)
	bad := map[string][]string{}
	wsFlatten(pkts[len(cases)].Source.Layers, bad)
	// With TCP reassembly off, a field past the end of the PDU shows as
	// an unreassembled fragment rather than as malformed.
	_, unre := bad["_ws.unreassembled"]
	if _, ok := bad["_ws.malformed"]; !ok && !unre && !slices.ContainsFunc(bad["_ws.expert.severity"], func(s string) bool {
		n, _ := strconv.ParseUint(s, 0, 32)
		return n >= 0x00800000
	}) {
		t.Errorf("the control frame %x (sm_length past the end) was not flagged: the check cannot see errors; tshark read %v", control, bad)
	}
	for i, c := range cases {
		got := map[string][]string{}
		wsFlatten(pkts[i].Source.Layers, got)
		h, _ := ParseHeader(frames[i])
		ctxt := fmt.Sprintf("frame %d %s (%x)", i+1, c.name, frames[i])
		if _, ok := got["_ws.malformed"]; ok {
			t.Errorf("%s: Wireshark reports a malformed packet: %v", ctxt, got["_ws.expert.message"])
		}
		if _, ok := got["_ws.unreassembled"]; ok {
			t.Errorf("%s: Wireshark ran past the end of the PDU: %v", ctxt, got["_ws.expert.message"])
		}
		for j, sev := range got["_ws.expert.severity"] {
			if n, _ := strconv.ParseUint(sev, 0, 32); n >= 0x00800000 { // PI_ERROR
				msg := ""
				if j < len(got["_ws.expert.message"]) {
					msg = got["_ws.expert.message"][j]
				}
				t.Errorf("%s: Wireshark expert error: %s", ctxt, msg)
			} else if n >= 0x00600000 { // PI_WARN: report, the spec allows what Wireshark warns about
				t.Logf("%s: Wireshark expert warning: %v", ctxt, got["_ws.expert.message"])
			}
		}
		want := map[string][]string{
			"smpp.command_length":  {strconv.Itoa(len(frames[i]))},
			"smpp.command_id":      {fmt.Sprintf("0x%08x", uint32(h.ID))},
			"smpp.sequence_number": {strconv.Itoa(int(h.Sequence))},
		}
		if h.ID.IsResponse() { // Wireshark shows command_status on responses only
			want["smpp.command_status"] = []string{fmt.Sprintf("0x%08x", uint32(h.Status))}
		}
		for k, v := range c.want {
			want[k] = v
		}
		for k, v := range want {
			g := got[k]
			if !slices.EqualFunc(g, v, wsSame) {
				t.Errorf("%s: Wireshark read %s = %q, we encoded %q", ctxt, k, g, v)
			}
		}
		// Every TLV we encoded is a TLV Wireshark found.
		if _, ok := c.want["smpp.opt_param_tag"]; !ok && len(got["smpp.opt_param_tag"]) > 0 {
			t.Errorf("%s: Wireshark found TLVs %q we did not encode", ctxt, got["smpp.opt_param_tag"])
		}
	}
	if t.Failed() {
		t.Logf("tshark stderr: %s", stderr.String())
	}
}
