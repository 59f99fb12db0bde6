package smpp

// Interoperability tests against Net::SMPP (Debian's libnet-smpp-perl), a
// second independent SMPP implementation: Net::SMPP ESMEs
// (testdata/perl/esme.pl, bound with new_transmitter, new_receiver and
// new_transceiver) against our Server, and our Client against a Net::SMPP
// SMSC (testdata/perl/smsc.pl, built on new_listen), as real processes
// over 127.0.0.1 TCP. The scripts print every PDU they read or write as a
// JSON line with its octets and, for PDUs read, every field Net::SMPP
// decoded (hex-encoded), which is what these tests assert on.
//
// They skip when perl or Net::SMPP is missing, and fail instead when
// OPTGATE_INTEROP=required (scripts/test.sh installs the peers and sets it).

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// peerInstall is the command that installs every interop peer but node-smpp.
const peerInstall = "apt-get install kannel libnet-smpp-perl tshark"

// missingPeer skips the test because an interop peer is not installed, or
// fails it when OPTGATE_INTEROP=required: scripts/test.sh sets that, so a
// CI run cannot pass by skipping the peers.
func missingPeer(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("OPTGATE_INTEROP") == "required" {
		t.Fatalf("%s (OPTGATE_INTEROP=required: the interop peers must be installed)", msg)
	}
	t.Skip(msg)
}

var perlCheck struct {
	once sync.Once
	err  error
}

// perlDir returns the directory of the Net::SMPP peers, or skips the test.
func perlDir(t testing.TB) string {
	t.Helper()
	perlCheck.once.Do(func() {
		if _, err := exec.LookPath("perl"); err != nil {
			perlCheck.err = err
			return
		}
		out, err := exec.Command("perl", "-MNet::SMPP", "-MJSON::PP", "-e", "1").CombinedOutput()
		if err != nil {
			perlCheck.err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
	})
	if perlCheck.err != nil {
		missingPeer(t, "perl with Net::SMPP not available (%v): skipping Net::SMPP interop; install it with `%s` (scripts/test.sh does)",
			perlCheck.err, peerInstall)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "perl"))
	requireNoErr(t, err)
	return dir
}

// perlEvent is one JSON line printed by a Perl script.
type perlEvent struct {
	peerHead
	Fields    map[string]string `json:"fields"`    // hex-encoded values
	SystemID  string            `json:"system_id"` // hex, in "bound"
	SCVersion string            `json:"sc_interface_version"`
	Version   string            `json:"net_smpp"`
}

// field returns the octets Net::SMPP decoded for a field (or a TLV, by
// name as Net::SMPP knows it), and whether it decoded one.
func (e perlEvent) field(t testing.TB, k string) ([]byte, bool) {
	t.Helper()
	h, ok := e.Fields[k]
	if !ok {
		return nil, false
	}
	b, err := hex.DecodeString(h)
	requireNoErr(t, err)
	return b, true
}

func (e perlEvent) str(t testing.TB, k string) string {
	t.Helper()
	b, ok := e.field(t, k)
	if !ok {
		t.Fatalf("Net::SMPP decoded no %s in %s", k, e.line)
	}
	return string(b)
}

// num returns a numeric mandatory field (Perl prints unpack 'C' as decimal).
func (e perlEvent) num(t testing.TB, k string) int {
	t.Helper()
	n, err := strconv.Atoi(e.str(t, k))
	requireNoErr(t, err)
	return n
}

// perlProc is a running Perl script.
type perlProc = peerProc[perlEvent, *perlEvent]

// startPerl runs testdata/perl/<script> with args (and --lifetime).
func startPerl(t testing.TB, script string, args ...string) *perlProc {
	t.Helper()
	return startPeer[perlEvent](t, perlDir(t), "perl", append([]string{script, "--lifetime", "30"}, args...)...)
}

// perlSM is the JSON form of a submit_sm or deliver_sm for the scripts:
// mandatory fields by Net::SMPP's names, short_message and TLV values as hex.
func perlSM(cmd string, fields map[string]any, sm []byte, tlvs ...[2]string) map[string]any {
	c := map[string]any{"cmd": cmd, "pdu": fields, "short_message_hex": hex.EncodeToString(sm)}
	if len(tlvs) > 0 {
		c["tlvs"] = tlvs
	}
	return c
}

