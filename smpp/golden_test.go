package smpp

// Golden vectors: PDUs that node-smpp (an independent implementation)
// produced, in testdata/golden/*.hex, written by testdata/node/golden.js,
// plus a few ugly cases written by hand (their header says so). Each is
// decoded, its key fields checked, and re-encoded byte for byte.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// readGolden reads testdata/golden/<name>.hex: hex digits, whitespace
// ignored, lines starting with '#' are comments.
func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", name+".hex"))
	requireNoErr(t, err)
	var sb strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	raw, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s.hex: %v", name, err)
	}
	return raw
}

func goldenNames(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.hex"))
	requireNoErr(t, err)
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".hex"))
	}
	sort.Strings(names)
	return names
}

func asSM(t testing.TB, p PDU) *SM {
	t.Helper()
	switch p := p.(type) {
	case *SubmitSM:
		return &p.SM
	case *DeliverSM:
		return &p.SM
	}
	t.Fatalf("%T is not submit_sm or deliver_sm", p)
	return nil
}

// goldenCases checks one node-smpp capture each. node-smpp sends a response
// with a non-zero command_status as a bare header, as SMPP 3.4 says (the
// body "is not returned", §4.1.2, §4.4.2), and so do we: every capture,
// those included, re-encodes byte for byte.
var goldenCases = []struct {
	name   string
	id     CommandID
	status CommandStatus
	seq    uint32
	check  func(t *testing.T, p PDU)
}{
	{name: "bind_transceiver", id: BindTransceiverID, seq: 1, check: func(t *testing.T, p PDU) {
		b := p.(*Bind)
		testutil.RequireEqual(t, [3]string{string(b.SystemID), string(b.Password), string(b.SystemType)}, [3]string{"optgate", "secret", ""})
		testutil.RequireEqual(t, b.InterfaceVersion, uint8(0x50)) // node-smpp's default: SMPP 5.0
		testutil.RequireEqual(t, [3]any{b.AddrTON, b.AddrNPI, len(b.AddressRange)}, [3]any{uint8(0), uint8(0), 0})
	}},
	{name: "bind_transceiver_resp", id: BindTransceiverRespID, seq: 1, check: func(t *testing.T, p PDU) {
		r := p.(*BindResp)
		testutil.RequireEqual(t, string(r.SystemID), "node-smsc")
		testutil.RequireEqual(t, r.TLVs.Len(), 0) // node-smpp sends no sc_interface_version
	}},
	{name: "bind_transceiver_resp_invpaswd", id: BindTransceiverRespID, status: StatusInvPaswd, seq: 1,
		check: func(t *testing.T, p PDU) { testutil.RequireEqual(t, len(p.(*BindResp).SystemID), 0) }},
	{name: "submit_sm_gsm7", id: SubmitSMID, seq: 2, check: func(t *testing.T, p PDU) {
		sm := asSM(t, p)
		testutil.RequireEqual(t, sm.Source, Address{TON: 5, NPI: 0, Addr: []byte("optgate")})
		testutil.RequireEqual(t, sm.Dest, Address{TON: 1, NPI: 1, Addr: []byte("33612345678")})
		testutil.RequireEqual(t, [3]uint8{sm.ESMClass, sm.RegisteredDelivery, sm.DataCoding}, [3]uint8{0, 1, 0})
		testutil.RequireEqual(t, sm.ShortMessage, gsmEncode(t, gsmText)) // unpacked GSM 03.38: '@' is 0x00, '£' 0x01
	}},
	{name: "submit_sm_ucs2", id: SubmitSMID, seq: 3, check: func(t *testing.T, p PDU) {
		sm := asSM(t, p)
		testutil.RequireEqual(t, sm.DataCoding, uint8(8))
		testutil.RequireEqual(t, ucs2Decode(t, sm.ShortMessage), ucs2Text)
		testutil.RequireEqual(t, sm.ShortMessage[len(sm.ShortMessage)-4:], []byte{0xD8, 0x3D, 0xDE, 0x00}) // surrogate pair
	}},
	{name: "submit_sm_udh", id: SubmitSMID, seq: 4, check: func(t *testing.T, p PDU) {
		sm := asSM(t, p)
		testutil.RequireEqual(t, sm.ESMClass, uint8(ESMClassUDHI)) // node-smpp sets UDHI when given a udh
		testutil.RequireEqual(t, sm.DataCoding, uint8(0))
		testutil.RequireEqual(t, sm.ShortMessage[:6], []byte{0x05, 0x00, 0x03, 0xA7, 0x03, 0x01})
		testutil.RequireEqual(t, string(sm.ShortMessage[6:]), "Part one of three")
	}},
	{name: "submit_sm_resp", id: SubmitSMRespID, seq: 2, check: func(t *testing.T, p PDU) {
		testutil.RequireEqual(t, string(p.(*SubmitSMResp).MessageID), "node-1")
	}},
	{name: "submit_sm_resp_empty_id", id: SubmitSMRespID, seq: 2, check: func(t *testing.T, p PDU) {
		testutil.RequireEqual(t, len(p.(*SubmitSMResp).MessageID), 0)
	}},
	{name: "submit_sm_resp_invdstadr", id: SubmitSMRespID, status: StatusInvDstAdr, seq: 2,
		check: func(t *testing.T, p PDU) { testutil.RequireEqual(t, len(p.(*SubmitSMResp).MessageID), 0) }},
	{name: "deliver_sm_receipt", id: DeliverSMID, seq: 5, check: func(t *testing.T, p PDU) {
		d := p.(*DeliverSM)
		testutil.RequireEqual(t, d.IsReceipt(), true)
		testutil.RequireEqual(t, d.Source, Address{TON: 1, NPI: 1, Addr: []byte("33612345678")})
		testutil.RequireEqual(t, string(d.Dest.Addr), "optgate")
		testutil.RequireEqual(t, strings.HasPrefix(string(d.ShortMessage), "id:node-1 sub:001 dlvrd:001 "), true)
		testutil.RequireEqual(t, strings.Contains(string(d.ShortMessage), " stat:DELIVRD err:000 "), true)
		id, ok := d.TLVs.ReceiptedMessageID()
		testutil.RequireEqual(t, [2]any{string(id), ok}, [2]any{"node-1", true})
		st, ok := d.TLVs.MessageState()
		testutil.RequireEqual(t, [2]any{st, ok}, [2]any{uint8(2), true})
		typ, code, ok := d.TLVs.NetworkErrorCode()
		testutil.RequireEqual(t, [3]any{typ, code, ok}, [3]any{uint8(3), uint16(0), true})
		var order []Tag // node-smpp writes TLVs in the order they were given
		d.TLVs.Each(func(tag Tag, _ []byte) bool { order = append(order, tag); return true })
		testutil.RequireEqual(t, order, []Tag{TagReceiptedMessageID, TagMessageState, TagNetworkErrorCode})
	}},
	{name: "deliver_sm_mo_ucs2", id: DeliverSMID, seq: 6, check: func(t *testing.T, p PDU) {
		d := p.(*DeliverSM)
		testutil.RequireEqual(t, [2]any{d.IsReceipt(), d.DataCoding}, [2]any{false, uint8(8)})
		testutil.RequireEqual(t, ucs2Decode(t, d.ShortMessage), ucs2Text)
	}},
	{name: "deliver_sm_resp", id: DeliverSMRespID, seq: 5, check: func(t *testing.T, p PDU) {
		testutil.RequireEqual(t, len(p.(*DeliverSMResp).MessageID), 0)
	}},
	{name: "enquire_link_max_seq", id: EnquireLinkID, seq: 0x7FFFFFFF},
	{name: "enquire_link_resp", id: EnquireLinkRespID, seq: 0x7FFFFFFF},
	{name: "unbind", id: UnbindID, seq: 7},
	{name: "unbind_resp", id: UnbindRespID, seq: 7},
	{name: "generic_nack", id: GenericNackID, status: StatusInvCmdID, seq: 8},
}

