package consent

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// ErrHoldLimit is returned by Hold when the recipient already has the
// tenant's MaxHeld messages waiting.
var ErrHoldLimit = errors.New("consent: too many held messages for recipient")

// maxPayload bounds a held message's payload. It keeps every stored value
// well below Badger's ValueThreshold (1 MiB), so held messages live in the
// synced WAL like everything else (see the durability comment in Open).
const maxPayload = 512 << 10

// takeHeld removes every held message of (channel, recipient) in the change
// and appends them to out.
func (c *change) takeHeld(ch, rcpt string, out *[]HeldMessage) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = heldPrefix(c.t.cfg.ID, ch, rcpt)
	it := c.txn.NewIterator(o)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		h := HeldMessage{Tenant: c.t.cfg.ID, Channel: ch, Recipient: rcpt, ID: string(item.Key()[len(o.Prefix):])}
		if err := item.Value(func(v []byte) error { return unmarshalHeld(v, &h) }); err != nil {
			return fmt.Errorf("%w: held message: %v", ErrStorage, err)
		}
		c.del(item.KeyCopy(nil))
		c.del(expiryKey(h.ExpiresAt.UnixNano(), c.t.cfg.ID, ch, rcpt, h.ID))
		*out = append(*out, h)
	}
	return nil
}

func (c *change) countHeld(ch, rcpt string) int {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = heldPrefix(c.t.cfg.ID, ch, rcpt)
	it := c.txn.NewIterator(o)
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		n++
	}
	return n
}

// HoldResult is the answer of Hold.
type HoldResult struct {
	// Held is true when the message is stored and waits for the
	// recipient's YES (it then comes back in Result.Released, or in
	// Result.Dropped after STOP, or as an EventHeldExpired from Sweep).
	Held bool
	// Decision is the current decision; when Held is false the gateway
	// acts on it (send when Allow, refuse otherwise).
	Decision Decision
	// Prompt is the attestation prompt to send now, before anything else;
	// nil when one was already sent. Like a confirmation it is stored
	// pending, in the same synced change as the hold, until ReplySent
	// reports it sent, so a crash before the send leaves it in
	// PendingReplies.
	Prompt *Reply
}