// checkSameSM decodes raw with our codec, checks that re-encoding gives the
// same octets (Net::SMPP's PDU survives our decode/encode byte for byte)
// and returns its SM.
func checkSameSM(t testing.TB, raw []byte) SM {
	t.Helper()
	h, p, err := Decode(raw)
	requireNoErr(t, err)
	again, err := AppendPDU(nil, h.Status, h.Sequence, p)
	requireNoErr(t, err)
	testutil.RequireEqual(t, hex.EncodeToString(again), hex.EncodeToString(raw))
	return smOf(t, raw)
}

// ---- (a) Net::SMPP ESMEs against our Server ----

func startPerlESME(t testing.TB, o *ourServer, mode BindMode, args ...string) *perlProc {
	t.Helper()
	return startPerl(t, "esme.pl", append([]string{"--port", o.port, "--mode", mode.String(),
		"--system-id", nodeSystemID, "--password", nodePassword}, args...)...)
}

func TestPerlInteropServerBindModes(t *testing.T) {
	for _, mode := range []BindMode{BindTransmitter, BindReceiver, BindTransceiver} {
		t.Run(mode.String(), func(t *testing.T) {
			o := startOurServer(t, nil)
			p := startPerlESME(t, o, mode)
			bind := p.expectPDU("out", "bind_"+mode.String())
			_, bp, err := Decode(bind.raw(t))
			requireNoErr(t, err)
			b := bp.(*Bind)
			testutil.RequireEqual(t, [4]any{b.Mode, string(b.SystemID), string(b.Password), b.InterfaceVersion},
				[4]any{mode, nodeSystemID, nodePassword, uint8(InterfaceVersion)})
			resp := p.expectPDU("in", "bind_"+mode.String()+"_resp")
			testutil.RequireEqual(t, [2]uint32{resp.CommandStatus, resp.Seq}, [2]uint32{0, bind.Seq})
			testutil.RequireEqual(t, resp.str(t, "system_id"), "optgate")
			testutil.RequireEqual(t, resp.str(t, "sc_interface_version"), "\x34") // our TLV, decoded by Net::SMPP
			ev := p.expectEv("bound")
			testutil.RequireEqual(t, ev.SystemID, hex.EncodeToString([]byte("optgate")))
			testutil.RequireEqual(t, recv(t, o.binds, "OnBind"), mode)
			info := recv(t, o.authSeen, "Authenticate")
			testutil.RequireEqual(t, [3]any{info.SystemID, info.Password, info.Mode}, [3]any{nodeSystemID, nodePassword, mode})

			// enquire_link from Net::SMPP.
			p.send(map[string]any{"cmd": "enquire_link"})
			el := p.expectPDU("out", "enquire_link")
			elr := p.expectPDU("in", "enquire_link_resp")
			testutil.RequireEqual(t, [3]any{elr.Seq, elr.CommandStatus, elr.Hex}, [3]any{el.Seq, uint32(0), fmt.Sprintf("0000001080000015%08x%08x", 0, el.Seq)})

			// enquire_link from our side, on whatever bind this is.
			ss := o.srv.Sessions()
			testutil.RequireEqual(t, len(ss), 1)
			ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
			defer cancel()
			h, er, err := ss[0].Send(ctx, &EnquireLink{})
			requireNoErr(t, err)
			testutil.RequireEqual(t, er.CommandID(), EnquireLinkRespID)
			testutil.RequireEqual(t, p.expectPDU("in", "enquire_link").Seq, h.Sequence)
			testutil.RequireEqual(t, p.expectPDU("out", "enquire_link_resp").Seq, h.Sequence)

			// Net::SMPP unbinds.
			p.send(map[string]any{"cmd": "unbind"})
			u := p.expectPDU("out", "unbind")
			ur := p.expectPDU("in", "unbind_resp")
			testutil.RequireEqual(t, [2]uint32{ur.Seq, ur.CommandStatus}, [2]uint32{u.Seq, 0})
			p.expectEv("done")
			testutil.RequireEqual(t, recv(t, o.unbinds, "OnUnbind"), CloseUnbound)
			p.waitExit()
		})
	}
}

