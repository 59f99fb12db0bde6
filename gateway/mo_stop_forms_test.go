package gateway

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/optgate/optgate/internal/testutil"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// ucs2LE is s in UTF-16 little-endian, as some SMSCs send data_coding 8.
func ucs2LE(s string) []byte {
	be := coding.EncodeUCS2(s)
	for i := 0; i+1 < len(be); i += 2 {
		be[i], be[i+1] = be[i+1], be[i]
	}
	return be
}

// TestAuditStopWireForms sends STOP in the wire forms real SMSCs use and
// checks each is honoured: answered ESME_ROK, and a later submit_sm to the
// handset is refused 0x401.
func TestAuditStopWireForms(t *testing.T) {
	env := addrEnv(t, "", "")
	packed, _ := coding.EncodeGSM7Packed("STOP")
	payload := func(b []byte) smpp.TLVs {
		var v smpp.TLVs
		_ = v.Set(smpp.TagMessagePayload, b)
		return v
	}
	type pdu struct {
		esm, dc uint8
		sm      []byte
		tlvs    smpp.TLVs
	}
	for i, c := range []struct {
		name string
		p    pdu
		data bool // as data_sm
	}{
		{"ucs2 BE", pdu{dc: 8, sm: coding.EncodeUCS2("STOP")}, false},
		{"ucs2 BE with BOM", pdu{dc: 8, sm: append([]byte{0xFE, 0xFF}, coding.EncodeUCS2("STOP")...)}, false},
		{"ucs2 LE with BOM", pdu{dc: 8, sm: append([]byte{0xFF, 0xFE}, ucs2LE("STOP")...)}, false},
		{"ucs2 LE without BOM", pdu{dc: 8, sm: ucs2LE("STOP")}, false},
		{"ucs2 full width", pdu{dc: 8, sm: coding.EncodeUCS2("ＳＴＯＰ")}, false},
		{"gsm7 packed under dc 0", pdu{dc: 0, sm: packed}, false},
		{"Stop.", pdu{sm: []byte("Stop.")}, false},
		{"spaces", pdu{sm: []byte(" STOP ")}, false},
		{"crlf", pdu{sm: []byte("stop\r\n")}, false},
		{"latin1 dc 3", pdu{dc: 3, sm: []byte("STOP")}, false},
		{"dc 0xF0 class 0", pdu{dc: 0xF0, sm: []byte("STOP")}, false},
		{"dc 0x18 ucs2 class", pdu{dc: 0x18, sm: coding.EncodeUCS2("STOP")}, false},
		{"message_payload", pdu{tlvs: payload([]byte("STOP"))}, false},
		{"message_payload ucs2", pdu{dc: 8, tlvs: payload(coding.EncodeUCS2("STOP"))}, false},
		{"esm 0x08 SME ack", pdu{esm: 0x08, sm: []byte("STOP")}, false},
		{"esm 0x10 user ack", pdu{esm: 0x10, sm: []byte("STOP")}, false},
		{"esm 0x04 receipt flag, text STOP", pdu{esm: 0x04, sm: []byte("STOP")}, false},
		{"esm 0x20 intermediate flag, text Stop.", pdu{esm: 0x20, sm: []byte("Stop.")}, false},
		{"udhi with a port header only", pdu{esm: 0x40, sm: append([]byte{6, 5, 4, 0x0B, 0x84, 0x23, 0xF0}, "STOP"...)}, false},
		{"udhi concat 1 of 1", pdu{esm: 0x40, sm: append([]byte{5, 0, 3, 9, 1, 1}, "STOP"...)}, false},
		{"udhi concat part 0 of 2 (IE to ignore, TS 23.040)", pdu{esm: 0x40, sm: append([]byte{5, 0, 3, 10, 2, 0}, "STOP"...)}, false},
		{"udhi concat part 3 of 2 (IE to ignore)", pdu{esm: 0x40, sm: append([]byte{5, 0, 3, 11, 2, 3}, "STOP"...)}, false},
		{"sar part 0 of 2 (to ignore)", pdu{sm: []byte("STOP"), tlvs: func() smpp.TLVs {
			var v smpp.TLVs
			_ = v.SetUint16(smpp.TagSarMsgRefNum, 12)
			_ = v.SetUint8(smpp.TagSarTotalSegments, 2)
			_ = v.SetUint8(smpp.TagSarSegmentSeqnum, 0)
			return v
		}()}, false},
		{"dc 4 8-bit unspecified", pdu{dc: 4, sm: []byte("STOP")}, false},
		{"dc 2 8-bit binary", pdu{dc: 2, sm: []byte("Stop")}, false},
		{"dc 0xF4 8-bit class 0", pdu{dc: 0xF4, sm: []byte("STOP")}, false},
		{"dc 14 KS C 5601", pdu{dc: 14, sm: []byte("STOP")}, false},
		{"dc 5 JIS", pdu{dc: 5, sm: []byte("stop")}, false},
		{"udhi bit set, no UDH", pdu{esm: 0x40, sm: []byte("STOP")}, false},
		{"data_sm payload", pdu{tlvs: payload([]byte("STOP"))}, true},
		{"data_sm ucs2 payload", pdu{dc: 8, tlvs: payload(coding.EncodeUCS2("STOP"))}, true},
		{"data_sm esm 0x08", pdu{esm: 0x08, tlvs: payload([]byte("STOP"))}, true},
		{"data_sm esm 0x04 receipt flag, payload STOP", pdu{esm: 0x04, tlvs: payload([]byte("STOP"))}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := fmt.Sprintf("1514555%04d", 7000+i)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			src, dst := addr(1, h), ours
			var err error
			if c.data {
				_, _, err = env.smsc.SMPP().Deliver(ctx, "optgate", &smpp.DataSM{Source: src, Dest: dst, ESMClass: c.p.esm, DataCoding: c.p.dc, TLVs: c.p.tlvs})
			} else {
				err = env.smsc.SendDeliver(ctx, "optgate", &smpp.DeliverSM{SM: smpp.SM{Source: src, Dest: dst, ESMClass: c.p.esm, DataCoding: c.p.dc, ShortMessage: c.p.sm, TLVs: c.p.tlvs}})
			}
			if err != nil {
				t.Fatalf("STOP: %v, want ESME_ROK", err)
			}
			testutil.CheckFor(t, 5*time.Second, func() error {
				if _, err := submitAddr(env.esme, ours, addr(1, h), "hello"); smpp.StatusOf(err) != smpp.StatusOptedOut {
					return fmt.Errorf("submit after STOP: %v, want 0x401", err)
				}
				return nil
			})
		})
	}
}

