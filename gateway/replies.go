package gateway

import (
	"context"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
)

// heldActions releases or fails the held messages a consent change
// decided.
func (g *Gateway) heldActions(t *Tenant, res consent.Result) {
	for _, h := range res.Released {
		g.releaseHeld(t, h)
	}
	for _, h := range res.Dropped {
		g.failHeld(t, h, status.ReasonRecipientOptedOut)
	}
}

// sendReplies sends the engine's replies from the number that received
// the keyword, through the SMSC it came from when it can submit, and
// releases or fails held messages.
func (g *Gateway) sendReplies(l *smscLink, t *Tenant, res consent.Result) {
	for _, rep := range res.Replies {
		g.sendConsentReply(l, t, rep)
	}
	g.heldActions(t, res)
}

// sendConsentReply sends one reply the consent engine stored pending, and
// reports it sent once the carrier accepted it. A reply that fails stays
// pending and is retried by resendPendingReplies.
func (g *Gateway) sendConsentReply(l *smscLink, t *Tenant, rep consent.Reply) {
	if rep.ID != "" {
		if _, busy := g.replying.LoadOrStore(rep.ID, struct{}{}); busy {
			return
		}
	}
	m := &Message{ID: g.ids.next(), Tenant: t, Origin: OriginInternal, Channel: rep.Channel,
		From: rep.Sender, To: rep.Recipient, Text: rep.Text, Received: time.Now(),
		done: func(m *Message, o Outcome) {
			g.record(m, o)
			if o.Kind == Accepted {
				g.metrics.replies.WithLabelValues(string(rep.Kind), rep.Lang).Inc()
				if rep.ID != "" {
					if err := g.consent.ReplySent(rep.ID); err != nil {
						g.log.Warn("reply sent but not recorded as sent", "tenant", t.ID, "err", err)
					}
				}
			} else {
				g.log.Warn("auto-reply not sent, will retry", "tenant", t.ID, "kind", string(rep.Kind), "outcome", o.Kind.String(), "err", o.Err)
			}
			if rep.ID != "" {
				g.replying.Delete(rep.ID)
			}
		}}
	if m.Channel == "" {
		m.Channel = ChannelSMS
	}
	g.sendVia(l, m)
}

// resendPendingReplies sends the replies a crash or a carrier failure left
// pending (older than a grace period, so as not to race the first send),
// and gives up on those older than ten minutes.
func (g *Gateway) resendPendingReplies(now time.Time) {
	err := g.consent.PendingReplies(now.Add(-30*time.Second), func(rep consent.Reply) bool {
		t := g.tenants[rep.Tenant]
		if t == nil || now.Sub(rep.Created) > 10*time.Minute {
			g.log.Error("auto-reply abandoned after retries", "tenant", rep.Tenant, "kind", string(rep.Kind), "created", rep.Created)
			g.metrics.replies.WithLabelValues("abandoned", rep.Lang).Inc()
			_ = g.consent.ReplySent(rep.ID)
			return true
		}
		g.sendConsentReply(nil, t, rep)
		return true
	})
	if err != nil {
		g.log.Warn("pending replies", "err", err)
	}
}

// sendVia sends an internal message through link l when l can submit,
// else through the normal route.
func (g *Gateway) sendVia(l *smscLink, m *Message) {
	if m.Channel != ChannelSMS || l == nil || l.cfg.Mode == "receiver" {
		g.mt.Handle(context.Background(), m)
		return
	}
	g.sendOn(l, m)
}
