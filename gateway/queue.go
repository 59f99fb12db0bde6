package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/optgate/optgate/gateway/outbox"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// queue makes messages of ack: store accounts durable before they are
// acknowledged: the upstream gets submit_sm_resp (Queued) once the message
// is synced in the gateway store, and the outbox worker sends it, retrying
// through SMSC outages with back-off until it is accepted or expires.
// Messages of ack: relay accounts go straight on: the upstream is answered
// when the SMSC accepted, so a crash loses nothing the platform was told.
func (g *Gateway) queue(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) {
		if m.Account == nil || m.Account.cfg.Ack != "store" || m.Origin != OriginSMPP {
			next.Handle(ctx, m)
			return
		}
		p, err := heldPayloadOf(m)
		if err == nil {
			err = g.putWork(&outbox.Item{ID: m.ID, Kind: "mt", Tenant: m.Tenant.ID, Account: m.Account.ID(), Payload: p})
		}
		if err != nil {
			m.Finish(Outcome{Kind: Failed, Reason: ReasonInternal, Retry: true, Err: fmt.Errorf("%w: %w", errNotQueued, err)})
			return
		}
		m.Finish(Outcome{Kind: Queued})
	})
}

// sendQueued is the outbox's asynchronous sender for queued MT messages:
// it starts one send and returns; done gets the result once the SMSC
// answered, so the number in flight is bounded by the outbox (the sum of
// the SMSC windows), not by a worker count times the carrier's latency.
// Temporary failures are retried by the outbox; permanent ones end the
// message with a failure receipt. The item is removed only after the SMSC
// accepted it, so a crash in between resends it (at least once).
func (g *Gateway) sendQueued(ctx context.Context, it *outbox.Item, done func(error)) {
	p, err := decodeHeld(it.Payload)
	if err != nil {
		done(outbox.Permanent(err))
		return
	}
	t := g.tenants[it.Tenant]
	if t == nil {
		done(outbox.Permanent(fmt.Errorf("unknown tenant %q", it.Tenant)))
		return
	}
	m := p.message(g, t)
	m.Origin, m.Received = OriginSMPP, it.Created
	m.done = func(m *Message, o Outcome) {
		g.record(m, o)
		switch o.Kind {
		case Accepted:
			done(nil)
			return
		case Failed:
			if queueRetryable(o) {
				done(fmt.Errorf("temporary: %w", o.Err))
				return
			}
		}
		// This may run on an SMSC session's read goroutine: the receipt
		// (which may be spooled to disk) goes on a goroutine of its own.
		go g.queuedExpiredMsg(m, o)
		done(nil)
	}
	// A queued message re-checks consent just before it is sent: the
	// recipient may have said STOP while it waited.
	g.afterQueue.Handle(ctx, m) // screen again, then send (chain.go)
}

// queueRetryable reports whether a queued message that failed is worth
// sending again later. Unlike a relayed message's failover, a queued
// message is retried even when the outcome is unknown (sent, unanswered):
// ack: store is at least once.
func queueRetryable(o Outcome) bool {
	return smppStatus(nil, o).Temporary() || errors.Is(o.Err, context.DeadlineExceeded) || errors.Is(o.Err, smpp.ErrNotBound) ||
		errors.Is(o.Err, smpp.ErrTimeout) || errors.Is(o.Err, smpp.ErrClosed) || errors.Is(o.Err, smpp.ErrClientClosed)
}

// queuedExpired fails a message that stayed queued past queue.max_age.
func (g *Gateway) queuedExpired(it *outbox.Item) {
	p, err := decodeHeld(it.Payload)
	if err != nil {
		return
	}
	t := g.tenants[it.Tenant]
	if t == nil {
		return
	}
	m := p.message(g, t)
	m.Origin = OriginSMPP
	g.queuedExpiredMsg(m, Outcome{Kind: Failed, Reason: status.ReasonExpired})
}

// queuedExpiredMsg tells the upstream, by a receipt, that a message it was
// told is queued will not be delivered.
func (g *Gateway) queuedExpiredMsg(m *Message, o Outcome) {
	if m.Account == nil {
		return
	}
	state := dlr.Undeliverable
	if o.Kind == Blocked {
		state = dlr.Rejected
	}
	if o.Reason == status.ReasonExpired {
		state = dlr.Expired
	}
	g.forwardSynthetic(m, OriginSMPP, state, smppStatus(m.Account, o))
}