// TestAuditStopAddressForms: STOP sources and destinations in the forms
// SMSCs write them; then the same person written every way on the send
// side (submit_sm and data_sm with each TON, HTTP "to" with separators and
// prefixes) is refused.
func TestAuditStopAddressForms(t *testing.T) {
	env := addrEnv(t, "", "")
	npi0 := func(ton uint8, s string) smpp.Address { return smpp.Address{TON: ton, NPI: 0, Addr: []byte(s)} }
	for i, c := range []struct {
		name     string
		src, dst smpp.Address
	}{
		{"TON 1 with + inside", addr(1, "+1514555%04d"), ours},
		{"TON 1 NPI 0", npi0(1, "1514555%04d"), ours},
		{"TON 0 NPI 0 national", npi0(0, "514555%04d"), ours},
		{"dest our number TON 0 with 1", addr(1, "1514555%04d"), addr(0, "15145550199")},
		{"dest our number TON 0 national", addr(1, "1514555%04d"), addr(0, "5145550199")},
		{"dest our number NPI 0 TON 0", addr(1, "1514555%04d"), npi0(0, "15145550199")},
		{"dest our number with + TON 1", addr(1, "1514555%04d"), addr(1, "+15145550199")},
		{"dest our number 011 TON 0", addr(1, "1514555%04d"), addr(0, "01115145550199")},
		{"source TON 0 with 1", addr(0, "1514555%04d"), ours},
		{"source TON 0 with +1 and spaces", addr(0, "+1 514555%04d"), ours},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := 7100 + i
			src := c.src
			src.Addr = []byte(fmt.Sprintf(string(src.Addr), n))
			if err := env.deliver(src, c.dst, "STOP"); err != nil {
				t.Fatalf("STOP: %v", err)
			}
			canon := fmt.Sprintf("+1514555%04d", n)
			env.nextSubmitTo(canon)
			for _, to := range []smpp.Address{addr(0, canon[2:]), addr(0, canon[1:]), addr(1, canon[1:]), addr(2, canon[2:]), addr(4, canon[2:]), addr(0, canon), addr(1, canon), addr(0, "011"+canon[1:]), addr(0, "00"+canon[1:]), npi0(1, canon[1:]), npi0(0, canon[2:])} {
				if _, err := submitAddr(env.esme, ours, to, "hi"); smpp.StatusOf(err) != smpp.StatusOptedOut {
					t.Errorf("submit_sm to TON %d NPI %d %q: %v, want 0x401", to.TON, to.NPI, to.Addr, err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var pl smpp.TLVs
				_ = pl.Set(smpp.TagMessagePayload, []byte("hi"))
				_, _, err := env.esme.Send(ctx, &smpp.DataSM{Source: ours, Dest: to, TLVs: pl})
				cancel()
				if smpp.StatusOf(err) != smpp.StatusOptedOut {
					t.Errorf("data_sm to TON %d %q: %v, want 0x401", to.TON, to.Addr, err)
				}
			}
			d := canon[2:]
			for _, to := range []string{d, canon[1:], "1-" + d[:3] + "-" + d[3:6] + "-" + d[6:], "(" + d[:3] + ") " + d[3:6] + "-" + d[6:], "+1 " + d[:3] + " " + d[3:6] + " " + d[6:], "00" + canon[1:], "011" + canon[1:], "+1." + d[:3] + "." + d[3:6] + "." + d[6:], " " + canon + " "} {
				code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+to+`","text":"x"}`)
				if code == 202 || errCode(m) != "recipient_opted_out" {
					t.Errorf("HTTP to %q after STOP: %d %v, want recipient_opted_out", to, code, m)
				}
			}
		})
	}
}

