package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/outbox"
	"github.com/optgate/optgate/gateway/receipt"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

func (g *Gateway) handleReceipt(l *smscLink, r *smpp.Request, d *smpp.DeliverSM) {
	pr, ok := receipt.Parse(d)
	if !ok {
		g.metrics.receipts.WithLabelValues(l.name, "unparsable").Inc()
		if pr.ID == "" && pr.Stat == "" {
			// Flagged a receipt but carrying none (no id, no state in
			// its text or TLVs): read as the MO it may be, so a STOP an
			// SMSC mislabelled is still screened, kept and forwarded.
			g.handleMO(l, r, &d.SM)
			return
		}
		r.Respond(smpp.StatusOK, nil) // half a receipt: nothing to correlate; retrying will not help
		return
	}
	g.receipts.Receive(l.receiptSMSC(), r, pr) // forwardReceipt answers r
}

// forwardReceipt sends a receipt to where its message came from and calls
// answer with the status for the SMSC.
func (g *Gateway) forwardReceipt(t receipt.Target, pr receipt.Report, answer func(smpp.CommandStatus)) {
	state := status.FromReceipt(pr.State)
	reason := status.ReasonNone
	if pr.Err != "" && pr.Err != "000" {
		reason = status.CarrierReason("err:" + pr.Err)
	}
	g.statuses.Update(t.MsgID, state, reason)
	switch Origin(t.Origin) {
	case OriginSMPP:
		account := g.accountAt(t.Account)
		d := upstreamReceipt(t, pr)
		done := func(res smpp.Result) {
			if res.Err == nil {
				g.metrics.forwarded.WithLabelValues("receipt", "smpp").Inc()
				answer(smpp.StatusOK)
				return
			}
			g.spoolDeliver(account, d, answer)
		}
		// This runs on the SMSC session's read goroutine: never wait for
		// the upstream's window here (that would stall the SMSC's
		// responses). Try a free slot now; else wait on a goroutine.
		err := g.smppSrv.DeliverAsync(doneCtx, account.ID(), d, done)
		if errors.Is(err, context.Canceled) { // every receiver's window is full
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := g.smppSrv.DeliverAsync(ctx, account.ID(), d, done); err != nil {
					g.spoolDeliver(account, d, answer)
				}
			}()
			return
		}
		if err != nil {
			g.spoolDeliver(account, d, answer)
		}
	case OriginHTTP:
		err := g.emit(g.tenantAt(t.Tenant), "message.status", map[string]any{
			"id": t.MsgID, "to": t.To, "from": t.From, "state": state.String(), "error": pr.Err, "part": t.Part, "parts": t.Parts,
		})
		if err != nil {
			answer(smpp.StatusXTAppn)
			return
		}
		answer(smpp.StatusOK)
	default:
		answer(smpp.StatusOK)
	}
}

// upstreamReceipt is the deliver_sm receipt for an upstream ESME, with
// our message id in both the text and the TLV form.
func upstreamReceipt(t receipt.Target, pr receipt.Report) *smpp.DeliverSM {
	done := pr.Done
	if done.IsZero() {
		done = time.Now()
	}
	st := pr.State
	if st == 0 {
		st = dlr.StateFromStat(pr.Stat)
	}
	stat := pr.Stat
	if stat == "" {
		stat = st.Stat()
	}
	errField := pr.Err
	if errField == "" {
		errField = "000"
	}
	body := dlr.Format(dlr.Receipt{ID: t.MsgID, Submitted: 1, Delivered: boolInt(st == dlr.Delivered),
		SubmitDate: done, DoneDate: done, Stat: stat, State: st, Err: errField})
	d := &smpp.DeliverSM{SM: smpp.SM{
		Source:       addrOf(t.To, consent.TONInternational, npiISDN),
		Dest:         addrOf(t.From, consent.TONInternational, npiISDN),
		ESMClass:     smpp.ESMClassReceipt,
		ShortMessage: []byte(body),
	}}
	_ = d.TLVs.SetCString(smpp.TagReceiptedMessageID, t.MsgID)
	_ = d.TLVs.SetUint8(smpp.TagMessageState, uint8(st))
	return d
}

// doneCtx is an already cancelled context: a window Acquire with it takes
// a free slot or fails at once.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// spoolDeliver keeps a deliver_sm for an upstream ESME that is not bound
// (or refused it) in the durable outbox, then answers the SMSC.
func (g *Gateway) spoolDeliver(a *Account, d *smpp.DeliverSM, answer func(smpp.CommandStatus)) {
	raw, err := smpp.AppendPDU(nil, 0, 0, d)
	if err != nil {
		answer(smpp.StatusSysErr)
		return
	}
	if err := g.putWork(&outbox.Item{ID: g.ids.next(), Kind: "deliver", Account: a.ID(), Payload: jsonBytes(raw)}); err != nil {
		g.log.Error("cannot spool deliver_sm", "account", a.ID(), "err", err)
		answer(smpp.StatusXTAppn)
		return
	}
	answer(smpp.StatusOK)
}

// deliverSpooled is the outbox worker for spooled deliver_sm.
func (g *Gateway) deliverSpooled(ctx context.Context, it *outbox.Item) error {
	raw, err := unjsonBytes(it.Payload)
	if err != nil {
		return outbox.Permanent(err)
	}
	_, p, err := smpp.Decode(raw)
	if err != nil {
		return outbox.Permanent(err)
	}
	_, _, err = g.smppSrv.Deliver(ctx, it.Account, p)
	if err == nil {
		g.metrics.forwarded.WithLabelValues("spooled", "smpp").Inc()
	}
	return err
}