func TestPerlInteropServerBindRefused(t *testing.T) {
	o := startOurServer(t, nil)
	for _, tc := range []struct {
		sys, pw string
		want    CommandStatus
	}{
		{nodeSystemID, "wrong", StatusInvPaswd},
		{"nobody", nodePassword, StatusInvSysID},
	} {
		p := startPerl(t, "esme.pl", "--port", o.port, "--mode", "transceiver", "--system-id", tc.sys, "--password", tc.pw)
		resp := p.expectPDU("in", "bind_transceiver_resp")
		testutil.RequireEqual(t, CommandStatus(p.expectEv("bind_failed").CommandStatus), tc.want)
		testutil.RequireEqual(t, CommandStatus(resp.CommandStatus), tc.want)
		p.expectEv("close")
		p.waitExit()
	}
}

// Net::SMPP ESMEs guessing an account's password lock it: the right
// password is then refused with ESME_RBINDFAIL, without reaching
// Authenticate.
func TestPerlInteropServerAccountLockout(t *testing.T) {
	o := startOurServer(t, nil, func(s *Server) { s.AccountLockAfter = 2; s.MaxFailedBinds = 100 })
	for _, pw := range []string{"guess1", "guess2", nodePassword} {
		want := StatusInvPaswd
		if pw == nodePassword {
			want = StatusBindFail
		}
		p := startPerl(t, "esme.pl", "--port", o.port, "--mode", "transceiver", "--system-id", nodeSystemID, "--password", pw)
		testutil.RequireEqual(t, CommandStatus(p.expectEv("bind_failed").CommandStatus), want)
		p.expectEv("close")
		p.waitExit()
	}
	testutil.RequireEqual(t, len(o.authSeen), 2)
}

// TestPerlInteropServerSubmit: Net::SMPP submits GSM-7, UCS-2, a
// three-part UDH message and a long message_payload with sar_* TLVs;
// our Server must read exactly the octets Net::SMPP wrote, and Net::SMPP
// must read our message ids.
func TestPerlInteropServerSubmit(t *testing.T) {
	for _, mode := range []BindMode{BindTransmitter, BindTransceiver} {
		t.Run(mode.String(), func(t *testing.T) {
			o := startOurServer(t, nil)
			p := startPerlESME(t, o, mode)
			p.expectEv("bound")
			recv(t, o.binds, "OnBind")
			n := 0
			submit := func(cmd map[string]any) SM {
				t.Helper()
				n++
				p.send(cmd)
				out := p.expectPDU("out", "submit_sm")
				sm := recv(t, o.submits, "submit")
				testutil.RequireEqual(t, checkSameSM(t, out.raw(t)), sm) // what Net::SMPP wrote is what our Server read
				resp := p.expectPDU("in", "submit_sm_resp")
				testutil.RequireEqual(t, [3]any{resp.Seq, resp.CommandStatus, resp.str(t, "message_id")}, [3]any{out.Seq, uint32(0), fmt.Sprintf("og-%d", n)})
				return sm
			}

			sm := submit(perlSM("submit", map[string]any{"source_addr_ton": 5, "source_addr": "optgate", "dest_addr_ton": 1,
				"dest_addr_npi": 1, "destination_addr": "33612345678", "registered_delivery": 1}, gsmEncode(t, gsmText)))
			testutil.RequireEqual(t, sm.Source, Address{TON: 5, NPI: 0, Addr: []byte("optgate")})
			testutil.RequireEqual(t, sm.Dest, Address{TON: 1, NPI: 1, Addr: []byte("33612345678")})
			testutil.RequireEqual(t, [3]uint8{sm.RegisteredDelivery, sm.DataCoding, sm.ESMClass}, [3]uint8{1, 0, 0})
			testutil.RequireEqual(t, sm.ShortMessage, gsmEncode(t, gsmText))

			sm = submit(perlSM("submit", map[string]any{"destination_addr": "33612345678", "data_coding": 8}, ucs2Encode(ucs2Text)))
			testutil.RequireEqual(t, sm.DataCoding, uint8(8))
			testutil.RequireEqual(t, ucs2Decode(t, sm.ShortMessage), ucs2Text)

			text := longText()
			var joined []byte
			for i, part := range concatParts(t, text) {
				sm = submit(perlSM("submit", map[string]any{"destination_addr": "33612345678", "esm_class": ESMClassUDHI}, part))
				testutil.RequireEqual(t, sm.ESMClass, uint8(ESMClassUDHI))
				testutil.RequireEqual(t, sm.ShortMessage[:6], []byte{0x05, 0x00, 0x03, concatRef, 3, byte(i + 1)})
				joined = append(joined, sm.ShortMessage[6:]...)
			}
			testutil.RequireEqual(t, string(joined), text)

			// The whole text in message_payload, with SAR TLVs and a user_message_reference.
			sm = submit(perlSM("submit", map[string]any{"destination_addr": "33612345678"}, nil,
				[2]string{"message_payload", hex.EncodeToString([]byte(text))},
				[2]string{"sar_msg_ref_num", "abcd"}, [2]string{"sar_total_segments", "01"}, [2]string{"sar_segment_seqnum", "01"},
				[2]string{"user_message_reference", "0102"}))
			testutil.RequireEqual(t, string(sm.Text()), text)
			ref, total, seq, ok := sm.TLVs.SAR()
			testutil.RequireEqual(t, [4]any{ref, total, seq, ok}, [4]any{uint16(0xabcd), uint8(1), uint8(1), true})
			umr, _ := sm.TLVs.UserMessageReference()
			testutil.RequireEqual(t, umr, uint16(0x0102))

			p.send(map[string]any{"cmd": "unbind"})
			p.expectPDU("in", "unbind_resp")
			testutil.RequireEqual(t, recv(t, o.unbinds, "OnUnbind"), CloseUnbound)
			p.waitExit()
		})
	}
}

