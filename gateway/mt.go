package gateway

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/optgate/optgate/internal/e164"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
)

func (g *Gateway) recoverer(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) {
		defer func() {
			if v := recover(); v != nil {
				g.metrics.panics.Inc()
				g.log.Error("panic in MT chain", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				m.Finish(Outcome{Kind: Failed, Reason: ReasonInternal, Err: fmt.Errorf("internal error")})
			}
		}()
		next.Handle(ctx, m)
	})
}

func (g *Gateway) validate(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) {
		if !e164.Valid(m.To) {
			m.Finish(Outcome{Kind: Rejected, Reason: ReasonInvalidNumber,
				Err: fmt.Errorf("recipient %q is not an E.164 number", m.To)})
			return
		}
		if m.From == "" {
			m.Finish(Outcome{Kind: Rejected, Reason: ReasonInvalidSender, Err: errors.New("no sender number")})
			return
		}
		// The sender must be the tenant's (senderFor): consent is scoped by
		// sender, and a tenant must not send as another. SMPP and HTTP read
		// their source forms with senderFor before the chain; this holds
		// the rule for every way in.
		if m.Channel == ChannelSMS && m.Origin != OriginInternal {
			if _, err := g.senderFor(m.Tenant, m.From, httpSenderTON(m.From), 0); err != nil {
				m.Finish(Outcome{Kind: Rejected, Reason: ReasonInvalidSender, Err: err})
				return
			}
		}
		if m.Body != nil {
			if len(m.Body) > smpp.MaxShortMessage && len(m.TLVs) == 0 {
				m.Finish(Outcome{Kind: Rejected, Reason: ReasonTooLong, Err: errors.New("short_message longer than 254 octets")})
				return
			}
			if len(m.TLVs) > 0 && len(m.Body) == 0 {
				// A relayed message_payload is not re-encoded, so its
				// length is checked in octets: the tenant's maximum in
				// characters at two octets each (UCS-2), the most a text
				// within it can take.
				maxLen := m.Tenant.cfg.MaxLength
				if maxLen <= 0 {
					maxLen = consent.DefaultMaxLength
				}
				var tl smpp.TLVs
				if tl.SetBytes(m.TLVs) == nil {
					if pl, ok := tl.MessagePayload(); ok && len(pl) > 2*maxLen {
						m.Finish(Outcome{Kind: Rejected, Reason: ReasonTooLong,
							Err: fmt.Errorf("message_payload of %d octets is over the tenant's maximum (%d characters)", len(pl), maxLen)})
						return
					}
				}
			}
		} else {
			if !utf8.ValidString(m.Text) {
				m.Finish(Outcome{Kind: Rejected, Reason: ReasonBadEncoding, Err: errors.New("text is not valid UTF-8")})
				return
			}
			if m.Text == "" && m.WA == nil {
				m.Finish(Outcome{Kind: Rejected, Reason: ReasonBadEncoding, Err: errors.New("empty text")})
				return
			}
		}
		next.Handle(ctx, m)
	})
}

func (g *Gateway) screen(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) {
		if m.Origin == OriginInternal {
			next.Handle(ctx, m) // confirmations and prompts go to everyone
			return
		}
		if f := g.follower; f != nil && !f.Current(g.cfg.Cluster.MaxLag) {
			// Fail closed (cluster.go): a STOP made on another node
			// may not be applied here yet.
			m.Finish(Outcome{Kind: Failed, Reason: ReasonStoreUnavailable, Retry: true, Err: ErrClusterStale})
			return
		}
		d, err := g.consent.Check(m.Tenant.ID, m.Channel, m.From, m.To, m.Category)
		if err != nil {
			// Fail closed: a message we cannot screen is not sent.
			g.log.Error("consent check failed", "tenant", m.Tenant.ID, "err", err)
			m.Finish(Outcome{Kind: Failed, Reason: ReasonInternal, Retry: true, Err: err})
			return
		}
		if d.Action != consent.ActionBlock && !g.storesOK() {
			// diskfault.go: while a store refuses writes, the memory
			// index still refuses an opted-out recipient for good (the
			// Block below); anything else is refused for now, to be
			// retried once the stores take writes again.
			m.Finish(Outcome{Kind: Failed, Reason: ReasonStoreUnavailable, Retry: true, Err: ErrStoreUnhealthy})
			return
		}
		switch d.Action {
		case consent.ActionSend:
			next.Handle(ctx, m)
		case consent.ActionBlock:
			g.metrics.blocked.WithLabelValues(m.Tenant.ID, d.Reason.String()).Inc()
			m.Finish(Outcome{Kind: Blocked, Reason: status.FromConsent(d.Reason), Err: fmt.Errorf("recipient blocked: %s", d.Reason)})
		case consent.ActionHold:
			g.hold(ctx, m, d)
		case consent.ActionDisclaimFirst:
			g.disclaim(ctx, m)
			next.Handle(ctx, m)
		default:
			m.Finish(Outcome{Kind: Failed, Reason: ReasonInternal, Err: fmt.Errorf("unknown consent action %v", d.Action)})
		}
	})
}

