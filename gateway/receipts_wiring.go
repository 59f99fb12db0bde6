package gateway

import (
	"log/slog"
	"time"

	"github.com/optgate/optgate/gateway/receipt"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// newReceiptBook builds the receipt book: receipts go to forwardReceipt,
// outcomes to optgate_gateway_receipts_total.
// On a cluster node a receipt it finds nowhere is claimed from the other
// nodes (receiptMiss).
func newReceiptBook(g *Gateway, log *slog.Logger) *receipt.Book {
	var miss func(*receipt.Missed)
	if g.cfg.Cluster != nil {
		g.receiptClaims = make(chan struct{}, maxReceiptClaims)
		miss = g.receiptMiss
	}
	return receipt.New(receipt.Config{Max: 4 << 20, TTL: g.cfg.Receipts.TTL, Grace: g.cfg.Receipts.Grace,
		Names: receiptNames{g}, Deliver: g.forwardReceipt, Log: log.With("component", "receipts"), Miss: miss,
		Count: func(smsc, outcome string) { g.metrics.receipts.WithLabelValues(smsc, outcome).Inc() }})
}

// receiptSMSC is link l as the receipt book knows it.
func (l *smscLink) receiptSMSC() receipt.SMSC { return receipt.SMSC{Name: l.name, IDBase: l.idBase} }

// receiptTargetOf is where the receipts for part of parts of m go.
func receiptTargetOf(m *Message, part, parts int) receipt.Target {
	t := receipt.Target{MsgID: m.ID, Origin: uint8(m.Origin), From: m.From, To: m.To, Part: part, Parts: parts}
	if m.Tenant != nil {
		t.Tenant = m.Tenant.idx
	}
	if m.Account != nil {
		t.Account = m.Account.idx
	}
	return t
}

// forwardSynthetic forwards the receipt optgate makes itself
// (receipt.Synthetic) for message m, sent as from origin, that it will not
// deliver; nobody waits for its answer.
func (g *Gateway) forwardSynthetic(m *Message, origin Origin, state dlr.State, st smpp.CommandStatus) {
	t := receiptTargetOf(m, 1, 1)
	t.Origin = uint8(origin)
	t, r := receipt.Synthetic(t, state, st, time.Now())
	g.forwardReceipt(t, r, func(smpp.CommandStatus) {})
}

// receiptNames lets the receipt store keep tenants and accounts by id.
type receiptNames struct{ g *Gateway }

// Names implements receipt.Names.
func (n receiptNames) Names(tenant, account uint16) (tenantID, accountID string) {
	if t := n.g.tenantAt(tenant); t != nil {
		tenantID = t.ID
	}
	if a := n.g.accountAt(account); a != nil {
		accountID = a.ID()
	}
	return tenantID, accountID
}

// Resolve implements receipt.Names: a receipt for an SMPP message needs
// its tenant and account, one for an HTTP message its tenant.
func (n receiptNames) Resolve(origin uint8, tenantID, accountID string) (tenant, account uint16, ok bool) {
	t := n.g.tenants[tenantID]
	var a *Account
	if accountID != "" {
		a = n.g.accounts[accountID]
	}
	if t != nil {
		tenant = t.idx
	}
	if a != nil {
		account = a.idx
	}
	switch Origin(origin) {
	case OriginSMPP:
		return tenant, account, a != nil && t != nil
	case OriginHTTP:
		return tenant, account, t != nil
	}
	return tenant, account, true
}