// TestPerlInteropServerDeliver pushes MO messages and a receipt from our
// Server to Net::SMPP receivers, which must decode them field by field,
// then Server.Shutdown must unbind them.
func TestPerlInteropServerDeliver(t *testing.T) {
	for _, mode := range []BindMode{BindReceiver, BindTransceiver} {
		t.Run(mode.String(), func(t *testing.T) {
			o := startOurServer(t, nil)
			p := startPerlESME(t, o, mode)
			p.expectEv("bound")
			recv(t, o.binds, "OnBind")
			ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
			defer cancel()

			deliver := func(d *DeliverSM) perlEvent {
				t.Helper()
				h, resp, err := o.srv.Deliver(ctx, nodeSystemID, d)
				requireNoErr(t, err)
				testutil.RequireEqual(t, resp.CommandID(), DeliverSMRespID)
				in := p.expectPDU("in", "deliver_sm")
				want, err := AppendPDU(nil, StatusOK, h.Sequence, d)
				requireNoErr(t, err)
				testutil.RequireEqual(t, in.Hex, hex.EncodeToString(want))
				out := p.expectPDU("out", "deliver_sm_resp")
				testutil.RequireEqual(t, [2]uint32{out.Seq, out.CommandStatus}, [2]uint32{h.Sequence, 0})
				// Net::SMPP's own decoding of the mandatory fields.
				testutil.RequireEqual(t, [4]any{in.str(t, "source_addr"), in.num(t, "source_addr_ton"), in.str(t, "destination_addr"), in.num(t, "esm_class")},
					[4]any{string(d.Source.Addr), int(d.Source.TON), string(d.Dest.Addr), int(d.ESMClass)})
				testutil.RequireEqual(t, [2]any{in.num(t, "data_coding"), in.str(t, "short_message")}, [2]any{int(d.DataCoding), string(d.ShortMessage)})
				return in
			}

			deliver(&DeliverSM{SM{Source: Address{TON: 1, NPI: 1, Addr: []byte("33612345678")}, Dest: Address{TON: 0, NPI: 1, Addr: []byte("12345")},
				ShortMessage: gsmEncode(t, gsmText)}})
			in := deliver(&DeliverSM{SM{Source: Address{TON: 1, NPI: 1, Addr: []byte("33612345678")}, DataCoding: 8, ShortMessage: ucs2Encode(ucs2Text)}})
			testutil.RequireEqual(t, ucs2Decode(t, []byte(in.str(t, "short_message"))), ucs2Text)

			receipt := "id:og-1 sub:001 dlvrd:001 submit date:2411221030 done date:2411221031 stat:DELIVRD err:000 text:Hi"
			d := &DeliverSM{SM{Source: Address{TON: 1, NPI: 1, Addr: []byte("33612345678")}, Dest: Address{Addr: []byte("optgate")},
				ESMClass: ESMClassReceipt, ShortMessage: []byte(receipt)}}
			requireNoErr(t, d.TLVs.SetCString(TagReceiptedMessageID, "og-1"))
			requireNoErr(t, d.TLVs.SetUint8(TagMessageState, 2))
			requireNoErr(t, d.TLVs.Set(TagNetworkErrorCode, []byte{3, 0, 0}))
			in = deliver(d)
			testutil.RequireEqual(t, in.str(t, "receipted_message_id"), "og-1\x00") // Net::SMPP keeps TLV values raw
			testutil.RequireEqual(t, in.str(t, "message_state"), "\x02")
			testutil.RequireEqual(t, in.str(t, "network_error_code"), "\x03\x00\x00")

			// A deliver_sm in a long message_payload, with SAR TLVs.
			d = &DeliverSM{SM{Source: Address{TON: 1, NPI: 1, Addr: []byte("33612345678")}, Dest: Address{Addr: []byte("12345")}}}
			requireNoErr(t, d.TLVs.Set(TagMessagePayload, []byte(longText())))
			requireNoErr(t, d.TLVs.SetSAR(7, 1, 1))
			in = deliver(d)
			testutil.RequireEqual(t, [2]string{in.str(t, "message_payload"), hex.EncodeToString([]byte(in.str(t, "sar_msg_ref_num")))}, [2]string{longText(), "0007"})

			requireNoErr(t, o.srv.Shutdown(ctx))
			u := p.expectPDU("in", "unbind")
			testutil.RequireEqual(t, p.expectPDU("out", "unbind_resp").Seq, u.Seq)
			p.expectEv("unbound_by_peer")
			testutil.RequireEqual(t, recv(t, o.unbinds, "OnUnbind"), CloseUnbound)
			p.waitExit()
		})
	}
}