// TestAuditStopConcatenated: a STOP split over parts that arrive out of
// order, repeated, on both binds, with the source written differently in
// each part, as SAR TLVs or a 16-bit UDH reference, is honoured once.
func TestAuditStopConcatenated(t *testing.T) {
	env := addrEnv(t, "", "")
	udh8 := func(ref, total, seq byte, s string) ([]byte, smpp.TLVs, uint8) {
		return append([]byte{5, 0, 3, ref, total, seq}, s...), smpp.TLVs{}, smpp.ESMClassUDHI
	}
	udh16 := func(ref, total, seq byte, s string) ([]byte, smpp.TLVs, uint8) {
		return append([]byte{6, 8, 4, 0x12, ref, total, seq}, s...), smpp.TLVs{}, smpp.ESMClassUDHI
	}
	sar := func(ref, total, seq byte, s string) ([]byte, smpp.TLVs, uint8) {
		var v smpp.TLVs
		_ = v.SetUint16(smpp.TagSarMsgRefNum, uint16(ref))
		_ = v.SetUint8(smpp.TagSarTotalSegments, total)
		_ = v.SetUint8(smpp.TagSarSegmentSeqnum, seq)
		return []byte(s), v, 0
	}
	type part struct {
		seq  byte
		text string
		src  string // fmt with the handset's last four digits
		ton  uint8
	}
	for i, c := range []struct {
		name  string
		form  func(ref, total, seq byte, s string) ([]byte, smpp.TLVs, uint8)
		parts []part
	}{
		{"udh8 out of order", udh8, []part{{2, "OP", "1514555%04d", 1}, {1, "ST", "1514555%04d", 1}}},
		{"udh8 part repeated", udh8, []part{{1, "ST", "1514555%04d", 1}, {1, "ST", "1514555%04d", 1}, {2, "OP", "1514555%04d", 1}}},
		{"udh8 source forms differ", udh8, []part{{1, "ST", "1514555%04d", 1}, {2, "OP", "514555%04d", 0}}},
		{"udh16 out of order", udh16, []part{{2, "OP", "1514555%04d", 1}, {1, "ST", "1514555%04d", 1}}},
		{"sar out of order", sar, []part{{2, "OP", "1514555%04d", 1}, {1, "ST", "1514555%04d", 1}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := 7200 + i
			for _, p := range c.parts {
				sm, tlvs, esm := c.form(byte(0x60+i), 2, p.seq, p.text)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := env.smsc.SendDeliver(ctx, "optgate", &smpp.DeliverSM{SM: smpp.SM{
					Source: addr(p.ton, fmt.Sprintf(p.src, n)), Dest: ours, ESMClass: esm, ShortMessage: sm, TLVs: tlvs}})
				cancel()
				if err != nil {
					t.Fatalf("part %d: %v", p.seq, err)
				}
			}
			canon := fmt.Sprintf("+1514555%04d", n)
			env.nextSubmitTo(canon)
			if _, err := submitAddr(env.esme, ours, addr(1, canon[1:]), "hi"); smpp.StatusOf(err) != smpp.StatusOptedOut {
				t.Fatalf("submit after STOP: %v, want 0x401", err)
			}
		})
	}
}

