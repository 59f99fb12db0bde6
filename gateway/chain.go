package gateway

import "context"

// Handler processes an outbound message. It must end in exactly one call
// to m.Finish, either before it returns or later from another goroutine
// (a send completes when the carrier answers). This continuation style,
// rather than returning a status, keeps one goroutine per connection
// instead of one per message in flight; it is the one place the house
// style's Handle(ctx, m) (Status, error) does not fit.
type Handler interface {
	Handle(ctx context.Context, m *Message)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, m *Message)

// Handle calls f(ctx, m).
func (f HandlerFunc) Handle(ctx context.Context, m *Message) { f(ctx, m) }

// Middleware wraps a Handler.
type Middleware func(next Handler) Handler

// mtChain is the outbound pipeline, outermost first. The order is the
// contract:
//
//  1. recoverer: a panic anywhere below answers Failed (ESME_RSYSERR / 500)
//     and counts optgate_panics_total; the gateway keeps running.
//  2. validate: E.164 recipient, a sender the tenant owns, encoding and
//     length; a violation Finishes Rejected with a specific reason.
//  3. screen: the consent check against the suppression index. An opted-out
//     recipient Finishes Blocked before any carrier sees the message; an
//     attestation tenant's unknown recipient is Held (prompt sent).
//  4. footer: the localised opt-out footer for bulk messages and the
//     tenant's maximum length, after the footer.
//  5. window: WhatsApp's 24-hour rule for free-form messages.
//  6. queue: for ack: store accounts, the message is made durable first and
//     Finishes Queued; the queue's sender re-enters at screen (consent is
//     checked again just before sending, a STOP that came while it waited
//     wins), then send, under a recoverer (the afterQueue entry point).
//     The footer and window stages already ran before it was queued.
//  7. send: route by destination prefix to an SMSC group (failover between
//     its SMSCs) or to WhatsApp, map the carrier's id to ours, Finish
//     Accepted or Failed.
//
// Every stage either calls next or Finishes the message; none does both.
//
// The chain has three entry points, all built here, once: full (a new
// message), afterScreen (a held message released by the recipient's YES:
// footer onwards) and afterQueue (a message the queue sends: screen again,
// then send).
func (g *Gateway) mtChain() (full, afterScreen, afterQueue Handler) {
	chain := []Middleware{
		g.recoverer,
		g.validate,
		g.screen,
		g.footer,
		g.waWindow,
		g.queue,
	}
	const screenAt = 2 // index of g.screen: held messages re-enter after it
	h := Handler(HandlerFunc(g.send))
	for i := len(chain) - 1; i >= 0; i-- {
		h = chain[i](h)
		if i == screenAt+1 {
			afterScreen = g.recoverer(h)
		}
	}
	afterQueue = g.recoverer(g.screen(HandlerFunc(g.send)))
	return h, afterScreen, afterQueue
}