// TestPerlInteropServerDeliverRefused: a Net::SMPP receiver that answers
// deliver_sm with ESME_RX_T_APPN; our Server must report that status.
func TestPerlInteropServerDeliverRefused(t *testing.T) {
	o := startOurServer(t, nil)
	p := startPerlESME(t, o, BindReceiver, "--deliver-status", "100")
	p.expectEv("bound")
	recv(t, o.binds, "OnBind")
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	_, _, err := o.srv.Deliver(ctx, nodeSystemID, &DeliverSM{SM{Source: Address{Addr: []byte("1")}, ShortMessage: []byte("hi")}})
	testutil.RequireEqual(t, StatusOf(err), StatusXTAppn)
	out := p.expectPDU("out", "deliver_sm_resp")
	// Net::SMPP sends a message_id (an empty C string) even with an error status.
	testutil.RequireEqual(t, [2]any{CommandStatus(out.CommandStatus), len(out.raw(t))}, [2]any{StatusXTAppn, HeaderLen + 1})
}

// ---- (b) our Client against a Net::SMPP SMSC ----

func startPerlSMSC(t testing.TB) (*perlProc, string) {
	t.Helper()
	p := startPerl(t, "smsc.pl", "--system-id", nodeSystemID, "--password", nodePassword)
	ev := p.expectEv("listening")
	if ev.Port == 0 || ev.Version == "" {
		t.Fatalf("bad listening line %s", ev.line)
	}
	return p, net.JoinHostPort("127.0.0.1", strconv.Itoa(ev.Port))
}