// TestAuditStopUserMessageReference: user_message_reference is the
// handset's message reference (TP-MR, 0–255, cycling; some SMSCs send a
// constant): two different MOs may carry the same one. A STOP must not be
// taken for a retry of an earlier, different MO with the same reference,
// nor a STOP after START for the retry of the first STOP; a real retry
// (same MO, error answered) is still confirmed once.
func TestAuditStopUserMessageReference(t *testing.T) {
	env := addrEnv(t, "    repeat_confirm_window: off", "")
	send := func(h, text string, umr uint16) error {
		var v smpp.TLVs
		_ = v.SetUint16(smpp.TagUserMessageReference, umr)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return env.smsc.SendDeliver(ctx, "optgate", &smpp.DeliverSM{SM: smpp.SM{Source: addr(1, h[1:]), Dest: ours, ShortMessage: []byte(text), TLVs: v}})
	}
	blocked := func(h string) bool {
		_, err := submitAddr(env.esme, ours, addr(1, h[1:]), "hi")
		return smpp.StatusOf(err) == smpp.StatusOptedOut
	}
	// HELP then STOP, same length, same reference.
	h := "+15145557300"
	if err := send(h, "HELP", 0); err != nil {
		t.Fatal(err)
	}
	if err := send(h, "STOP", 0); err != nil {
		t.Fatal(err)
	}
	if !blocked(h) {
		t.Fatal("STOP with the reference of an earlier HELP was taken for its retry: not applied")
	}
	// STOP, START, STOP again with the first STOP's reference.
	h = "+15145557301"
	for _, m := range []struct {
		text string
		umr  uint16
	}{{"STOP", 17}, {"START", 18}, {"STOP", 17}} {
		if err := send(h, m.text, m.umr); err != nil {
			t.Fatal(err)
		}
	}
	if !blocked(h) {
		t.Fatal("the second STOP (reference reused) was taken for a retry of the first: the handset stays subscribed")
	}
	// A real retry: answered ESME_RX_T_APPN after the opt-out was stored,
	// resent with the same reference: ESME_ROK, one confirmation.
	h = "+15145557302"
	failOnceAfterConsent(t)
	if err := send(h, "STOP", 9); smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("first attempt: %v, want ESME_RX_T_APPN", err)
	}
	if err := send(h, "STOP", 9); err != nil {
		t.Fatalf("retry: %v", err)
	}
	wantOneConfirmation(t, env, h, func() error { return send(h, "HELP", 10) })
}