func TestGoldenNodeSMPP(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			raw := readGolden(t, tc.name)
			h, p, err := Decode(raw)
			requireNoErr(t, err)
			testutil.RequireEqual(t, h, Header{Length: uint32(len(raw)), ID: tc.id, Status: tc.status, Sequence: tc.seq})
			testutil.RequireEqual(t, p.CommandID(), tc.id)
			if tc.check != nil {
				tc.check(t, p)
			}
			again, err := AppendPDU(nil, h.Status, h.Sequence, p)
			requireNoErr(t, err)
			testutil.RequireEqual(t, hex.EncodeToString(again), hex.EncodeToString(raw))
		})
	}
}

// TestGoldenTwoPDUsOneRead splits two PDUs node-smpp wrote back to back
// (what one read on our side returns) by command_length, and also feeds the
// stream to our framer in every split.
func TestGoldenTwoPDUsOneRead(t *testing.T) {
	stream := readGolden(t, "two_pdus")
	want := [][]byte{readGolden(t, "enquire_link_resp"), readGolden(t, "submit_sm_resp")}
	var got [][]byte
	for off := 0; off < len(stream); {
		h, err := ParseHeader(stream[off:])
		requireNoErr(t, err)
		if h.Length < HeaderLen || off+int(h.Length) > len(stream) {
			t.Fatalf("bad command_length %d at %d", h.Length, off)
		}
		got = append(got, stream[off:off+int(h.Length)])
		off += int(h.Length)
	}
	testutil.RequireEqual(t, got, want)
	_, p, err := Decode(got[1])
	requireNoErr(t, err)
	testutil.RequireEqual(t, string(p.(*SubmitSMResp).MessageID), "node-1")

	// Through a session: the peer writes the stream in two chunks split at
	// every offset; both responses must complete their requests.
	for split := 1; split < len(stream); split += 7 {
		a, b := net.Pipe()
		cn := NewConn(a, RoleESME, ConnConfig{EnquireLink: -1}, nil)
		res := make(chan Result, 2)
		requireNoErr(t, cn.win.Acquire(t.Context()))
		requireNoErr(t, cn.win.Add(0x7FFFFFFF, &EnquireLink{}, time.Now(), func(r Result) { res <- r }))
		requireNoErr(t, cn.win.Acquire(t.Context()))
		requireNoErr(t, cn.win.Add(2, &SubmitSM{}, time.Now(), func(r Result) { res <- r }))
		go func() {
			b.Write(stream[:split])
			b.Write(stream[split:])
		}()
		r1, r2 := <-res, <-res
		requireNoErr(t, r1.Err)
		requireNoErr(t, r2.Err)
		testutil.RequireEqual(t, r1.Header.ID, EnquireLinkRespID)
		testutil.RequireEqual(t, string(r2.Resp.(*SubmitSMResp).MessageID), "node-1")
		cn.Close()
		b.Close()
	}
}