func (g *Gateway) footer(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, m *Message) {
		if m.Origin == OriginInternal || m.Channel != ChannelSMS {
			next.Handle(ctx, m)
			return
		}
		if !m.Bulk && m.Body != nil || len(m.TLVs) > 0 && len(m.Body) == 0 {
			// Relayed as is: the platform owns its text (and a
			// message_payload body is passed through untouched).
			next.Handle(ctx, m)
			return
		}
		text := m.Text
		if m.Body != nil {
			if m.ESMClass&smpp.ESMClassUDHI != 0 {
				// A part of a message the platform split itself: the
				// footer belongs to the last part, which we cannot know;
				// relay unchanged.
				next.Handle(ctx, m)
				return
			}
			t, err := coding.Decode(coding.DataCoding(m.DataCoding), m.Body)
			if err != nil {
				next.Handle(ctx, m) // binary content: nothing to add
				return
			}
			text = t
		}
		out, err := g.consent.ApplyFooter(m.Tenant.ID, m.Tenant.cfg.DefaultLang, text, m.Bulk)
		if err != nil {
			var tl *consent.TooLongError
			if errors.As(err, &tl) {
				m.Finish(Outcome{Kind: Rejected, Reason: ReasonTooLong, Err: err})
				return
			}
			m.Finish(Outcome{Kind: Rejected, Reason: ReasonBadEncoding, Err: err})
			return
		}
		if out != text || m.Body == nil {
			m.Text, m.Body, m.ESMClass = out, nil, m.ESMClass&^smpp.ESMClassUDHI
		}
		next.Handle(ctx, m)
	})
}

// send routes the message to its carrier.
func (g *Gateway) send(ctx context.Context, m *Message) {
	if m.Channel == ChannelWhatsApp {
		g.sendWhatsApp(ctx, m)
		return
	}
	l, err := g.pickLink(m.To)
	if err != nil {
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonNoRoute, Err: err})
		return
	}
	g.sendOn(l, m)
}

// sendOn submits m to link l: one submit_sm per part, accepted when every
// part is.
func (g *Gateway) sendOn(l *smscLink, m *Message) {
	pdus, err := g.buildSubmits(l, m)
	if err != nil {
		m.Finish(Outcome{Kind: Rejected, Reason: ReasonTooLong, Err: err})
		return
	}
	start := time.Now()
	// The SMSC link's request expiry bounds each submit (its window
	// expires requests); no per-message context or timer is needed.
	ctx := context.Background()
	if len(pdus) == 1 {
		l.client.SubmitAsync(ctx, pdus[0], func(id string, err error) {
			l.latency.Observe(time.Since(start).Seconds())
			g.submitted(l, m, []string{id}, err, err != nil && failoverable(err))
		})
		return
	}
	// Several parts: accepted when every part is.
	ids := make([]string, len(pdus))
	errs := make([]error, len(pdus))
	var mu sync.Mutex
	left := len(pdus)
	for i, p := range pdus {
		l.client.SubmitAsync(ctx, p, func(id string, err error) {
			mu.Lock()
			ids[i], errs[i] = id, err
			left--
			last := left == 0
			mu.Unlock()
			if last {
				// Another SMSC only if no part can be at this one.
				again := true
				for _, e := range errs {
					again = again && e != nil && failoverable(e)
				}
				l.latency.Observe(time.Since(start).Seconds())
				g.submitted(l, m, ids, errors.Join(errs...), again)
			}
		})
	}
}