// TestAuditConcatenatedStopRetriedAfterConsent: the part completing a
// concatenated STOP is answered ESME_RX_T_APPN after the opt-out was
// stored (a failure before the platform's copy); the SMSC's retry of that
// part gets ESME_ROK and no second confirmation (repeat_confirm_window:
// off would confirm every STOP).
func TestAuditConcatenatedStopRetriedAfterConsent(t *testing.T) {
	smsc := newSMSC(t)
	dir := t.TempDir()
	env := startEnv(t, configYAML(dir, smsc.Addr(), "    repeat_confirm_window: off", ""), smsc, dir)
	failOnceAfterConsent(t)
	if err := env.sendPart(0x71, 1, "ST"); err != nil {
		t.Fatal(err)
	}
	if err := env.sendPart(0x71, 2, "OP"); smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("last part: %v, want ESME_RX_T_APPN", err)
	}
	if err := env.sendPart(0x71, 2, "OP"); err != nil {
		t.Fatalf("retried last part: %v", err)
	}
	wantOneConfirmation(t, env, handset, func() error { return env.mo(handset, "HELP") })
}

// failOnceAfterConsent makes the next inbound fail (a panic) once the
// consent store applied it, before the platform's copy: the SMSC is
// answered ESME_RX_T_APPN with the opt-out stored.
func failOnceAfterConsent(t *testing.T) {
	var once sync.Once
	hook := func() { once.Do(func() { panic("injected failure after the consent change") }) }
	testHookAfterConsent.Store(&hook)
	t.Cleanup(func() { testHookAfterConsent.Store(nil) })
}

// wantOneConfirmation sends the replies left pending, wants the handset's
// next reply to be the STOP confirmation, then has help send a HELP and
// wants its answer next: no second confirmation in between.
func wantOneConfirmation(t *testing.T, env *testEnv, h string, help func() error) {
	t.Helper()
	env.g.resendPendingReplies(time.Now().Add(time.Minute))
	if _, text := env.nextSubmitTo(h); !strings.Contains(text, "unsubscribed") {
		t.Fatalf("first reply %q, want the STOP confirmation", text)
	}
	if err := help(); err != nil {
		t.Fatal(err)
	}
	if _, text := env.nextSubmitTo(h); !strings.Contains(text, "Help at") {
		t.Fatalf("next reply %q, want the HELP answer, not a second confirmation", text)
	}
}

