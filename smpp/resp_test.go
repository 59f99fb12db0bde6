package smpp

import (
	"context"
	"encoding/hex"
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

// Responses carrying TLVs (SMPP v5.0-style SMSCs append them to
// submit_sm_resp, deliver_sm_resp and data_sm_resp) decode, keep their
// TLVs and re-encode byte for byte. The vectors are written by hand.
func TestGoldenResponseTLVs(t *testing.T) {
	cases := []struct {
		name  string
		check func(t *testing.T, p PDU)
	}{
		{"submit_sm_resp_tlv", func(t *testing.T, p PDU) {
			r := p.(*SubmitSMResp)
			testutil.RequireEqual(t, string(r.MessageID), "abc")
			v, ok := r.TLVs.CString(TagAdditionalStatusInfo)
			testutil.RequireEqual(t, [2]any{string(v), ok}, [2]any{"ok", true})
			v, ok = r.TLVs.Get(0x1401) // unknown vendor tag: kept, readable
			testutil.RequireEqual(t, [2]any{v, ok}, [2]any{[]byte{0, 1}, true})
		}},
		{"deliver_sm_resp_tlv", func(t *testing.T, p PDU) {
			r := p.(*DeliverSMResp)
			testutil.RequireEqual(t, len(r.MessageID), 0)
			v, ok := r.TLVs.Uint8(TagDeliveryFailureReason)
			testutil.RequireEqual(t, [2]any{v, ok}, [2]any{uint8(2), true})
		}},
		{"data_sm_resp_tlv", func(t *testing.T, p PDU) {
			r := p.(*DataSMResp)
			testutil.RequireEqual(t, string(r.MessageID), "42")
			v, ok := r.TLVs.Get(0x3FFF)
			testutil.RequireEqual(t, [2]any{v, ok}, [2]any{[]byte{0xAB, 0xCD}, true})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := readGolden(t, tc.name)
			h, p, err := Decode(raw)
			requireNoErr(t, err)
			testutil.RequireEqual(t, h.Status, StatusOK)
			tc.check(t, p)
			again, err := AppendPDU(nil, h.Status, h.Sequence, p)
			requireNoErr(t, err)
			testutil.RequireEqual(t, hex.EncodeToString(again), hex.EncodeToString(raw))
		})
	}
}

// Every response type keeps TLVs through encode and decode, including the
// ones whose body is otherwise fixed or empty; a malformed or unknown TLV
// section does not make the response undecodable.
func TestResponseTLVsEveryType(t *testing.T) {
	tlv := []byte{0x00, 0x1D, 0x00, 0x03, 'h', 'i', 0, 0x3F, 0xFF, 0x00, 0x00}
	var ts TLVs
	requireNoErr(t, ts.SetBytes(tlv))
	resps := []PDU{
		&SubmitSMResp{MessageID: []byte("1"), TLVs: ts},
		&DeliverSMResp{TLVs: ts},
		&DataSMResp{MessageID: []byte("2"), TLVs: ts},
		&SubmitMultiResp{MessageID: []byte("3"), TLVs: ts},
		&QuerySMResp{MessageID: []byte("4"), MessageState: 2, TLVs: ts},
		&BindResp{Mode: BindTransmitter, SystemID: []byte("s"), TLVs: ts},
		&CancelSMResp{TLVs: ts}, &ReplaceSMResp{TLVs: ts}, &UnbindResp{TLVs: ts},
		&EnquireLinkResp{TLVs: ts}, &GenericNack{TLVs: ts},
	}
	for _, p := range resps {
		t.Run(p.CommandID().String(), func(t *testing.T) {
			b, err := AppendPDU(nil, StatusOK, 9, p)
			requireNoErr(t, err)
			_, q, err := Decode(b)
			requireNoErr(t, err)
			testutil.RequireEqual(t, responseTLVs(q).Bytes(), tlv)
			b2, err := AppendPDU(nil, StatusOK, 9, q)
			requireNoErr(t, err)
			testutil.RequireEqual(t, b2, b)
			// A truncated TLV after the mandatory fields: still decodes.
			bad := append(append([]byte(nil), b...), 0x02, 0x04, 0x00)
			bad[3] = byte(len(bad))
			_, q, err = Decode(bad)
			requireNoErr(t, err)
			testutil.RequireEqual(t, q.CommandID(), p.CommandID())
			b3, err := AppendPDU(nil, StatusOK, 9, q)
			requireNoErr(t, err)
			testutil.RequireEqual(t, b3, bad)
			_ = q.String()
		})
	}
}

func responseTLVs(p PDU) TLVs {
	switch p := p.(type) {
	case *SubmitSMResp:
		return p.TLVs
	case *DeliverSMResp:
		return p.TLVs
	case *DataSMResp:
		return p.TLVs
	case *SubmitMultiResp:
		return p.TLVs
	case *QuerySMResp:
		return p.TLVs
	case *BindResp:
		return p.TLVs
	case *CancelSMResp:
		return p.TLVs
	case *ReplaceSMResp:
		return p.TLVs
	case *UnbindResp:
		return p.TLVs
	case *EnquireLinkResp:
		return p.TLVs
	case *GenericNack:
		return p.TLVs
	}
	return TLVs{}
}

// A successful submit_sm_resp with TLVs yields its message id through the
// client.
func TestClientSubmitRespWithTLVs(t *testing.T) {
	_, addr := testServer(t, func(s *Server) {
		s.Handler = HandlerFunc(func(r *Request) {
			resp := &SubmitSMResp{MessageID: []byte("v5-id")}
			_ = resp.TLVs.SetCString(TagAdditionalStatusInfo, "queued")
			_ = resp.TLVs.Set(0x1401, []byte{1, 2, 3})
			r.Respond(StatusOK, resp)
		})
	})
	c := testClient(t, addr, nil)
	id, err := c.Submit(context.Background(), &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("1")}}})
	requireNoErr(t, err)
	testutil.RequireEqual(t, id, "v5-id")
}