func TestPerlInteropClient(t *testing.T) {
	for _, mode := range []BindMode{BindTransmitter, BindReceiver, BindTransceiver} {
		t.Run(mode.String(), func(t *testing.T) {
			p, addr := startPerlSMSC(t)
			got := make(chan SM, 8)
			cfg := nodeClientConfig(addr, mode)
			cfg.Handler = HandlerFunc(func(r *Request) {
				d, ok := r.PDU.(*DeliverSM)
				if !ok {
					r.Respond(StatusInvCmdID, nil)
					return
				}
				got <- copySM(&d.SM)
				r.Respond(StatusOK, nil)
			})
			c := startOurClient(t, cfg)
			in := p.expectPDU("in", "bind_"+mode.String())
			testutil.RequireEqual(t, [3]any{in.str(t, "system_id"), in.str(t, "password"), in.num(t, "interface_version")},
				[3]any{nodeSystemID, nodePassword, InterfaceVersion})
			resp := p.expectPDU("out", "bind_"+mode.String()+"_resp")
			testutil.RequireEqual(t, [2]uint32{resp.CommandStatus, resp.Seq}, [2]uint32{0, in.Seq})
			testutil.RequireEqual(t, p.expectEv("bound").Mode, mode.String())
			ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
			defer cancel()

			if mode.CanSubmit() {
				n := 0
				submit := func(sm *SubmitSM) perlEvent {
					t.Helper()
					n++
					id, err := c.Submit(ctx, sm)
					requireNoErr(t, err)
					testutil.RequireEqual(t, id, fmt.Sprintf("perl-%d", n))
					in := p.expectPDU("in", "submit_sm")
					want, err := AppendPDU(nil, StatusOK, in.Seq, sm)
					requireNoErr(t, err)
					testutil.RequireEqual(t, in.Hex, hex.EncodeToString(want))
					testutil.RequireEqual(t, [4]any{in.str(t, "destination_addr"), in.num(t, "dest_addr_ton"), in.num(t, "esm_class"), in.num(t, "data_coding")},
						[4]any{string(sm.Dest.Addr), int(sm.Dest.TON), int(sm.ESMClass), int(sm.DataCoding)})
					testutil.RequireEqual(t, in.str(t, "short_message"), string(sm.ShortMessage))
					out := p.expectPDU("out", "submit_sm_resp")
					testutil.RequireEqual(t, [2]uint32{out.Seq, out.CommandStatus}, [2]uint32{in.Seq, 0})
					return in
				}
				dst := Address{TON: 1, NPI: 1, Addr: []byte("33612345678")}
				in := submit(&SubmitSM{SM{Source: Address{TON: 5, Addr: []byte("optgate")}, Dest: dst, RegisteredDelivery: 1, ShortMessage: gsmEncode(t, gsmText)}})
				testutil.RequireEqual(t, [3]any{in.str(t, "source_addr"), in.num(t, "source_addr_ton"), in.num(t, "registered_delivery")}, [3]any{"optgate", 5, 1})
				submit(&SubmitSM{SM{Dest: dst, DataCoding: 8, ShortMessage: ucs2Encode(ucs2Text)}})
				for _, part := range concatParts(t, longText()) {
					submit(&SubmitSM{SM{Dest: dst, ESMClass: ESMClassUDHI, ShortMessage: part}})
				}
				sm := &SubmitSM{SM{Dest: dst}}
				requireNoErr(t, sm.TLVs.Set(TagMessagePayload, []byte(longText())))
				requireNoErr(t, sm.TLVs.SetSAR(0x1234, 2, 1))
				requireNoErr(t, sm.TLVs.SetUint16(TagUserMessageReference, 42))
				in = submit(sm)
				testutil.RequireEqual(t, [3]string{in.str(t, "message_payload"), in.str(t, "sar_msg_ref_num"), in.str(t, "user_message_reference")},
					[3]string{longText(), "\x12\x34", "\x00\x2a"})
			}

			if mode.CanReceive() {
				deliver := func(cmd map[string]any) SM {
					t.Helper()
					p.send(cmd)
					out := p.expectPDU("out", "deliver_sm")
					var sm SM
					select {
					case sm = <-got:
					case <-time.After(nodeTimeout):
						t.Fatal("no deliver_sm at our handler")
					}
					testutil.RequireEqual(t, checkSameSM(t, out.raw(t)), sm)
					back := p.expectPDU("in", "deliver_sm_resp")
					testutil.RequireEqual(t, [2]uint32{back.Seq, back.CommandStatus}, [2]uint32{out.Seq, 0})
					return sm
				}
				sm := deliver(perlSM("deliver", map[string]any{"source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "33612345678",
					"destination_addr": "12345"}, gsmEncode(t, gsmText)))
				testutil.RequireEqual(t, [3]string{string(sm.Source.Addr), string(sm.Dest.Addr), string(sm.ShortMessage)},
					[3]string{"33612345678", "12345", string(gsmEncode(t, gsmText))})
				sm = deliver(perlSM("deliver", map[string]any{"source_addr": "33612345678", "destination_addr": "12345", "data_coding": 8},
					ucs2Encode(ucs2Text)))
				testutil.RequireEqual(t, ucs2Decode(t, sm.ShortMessage), ucs2Text)
				receipt := "id:perl-1 sub:001 dlvrd:001 submit date:2411221030 done date:2411221031 stat:DELIVRD err:000 text:Hi"
				sm = deliver(perlSM("deliver", map[string]any{"source_addr": "33612345678", "destination_addr": "optgate", "esm_class": ESMClassReceipt},
					[]byte(receipt), [2]string{"receipted_message_id", hex.EncodeToString([]byte("perl-1\x00"))},
					[2]string{"message_state", "02"}, [2]string{"network_error_code", "030000"}))
				d := DeliverSM{sm}
				testutil.RequireEqual(t, d.IsReceipt(), true)
				rid, _ := sm.TLVs.ReceiptedMessageID()
				st, _ := sm.TLVs.MessageState()
				typ, code, _ := sm.TLVs.NetworkErrorCode()
				testutil.RequireEqual(t, [4]any{string(rid), st, typ, code}, [4]any{"perl-1", uint8(2), uint8(3), uint16(0)})
			}

			// enquire_link both ways.
			p.send(map[string]any{"cmd": "enquire_link"})
			el := p.expectPDU("out", "enquire_link")
			elr := p.expectPDU("in", "enquire_link_resp")
			testutil.RequireEqual(t, [2]uint32{elr.Seq, elr.CommandStatus}, [2]uint32{el.Seq, 0})
			cn := c.Conns()[0]
			h, _, err := cn.Send(ctx, &EnquireLink{})
			requireNoErr(t, err)
			testutil.RequireEqual(t, p.expectPDU("in", "enquire_link").Seq, h.Sequence)

			requireNoErr(t, c.Shutdown(ctx))
			u := p.expectPDU("in", "unbind")
			testutil.RequireEqual(t, p.expectPDU("out", "unbind_resp").Seq, u.Seq)
			p.expectEv("close")
			reason, err := cn.CloseReason()
			testutil.RequireEqual(t, [2]any{reason, err}, [2]any{CloseUnbound, error(nil)})
		})
	}
}