// TestAuditWhatsAppStopBlocksSMPPForms: after a WhatsApp STOP from a wa_id
// form (cross-channel tenant), the platform's SMPP submit_sm and data_sm to
// the same line in every form (wa_id digits, E.164, national, spaced) are
// refused 0x401, and an SMS STOP blocks WhatsApp templates to the wa_id
// forms.
func TestAuditWhatsAppStopBlocksSMPPForms(t *testing.T) {
	env := newWAEnvWith(t, "    cross_channel: true\n", "", "")
	meta := whatsapptest.Meta{PhoneNumberID: mockPhoneID}
	for i, c := range []struct {
		waID  string
		forms []smpp.Address
	}{
		{"5215512345690", []smpp.Address{addr(1, "5215512345690"), addr(1, "525512345690"), addr(0, "+52 1 55 1234 5690"), addr(0, "00525512345690"), addr(0, "0115215512345690")}},
		{"5491123456790", []smpp.Address{addr(1, "541123456790"), addr(1, "5491123456790"), addr(0, "+54 9 11 2345-6790")}},
		{"551187654390", []smpp.Address{addr(1, "5511987654390"), addr(1, "551187654390")}},
	} {
		postSigned(t, env, whatsapptest.InboundText(meta, c.waID, fmt.Sprintf("wamid.AUDIT%d", i), "STOP", time.Now()))
		for _, to := range c.forms {
			testutil.CheckFor(t, 10*time.Second, func() error {
				if _, err := submitAddr(env.esme, ours, to, "hi"); smpp.StatusOf(err) != smpp.StatusOptedOut {
					return fmt.Errorf("submit_sm to TON %d %q after a WhatsApp STOP from %s: %v, want 0x401", to.TON, to.Addr, c.waID, err)
				}
				return nil
			})
		}
	}
	// The other way: an SMS STOP from the E.164 number blocks WhatsApp
	// templates to the wa_id form.
	if err := env.deliver(addr(1, "525512345691"), ours, "STOP"); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"+5215512345691", "+525512345691"} {
		waitBlocked(t, env, to)
	}
}

// TestAuditUnkeyedSources: a STOP from an empty source or a 20-digit one
// cannot be keyed: answered ESME_ROK only once dead-lettered, and counted.
func TestAuditUnkeyedSources(t *testing.T) {
	env := addrEnv(t, "", "")
	for i, src := range []smpp.Address{addr(1, ""), addr(0, ""), addr(1, "12345678901234567890"), addr(0, "+1234567890123456789")} {
		if err := env.deliver(src, ours, "STOP"); err != nil {
			t.Fatalf("source TON %d %q: %v, want ESME_ROK once dead-lettered", src.TON, src.Addr, err)
		}
		if got := promtest.ToFloat64(env.g.metrics.unkeyed.WithLabelValues(ChannelSMS, unkeyedInvalidSource)); got != float64(i+1) {
			t.Fatalf("source TON %d %q: invalid_source counted %v, want %d", src.TON, src.Addr, got, i+1)
		}
	}
}

// A part of a concatenated MO the reassembler refuses (here: its total
// disagrees with the one its set started with) cannot be joined, and a retry
// cannot fix it; it may hold part of a STOP, so it is dead-lettered with its
// raw PDU and counted before it is answered ESME_ROK, not answered and
// dropped.
func TestRefusedPartDeadLettered(t *testing.T) {
	env := addrEnv(t, "", "")
	src := addr(1, "15145557301")
	send := func(total, seq byte, s string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		err := env.smsc.SendDeliver(ctx, "optgate", &smpp.DeliverSM{SM: smpp.SM{Source: src, Dest: ours,
			ESMClass: smpp.ESMClassUDHI, ShortMessage: append([]byte{5, 0, 3, 0x77, total, seq}, s...)}})
		if err != nil {
			t.Fatalf("part %d of %d: %v, want ESME_ROK", seq, total, err)
		}
	}
	send(3, 1, "ST")
	send(2, 2, "OP") // the same set (source, destination, reference) said 3 parts
	if got := promtest.ToFloat64(env.g.metrics.unkeyed.WithLabelValues(ChannelSMS, unkeyedRefusedPart)); got != 1 {
		t.Fatalf("optgate_inbound_unkeyed_total{reason=%q} = %v, want 1", unkeyedRefusedPart, got)
	}
	var kept []DeadLetter
	if err := env.g.DeadLetters(func(d DeadLetter) bool { kept = append(kept, d); return true }); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || kept[0].Reason != unkeyedRefusedPart || len(kept[0].PDU) == 0 {
		t.Fatalf("dead letters: %+v", kept)
	}
	if _, p, err := smpp.Decode(kept[0].PDU); err != nil || !bytes.HasSuffix(p.(*smpp.DeliverSM).ShortMessage, []byte("OP")) {
		t.Fatalf("kept PDU %x: %v", kept[0].PDU, err)
	}
}
