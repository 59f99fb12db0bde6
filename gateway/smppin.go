package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// Account is an upstream ESME account at run time.
type Account struct {
	cfg    AccountConfig
	tenant *Tenant
	smpp   *smpp.Account
	idx    uint16 // 1-based position in Gateway.acctList
}

// ID returns the account's system_id.
func (a *Account) ID() string { return a.cfg.SystemID }

// authenticate checks a bind. An unknown system_id and a wrong password
// are both ESME_RBINDFAIL unless smpp.distinct_bind_errors is set, so a
// guesser cannot tell which system_ids exist. A wrong password names the
// account, so the failure counts toward its lock (smpp.Server).
func (g *Gateway) authenticate(_ context.Context, b smpp.BindInfo) (*smpp.Account, smpp.CommandStatus) {
	a := g.accounts[b.SystemID]
	if a == nil {
		if g.cfg.SMPP.DistinctBindErrors {
			return nil, smpp.StatusInvSysID
		}
		return nil, smpp.StatusBindFail
	}
	if !constantTimeEqual(a.cfg.Password, b.Password) {
		if g.cfg.SMPP.DistinctBindErrors {
			return a.smpp, smpp.StatusInvPaswd
		}
		return a.smpp, smpp.StatusBindFail
	}
	return a.smpp, smpp.StatusOK
}

// upstreamAddrs reads a platform's source and destination into m: the
// destination in the tenant's region (smppDest), the source through the
// sender-ownership rule (senderFor). A refusal Finishes m (ESME_RINVDSTADR
// or ESME_RINVSRCADR, the Outcome's error saying why) and returns false.
// A source (TON 0, 1 or 6) that is one of our numbers' digits allocates nothing.
func (g *Gateway) upstreamAddrs(m *Message, src, dst smpp.Address) bool {
	to, err := g.smppDest(m.Tenant, dst)
	if err != nil {
		m.From, m.To = string(src.Addr), string(dst.Addr)
		reason := ReasonInvalidNumber
		if errors.Is(err, consent.ErrAmbiguousNumber) {
			reason = ReasonAmbiguousNumber
		}
		m.Finish(Outcome{Kind: Rejected, Reason: reason, Err: err})
		return false
	}
	m.To = to
	from := ""
	if ourForm(src.TON) && len(src.Addr) > 0 {
		if n, ok := g.ourNumbers[string(src.Addr)]; ok {
			from, err = g.senderFor(m.Tenant, n, consent.TONInternational, src.NPI)
		}
	}
	if from == "" && err == nil {
		from, err = g.senderFor(m.Tenant, string(src.Addr), src.TON, src.NPI)
	}
	if err != nil {
		m.From = string(src.Addr)
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonInvalidSender, Err: fmt.Errorf("source (TON %d, NPI %d): %w", src.TON, src.NPI, err)})
		return false
	}
	m.From = from
	return true
}

// serveUpstream handles requests from platforms bound to our SMPP server.
func (g *Gateway) serveUpstream(r *smpp.Request) {
	acct, _ := smpp.AccountOf(r.Conn).Data.(*Account)
	if acct == nil {
		r.Respond(smpp.StatusInvBndSts, nil)
		return
	}
	switch p := r.PDU.(type) {
	case *smpp.SubmitSM:
		in := upstreamMT{src: p.Source, dst: p.Dest, body: p.ShortMessage, dc: p.DataCoding, esm: p.ESMClass, rd: p.RegisteredDelivery}
		if p.TLVs.Len() > 0 {
			in.tlvs = p.TLVs.Bytes() // message_payload, sar_*, ports: relayed as sent
		}
		g.submitUpstream(r, acct, in)
	case *smpp.DataSM:
		g.submitUpstream(r, acct, dataSMMT(p))
	case *smpp.QuerySM:
		st, ok := g.statuses.Get(string(p.MessageID))
		if !ok || st.Tenant != acct.tenant.ID {
			r.Respond(smpp.StatusQueryFail, nil)
			return
		}
		r.Respond(smpp.StatusOK, &smpp.QuerySMResp{MessageID: p.MessageID, MessageState: uint8(st.State.MessageState())})
	case *smpp.CancelSM:
		r.Respond(smpp.StatusCancelFail, nil)
	case *smpp.ReplaceSM:
		r.Respond(smpp.StatusReplaceFail, nil)
	case *smpp.SubmitMulti:
		// Every destination would need its own consent answer; platforms
		// get a clear refusal and send submit_sm per recipient.
		r.Respond(smpp.StatusSubmitFail, nil)
	default:
		r.Respond(smpp.StatusInvCmdID, nil)
	}
}