// Hold stores an outbound message for an attestation tenant whose recipient
// has not opted in (Check returned ActionHold). The first Hold for an
// unknown recipient moves it to pending, records the evidence and returns
// the prompt to send; later ones only add the message. Holding the same ID
// twice is harmless. The message is stored and synced before Hold returns.
func (s *Store) Hold(ctx context.Context, m HeldMessage) (HoldResult, error) {
	if err := s.begin(); err != nil {
		return HoldResult{}, err
	}
	defer s.end()
	t, err := s.tenant(m.Tenant)
	if err != nil {
		return HoldResult{}, err
	}
	if err := errors.Join(checkChannel(m.Channel), checkSender(m.Sender), ctxErr(ctx)); err != nil {
		return HoldResult{}, err
	}
	if m.ID == "" {
		return HoldResult{}, fmt.Errorf("%w: held message ID is required", ErrInvalidInput)
	}
	if err := checkField("held message ID", m.ID, 128); err != nil {
		return HoldResult{}, err
	}
	limit := maxPayload
	if s.cfg.Replicator != nil {
		limit = maxReplicatedPayload
	}
	if len(m.Payload) > limit {
		return HoldResult{}, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrInvalidInput, len(m.Payload), limit)
	}
	rcpt, err := t.recipient(m.Channel, m.Recipient)
	if err != nil {
		return HoldResult{}, err
	}
	sender := senderKey(m.Sender)
	mu := &s.stripes[s.stripe(t.cfg.ID, rcpt)]
	mu.Lock()
	defer mu.Unlock()
	c := s.newChange(t)
	defer c.discard()
	rt, err := c.rec(m.Channel, rcpt, "")
	if err != nil {
		return HoldResult{}, err
	}
	rs, err := c.rec(m.Channel, rcpt, sender)
	if err != nil {
		return HoldResult{}, err
	}
	d := t.decide(rs.r.packed(), rs.existed, rt.r.packed(), rt.existed, CategoryTransactional)
	if t.cfg.Attestation != ModeAttestation || d.Action != ActionHold {
		return HoldResult{Decision: d}, nil
	}
	hk := heldKey(t.cfg.ID, m.Channel, rcpt, m.ID)
	if dup, err := c.exists(hk); err != nil {
		return HoldResult{}, err
	} else if dup {
		return HoldResult{Held: true, Decision: d}, nil
	}
	if c.countHeld(m.Channel, rcpt) >= t.cfg.MaxHeld {
		return HoldResult{}, fmt.Errorf("%w (%d)", ErrHoldLimit, t.cfg.MaxHeld)
	}
	h := HeldMessage{ID: m.ID, Tenant: t.cfg.ID, Channel: m.Channel, Sender: m.Sender, Recipient: rcpt,
		Payload: m.Payload, HeldAt: c.now.UTC(), ExpiresAt: c.now.Add(t.cfg.HeldTTL).UTC()}
	c.set(hk, marshalHeld(&h))
	c.set(expiryKey(h.ExpiresAt.UnixNano(), t.cfg.ID, m.Channel, rcpt, m.ID), nil)
	res := HoldResult{Held: true, Decision: d}
	if rt.r.state != StatePending {
		old := rt.r.state
		rt.r.state = StatePending
		rt.r.prompts = 1
		rt.r.lang = t.cfg.DefaultLang
		c.mark(rt)
		c.record(rt, old, StatePending, "", origin{Evidence{Source: SourceAttestation, Sender: m.Sender,
			Detail: "attestation prompt sent"}})
		p := c.pendingReply(ReplyAttestationPrompt, t.def.AttestationPrompt, t.def.lang, m.Channel, m.Sender, rcpt)
		res.Prompt = &p
		res.Decision = Decision{Reason: ReasonAttestationPending, Action: ActionHold}
	}
	if err := c.commit(); err != nil {
		return HoldResult{}, err
	}
	s.metrics.held.Inc()
	return res, nil
}

// Disclaim is called for a disclaimer tenant before the first message to a
// recipient (Check returned ActionDisclaimFirst). The first call records the
// disclaimer (the recipient counts as opted in by implication, with
// evidence) and returns it to send before the message; later calls return
// nil. The record and the disclaimer, stored pending like a confirmation
// (with its ID; report it with ReplySent), are synced before Disclaim
// returns, so a crash before the send leaves it in PendingReplies to be
// sent then (possibly after the message it preceded).
func (s *Store) Disclaim(ctx context.Context, tenant, channel, sender, recipient string) (*Reply, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.end()
	t, err := s.tenant(tenant)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(checkChannel(channel), checkSender(sender), ctxErr(ctx)); err != nil {
		return nil, err
	}
	rcpt, err := t.recipient(channel, recipient)
	if err != nil {
		return nil, err
	}
	if t.cfg.Attestation != ModeDisclaimer {
		return nil, nil
	}
	mu := &s.stripes[s.stripe(t.cfg.ID, rcpt)]
	mu.Lock()
	defer mu.Unlock()
	c := s.newChange(t)
	defer c.discard()
	rt, err := c.rec(channel, rcpt, "")
	if err != nil {
		return nil, err
	}
	rs, err := c.rec(channel, rcpt, senderKey(sender))
	if err != nil {
		return nil, err
	}
	d := t.decide(rs.r.packed(), rs.existed, rt.r.packed(), rt.existed, CategoryTransactional)
	if d.Action != ActionDisclaimFirst {
		return nil, nil
	}
	old := rt.r.state
	rt.r.flags |= fDisclaimed
	rt.r.state = StateOptedIn
	c.mark(rt)
	c.record(rt, old, StateOptedIn, "", origin{Evidence{Source: SourceAttestation, Sender: sender,
		Detail: "disclaimer sent (implied opt-in)"}})
	rep := c.pendingReply(ReplyDisclaimer, t.def.Disclaimer, t.def.lang, channel, sender, rcpt)
	if err := c.commit(); err != nil {
		return nil, err
	}
	return &rep, nil
}