// Error responses are written as a bare header (SMPP 3.4 §4.4.2); both the
// bare form and the form with a body decode.
func TestErrorResponseHeaderOnly(t *testing.T) {
	for _, p := range []PDU{&SubmitSMResp{MessageID: []byte("x")}, &BindResp{Mode: BindTransceiver, SystemID: []byte("s")},
		&DeliverSMResp{}, &DataSMResp{}, &QuerySMResp{}} {
		b, err := AppendPDU(nil, StatusInvDstAdr, 3, p)
		requireNoErr(t, err)
		testutil.RequireEqual(t, len(b), HeaderLen)
		h, q, err := Decode(b)
		requireNoErr(t, err)
		testutil.RequireEqual(t, [3]any{h.Length, h.ID, h.Status}, [3]any{uint32(HeaderLen), p.CommandID(), StatusInvDstAdr})
		testutil.RequireEqual(t, q.CommandID(), p.CommandID())
	}
	// A data_sm_resp that says why the delivery failed keeps its TLVs
	// (§4.7.2), and so does a submit_multi_resp listing failed destinations.
	var failed DataSMResp
	requireNoErr(t, failed.TLVs.SetUint8(TagDeliveryFailureReason, 1))
	requireNoErr(t, failed.TLVs.SetCString(TagAdditionalStatusInfo, "no route"))
	b, err := AppendPDU(nil, StatusDeliveryFailure, 4, &failed)
	requireNoErr(t, err)
	_, q, err := Decode(b)
	requireNoErr(t, err)
	reason, ok := q.(*DataSMResp).TLVs.Uint8(TagDeliveryFailureReason)
	testutil.RequireEqual(t, [2]any{reason, ok}, [2]any{uint8(1), true})
	multi := &SubmitMultiResp{Unsuccess: []UnsuccessSME{{Addr: Address{Addr: []byte("15145550100")}, Status: StatusInvDstAdr}}}
	b, err = AppendPDU(nil, StatusInvDstAdr, 5, multi)
	requireNoErr(t, err)
	_, q, err = Decode(b)
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(q.(*SubmitMultiResp).Unsuccess), 1)
	// With a NUL body, as some peers send it.
	withBody, _ := hex.DecodeString("00000011800000040000000b0000000300")
	h, p, err := Decode(withBody)
	requireNoErr(t, err)
	testutil.RequireEqual(t, [2]any{h.Status, len(p.(*SubmitSMResp).MessageID)}, [2]any{StatusInvDstAdr, 0})
	// Requests keep their body whatever the status field says.
	b, err = AppendPDU(nil, StatusInvDstAdr, 3, &EnquireLink{})
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(b), HeaderLen)
	b, err = AppendPDU(nil, 1, 3, &SubmitSM{SM: SM{Dest: Address{Addr: []byte("1")}}})
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(b) > HeaderLen, true)
}