func TestPerlInteropClientBindRefused(t *testing.T) {
	p, addr := startPerlSMSC(t)
	for _, tc := range []struct {
		sys, pw string
		want    CommandStatus
	}{
		{nodeSystemID, "wrong", StatusInvPaswd},
		{"nobody", nodePassword, StatusInvSysID},
	} {
		nc, err := net.Dial("tcp", addr)
		requireNoErr(t, err)
		cn := NewConn(nc, RoleESME, ConnConfig{}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
		_, _, err = cn.Send(ctx, &Bind{Mode: BindTransceiver, SystemID: []byte(tc.sys), Password: []byte(tc.pw), InterfaceVersion: InterfaceVersion})
		cancel()
		testutil.RequireEqual(t, StatusOf(err), tc.want)
		out := p.expectPDU("out", "bind_transceiver_resp")
		testutil.RequireEqual(t, CommandStatus(out.CommandStatus), tc.want)
		cn.Close()
		p.expectEv("close") // the SMSC serves one connection at a time
	}
}

// TestPerlInteropClientUnbindBySMSC: Net::SMPP's SMSC unbinds our Client,
// which must answer and end the session as a clean unbind.
func TestPerlInteropClientUnbindBySMSC(t *testing.T) {
	p, addr := startPerlSMSC(t)
	c := startOurClient(t, nodeClientConfig(addr, BindTransceiver))
	p.expectEv("bound")
	cn := c.Conns()[0]
	p.send(map[string]any{"cmd": "unbind"})
	u := p.expectPDU("out", "unbind")
	back := p.expectPDU("in", "unbind_resp")
	testutil.RequireEqual(t, [2]uint32{back.Seq, back.CommandStatus}, [2]uint32{u.Seq, 0})
	select {
	case <-cn.Done():
	case <-time.After(nodeTimeout):
		t.Fatal("session did not end after the SMSC's unbind")
	}
	reason, _ := cn.CloseReason()
	testutil.RequireEqual(t, reason, CloseUnbound)
}
