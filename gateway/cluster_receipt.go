package gateway

import (
	"context"
	"encoding/json"
	"time"

	"github.com/optgate/optgate/cluster"
	"github.com/optgate/optgate/gateway/receipt"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// Receipts across nodes (cluster/doc.go, "Receipts: ownership by claim"):
// a receipt this node's book finds nowhere is claimed from the other
// nodes; the node whose book holds its mapping forwards it as its own
// (forwardReceipt) and answers taken once it is durably forwarded. Nothing
// here runs on a single node: the book's Miss is nil there.

// maxReceiptClaims bounds this node's claims in flight; past it a receipt
// is answered ESME_RX_T_APPN (the SMSC sends it again).
const maxReceiptClaims = 4096

// A node asked about a receipt it does not know looks again for the
// mapping an Add may still bring (the receipt beat the submit_sm_resp)
// after claimPollMin, then twice as long each time up to claimPollMax,
// until claimWait: about ten looks in a second, so that many claims of
// receipts nobody knows do not contend for the book's lock with the MT
// path's Add.
const (
	claimPollMin = 5 * time.Millisecond
	claimPollMax = 200 * time.Millisecond
)

// receiptClaim is a claim's payload: the receipt as the SMSC sent it,
// which carries no phone number.
type receiptClaim struct {
	SMSC  string    `json:"smsc"`
	ID    string    `json:"id"`
	State dlr.State `json:"state"`
	Stat  string    `json:"stat,omitempty"`
	Err   string    `json:"err,omitempty"`
	Done  time.Time `json:"done,omitzero"`
}

// receiptMiss is the book's Miss on a cluster node: it claims m from the
// other nodes on a goroutine of its own (the book calls it on an SMSC's
// read goroutine or a store lookup worker) and settles it by the answer.
func (g *Gateway) receiptMiss(m *receipt.Missed) {
	conn := g.clusterConn
	if conn == nil {
		m.Retry() // not joined yet: nobody to ask
		return
	}
	select {
	case g.receiptClaims <- struct{}{}:
	default:
		m.Retry()
		return
	}
	data, err := json.Marshal(receiptClaim{SMSC: m.SMSC.Name, ID: m.Report.ID, State: m.Report.State,
		Stat: m.Report.Stat, Err: m.Report.Err, Done: m.Report.Done})
	if err != nil {
		<-g.receiptClaims
		m.Retry()
		return
	}
	go func() {
		defer func() { <-g.receiptClaims }()
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Cluster.AckTimeout)
		defer cancel()
		res, err := conn.Claim(ctx, data)
		switch res {
		case cluster.ClaimTaken:
			m.Taken()
		case cluster.ClaimNobody:
			m.Nobody()
		default:
			if err != nil {
				g.log.Warn("receipt claim unanswered; the SMSC is asked to send it again", "smsc", m.SMSC.Name, "err", err)
			}
			m.Retry()
		}
	}()
}

// claimWait is how long a node asked about a receipt it does not know
// waits for the Add that may bring its mapping: the grace period, at most
// half of cluster.ack_timeout (the asking node's patience).
func (g *Gateway) claimWait() time.Duration {
	return min(g.cfg.Receipts.Grace, g.cfg.Cluster.AckTimeout/2)
}

// serveReceiptClaim answers another node's claim (cluster.ClaimFunc): a
// receipt whose mapping this node's book has, in memory or in the store,
// or gets within claimWait, is forwarded here and answered taken once
// forwardReceipt says ESME_ROK (delivered, spooled or handed to the
// webhook), failed otherwise; else not mine.
func (g *Gateway) serveReceiptClaim(data []byte, reply func(cluster.Answer)) {
	var c receiptClaim
	if err := json.Unmarshal(data, &c); err != nil {
		reply(cluster.AnswerNotMine)
		return
	}
	l := g.links[c.SMSC]
	if l == nil {
		reply(cluster.AnswerNotMine)
		return
	}
	r := receipt.Report{ID: c.ID, State: c.State, Stat: c.Stat, Err: c.Err, Done: c.Done}
	answer := func(st smpp.CommandStatus) {
		if st == smpp.StatusOK {
			reply(cluster.AnswerTaken)
			return
		}
		reply(cluster.AnswerFailed)
	}
	deadline := time.Now().Add(g.claimWait())
	pause := claimPollMin
	for store := true; ; store = false {
		found, err := g.receipts.Claim(l.receiptSMSC(), r, answer, store)
		switch {
		case err != nil:
			reply(cluster.AnswerFailed)
			return
		case found:
			return // answer replies
		case !time.Now().Before(deadline):
			reply(cluster.AnswerNotMine)
			return
		}
		t := time.NewTimer(min(pause, time.Until(deadline)))
		pause = min(2*pause, claimPollMax)
		select {
		case <-t.C:
		case <-g.stop:
			t.Stop()
			reply(cluster.AnswerFailed)
			return
		}
	}
}