// upstreamMT is what a submit_sm or a data_sm from a platform carries
// into an MT message.
type upstreamMT struct {
	src, dst    smpp.Address
	body        []byte // short_message (the payload, for a short data_sm)
	tlvs        []byte // relayed as sent; nil for none
	dc, esm, rd uint8  // data_coding, esm_class, registered_delivery
}

// dataSMMT reads a data_sm: a payload that fits short_message becomes it
// (the other TLVs relayed as sent), a longer one is relayed as
// message_payload.
func dataSMMT(p *smpp.DataSM) upstreamMT {
	pl, _ := p.TLVs.MessagePayload()
	in := upstreamMT{src: p.Source, dst: p.Dest, body: append([]byte{}, pl...), dc: p.DataCoding, esm: p.ESMClass, rd: p.RegisteredDelivery}
	if len(in.body) > smpp.MaxShortMessage {
		in.tlvs = p.TLVs.Bytes() // relayed as message_payload
		in.body = []byte{}
	} else if p.TLVs.Len() > 0 {
		// A short payload becomes short_message; the other TLVs
		// (ports, SAR, user_message_reference...) are relayed as sent.
		rest := p.TLVs
		rest.Del(smpp.TagMessagePayload)
		if rest.Len() > 0 {
			in.tlvs = append([]byte(nil), rest.Bytes()...)
		}
	}
	return in
}

// submitUpstream is the one path of a platform's submit_sm and data_sm:
// the MT message is built, its addresses read (a refusal is answered),
// the tenant's channel choice applied, and it goes down the MT chain,
// which answers the platform through answerSubmit.
func (g *Gateway) submitUpstream(r *smpp.Request, acct *Account, in upstreamMT) {
	m := &Message{
		ID: g.ids.next(), Tenant: acct.tenant, Account: acct, Origin: OriginSMPP, Channel: ChannelSMS,
		Body: in.body, TLVs: in.tlvs, DataCoding: in.dc, ESMClass: in.esm & smpp.ESMClassUDHI,
		RegisteredDelivery: in.rd, Received: time.Now(), Bulk: acct.cfg.Bulk,
	}
	if acct.cfg.Marketing {
		m.Category = consent.CategoryMarketing
	}
	if m.Body == nil {
		m.Body = []byte{}
	}
	m.req = r
	m.done = g.answerSubmitFn
	if !g.upstreamAddrs(m, in.src, in.dst) {
		return
	}
	if g.wa != nil && acct.cfg.Channel != "sms" {
		g.smppChannel(m) // the tenant's channel choice; nothing for an SMS-only gateway
	}
	g.mt.Handle(context.Background(), m)
}

// answerSubmit answers an upstream submit_sm/data_sm from the outcome.
func (g *Gateway) answerSubmit(m *Message, o Outcome) {
	g.record(m, o)
	r := m.req
	respond := func(st smpp.CommandStatus, id string) {
		if r.Header.ID == smpp.DataSMID {
			r.Respond(st, &smpp.DataSMResp{MessageID: []byte(id)})
			return
		}
		one := &struct {
			resp smpp.SubmitSMResp
			id   [24]byte
		}{} // one allocation for the response and its id
		one.resp.MessageID = append(one.id[:0], id...)
		r.Respond(st, &one.resp)
	}
	st := smppStatus(m.Account, o)
	switch {
	case st == smpp.StatusOK:
		respond(smpp.StatusOK, m.ID)
	case o.Kind == Blocked && m.Account != nil && m.Account.cfg.Reject == "receipt":
		respond(smpp.StatusOK, m.ID)
		go g.rejectReceipt(m, st)
	default:
		respond(st, "")
	}
}

// rejectReceipt sends the upstream a receipt stat:REJECTD, err: the
// status st it would have been refused with, for a blocked message
// accepted under reject: receipt.
func (g *Gateway) rejectReceipt(m *Message, st smpp.CommandStatus) {
	g.forwardSynthetic(m, OriginSMPP, dlr.Rejected, st)
}