// TestGoldenUgly covers malformed PDUs written by hand from node-smpp
// captures. node-smpp itself reads a C-string up to the end of the PDU when
// its NUL is missing; we refuse it, with the status the session answers.
func TestGoldenUgly(t *testing.T) {
	t.Run("submit_sm_resp_missing_nul", func(t *testing.T) {
		raw := readGolden(t, "submit_sm_resp_missing_nul")
		h, _, err := Decode(raw)
		testutil.RequireEqual(t, [2]any{h.ID, h.Sequence}, [2]any{SubmitSMRespID, uint32(2)})
		var se *StatusError
		if !errors.As(err, &se) {
			t.Fatalf("want *StatusError, got %v", err)
		}
		testutil.RequireEqual(t, se.Status, StatusInvCmdLen)
	})
	t.Run("bind_transceiver_missing_nul", func(t *testing.T) {
		raw := readGolden(t, "bind_transceiver_missing_nul")
		full := readGolden(t, "bind_transceiver")
		testutil.RequireEqual(t, raw[HeaderLen:], full[HeaderLen:len(full)-1]) // the capture less its last NUL
		h, _, err := Decode(raw)
		testutil.RequireEqual(t, h.ID, BindTransceiverID)
		testutil.RequireEqual(t, StatusOf(err), StatusInvCmdLen)
	})
}

// TestGoldenFilesAreNodeSMPPOutput reruns golden.js and checks that every
// committed node-smpp vector is still exactly what node-smpp produces.
func TestGoldenFilesAreNodeSMPPOutput(t *testing.T) {
	dir := nodeDir(t)
	out, err := exec.Command("node", filepath.Join(dir, "golden.js"), "--print").Output()
	requireNoErr(t, err)
	var res struct {
		Version string            `json:"node_smpp"`
		Vectors map[string]string `json:"vectors"`
	}
	requireNoErr(t, json.Unmarshal(out, &res))
	if len(res.Vectors) < len(goldenCases) {
		t.Fatalf("golden.js printed %d vectors, want at least %d", len(res.Vectors), len(goldenCases))
	}
	for name, h := range res.Vectors {
		file, err := os.ReadFile(filepath.Join("testdata", "golden", name+".hex"))
		requireNoErr(t, err)
		if !bytes.HasPrefix(file, []byte("# produced by node-smpp "+res.Version+" via smpp/testdata/node/golden.js")) {
			t.Errorf("%s.hex: header does not name node-smpp %s and golden.js", name, res.Version)
		}
		testutil.RequireEqual(t, hex.EncodeToString(readGolden(t, name)), h)
	}
	for _, name := range goldenNames(t) {
		file, err := os.ReadFile(filepath.Join("testdata", "golden", name+".hex"))
		requireNoErr(t, err)
		if _, ok := res.Vectors[name]; !ok && !bytes.HasPrefix(file, []byte("# written by hand")) {
			t.Errorf("%s.hex is neither from golden.js nor marked as written by hand", name)
		}
	}
}