// submitted records the carrier's answer and finishes the message. A
// message that every part of failed on l in a way that certainly left
// nothing at the SMSC (failoverable) is sent to the next bound SMSC of its
// route first; once none is left the platform gets ESME_RX_T_APPN.
// again says whether the failure allows that: false when some part was
// accepted or may have been (resending would duplicate it).
func (g *Gateway) submitted(l *smscLink, m *Message, ids []string, err error, again bool) {
	if err != nil {
		retry := again
		if retry {
			if l.idx < 64 {
				m.tried |= 1 << l.idx
			}
			if next := g.nextLink(m.To, m.tried); next != nil {
				g.log.Debug("submit refused, failing over", "smsc", l.name, "next", next.name, "err", err)
				g.sendOn(next, m)
				return
			}
		}
		o := Outcome{Kind: Failed, Reason: ReasonCarrier, Err: err, SMSC: l.name}
		if retry || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, smpp.ErrNotBound) || errors.Is(err, smpp.ErrTimeout) {
			o.Retry = true // nothing at the SMSC, or no answer: ESME_RX_T_APPN
		} else {
			// The SMSC's own status, relayed to the platform
			// (ESME_RSYSERR for a failure without one).
			o.CarrierCode = uint32(smpp.StatusOf(err))
		}
		m.Finish(o)
		return
	}
	// Answer first, then map the ids: a receipt that overtook the answer
	// is parked and delivered by add, so the platform never sees a
	// receipt for an id it has not been told yet.
	m.Finish(Outcome{Kind: Accepted, SMSC: l.name, SMSCID: ids[0], Parts: len(ids)})
	if m.RegisteredDelivery&smpp.RegisteredDeliveryMask == 0 {
		return
	}
	for i, id := range ids {
		if id != "" {
			g.receipts.Add(l.receiptSMSC(), id, receiptTargetOf(m, i+1, len(ids)))
		}
	}
}

// smppAddrMax is the room kept for a source or destination address (SMPP 3.4:
// 21 octets with the NUL); a longer one is appended elsewhere and refused by
// the encoder.
const smppAddrMax = 21

// buildSubmits turns a message into submit_sm PDUs for link l.
func (g *Gateway) buildSubmits(l *smscLink, m *Message) ([]*smpp.SubmitSM, error) {
	if m.Body != nil {
		one := &struct {
			sm   smpp.SubmitSM
			arr  [1]*smpp.SubmitSM
			addr [2 * smppAddrMax]byte
		}{} // one allocation for the PDU, its slice and its addresses
		sm := &one.sm
		sm.Source = addrInto(one.addr[:0:smppAddrMax], m.From, l.srcTON, l.srcNPI)
		sm.Dest = smpp.Address{TON: consent.TONInternational, NPI: npiISDN, Addr: append(one.addr[smppAddrMax:smppAddrMax], m.To[1:]...)}
		sm.RegisteredDelivery = m.RegisteredDelivery
		sm.ESMClass = m.ESMClass
		sm.DataCoding = m.DataCoding
		sm.ShortMessage = m.Body
		if len(m.TLVs) > 0 {
			if err := sm.TLVs.SetBytes(m.TLVs); err != nil {
				return nil, err
			}
		}
		one.arr[0] = sm
		return one.arr[:], nil
	}
	base := smpp.SubmitSM{SM: smpp.SM{
		Source:             addrInto(nil, m.From, l.srcTON, l.srcNPI),
		Dest:               smpp.Address{TON: consent.TONInternational, NPI: npiISDN, Addr: []byte(m.To[1:])},
		RegisteredDelivery: m.RegisteredDelivery,
	}}
	opt := coding.SplitOptions{Method: coding.UDH8, Ref: uint16(g.ref.Add(1))}
	if l.dc0 != coding.GSM7 {
		// This SMSC reads data_coding 0 as IA5 or Latin-1: write text
		// in that alphabet under data_coding 0 when it can be, else UCS-2.
		opt.Coding = l.dc0
	}
	parts, err := coding.Split(m.Text, opt)
	if err != nil && opt.Coding != coding.GSM7 && errors.Is(err, coding.ErrUnrepresentable) {
		opt.Coding = coding.UCS2
		parts, err = coding.Split(m.Text, opt)
	}
	if err != nil {
		return nil, err
	}
	out := make([]*smpp.SubmitSM, len(parts))
	for i, p := range parts {
		sm := base
		sm.DataCoding = uint8(p.Coding)
		if p.Coding == l.dc0 {
			sm.DataCoding = uint8(coding.GSM7) // data_coding 0 in this SMSC's meaning
		}
		sm.ShortMessage = p.Data
		if p.UDHI {
			sm.ESMClass |= smpp.ESMClassUDHI
		}
		out[i] = &sm
	}
	return out, nil
}
