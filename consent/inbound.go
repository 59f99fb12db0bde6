package consent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/optgate/optgate/consent/keyword"
)

// MaxText is the largest inbound text accepted (64 KiB).
const MaxText = 64 << 10

// Inbound screens one MO message: it matches the tenant's keywords, applies
// the consent transition, makes it durable (group commit + fsync) and only
// then returns the replies to send, the held messages to release or fail
// and the events for the tenant.
//
// On error nothing of the message is applied or visible: the gateway should
// answer the SMSC with a temporary error so that it retries. A retry of a
// message already applied (same Tenant, Channel, Sender and MessageID within
// Config.DedupeTTL) returns Result.Duplicate and no replies: each opt-out
// gets at most one confirmation even across retries.
func (s *Store) Inbound(ctx context.Context, m InboundMessage) (Result, error) {
	if err := s.begin(); err != nil {
		return Result{}, err
	}
	defer s.end()
	t, err := s.tenant(m.Tenant)
	if err != nil {
		return Result{}, err
	}
	if err := errors.Join(checkChannel(m.Channel), checkSender(m.Sender),
		checkField("MessageID", m.MessageID, 128), checkField("WaID", m.WaID, 64), checkField("UserID", m.UserID, 128),
		ctxErr(ctx)); err != nil {
		return Result{}, err
	}
	if len(m.Text) > MaxText {
		return Result{}, fmt.Errorf("%w: text of %d bytes exceeds %d", ErrInvalidInput, len(m.Text), MaxText)
	}
	rcpt, err := t.recipient(m.Channel, m.Recipient)
	if err != nil {
		return Result{}, err
	}
	if len(m.AltText) > MaxText {
		m.AltText = ""
	}
	match, matched := t.matcher.Match(m.Text)
	screened, reading := m.Text, m.Reading
	if !matched && m.AltText != "" {
		// The octets read another way (a mislabelled charset) may hold the
		// keyword the labelled reading hides.
		if match, matched = t.matcher.Match(m.AltText); matched {
			screened, reading = m.AltText, m.AltReading
		}
	}
	if !matched {
		match = keyword.Match{}
	} else {
		s.metrics.keywords.WithLabelValues(match.Class.String(), labelLang(match.Lang)).Inc()
	}
	res := Result{Recipient: rcpt, Match: match, Matched: matched}

	mu := &s.stripes[s.stripe(t.cfg.ID, rcpt)]
	mu.Lock()
	defer mu.Unlock()
	c := s.newChange(t)
	defer c.discard()
	sender := senderKey(m.Sender)
	if m.MessageID != "" {
		dup, err := c.exists(dedupeKey(t.cfg.ID, m.Channel, sender, m.MessageID))
		if err != nil {
			return Result{}, err
		}
		if dup && s.pending.Load() > 0 {
			// The first delivery may be among the changes not yet
			// replicated (replicate.go): the source retries until they are.
			return Result{}, fmt.Errorf("%w: earlier changes not yet replicated", ErrStorage)
		}
		if dup {
			res.Duplicate = true
			return res, nil
		}
	}
	tr := transition{
		chans:  c.chansFor(m.Channel),
		sender: sender,
		rcpt:   rcpt,
		reply:  true,
		lang:   t.replyLang(match),
		org: origin{Evidence{
			Source: SourceKeyword, Sender: m.Sender, Keyword: truncate(strings.TrimSpace(screened), 64),
			Normalized: truncate(string(keyword.Normalize(nil, truncate(screened, 256))), 64),
			Lang:       match.Lang, Text: m.Text, MessageID: m.MessageID, Received: m.ReceivedAt,
			WaID: m.WaID, UserID: m.UserID,
		}},
	}
	if matched {
		tr.org.MatchMode, tr.org.Detail = matchEvidence(t.matcher.Mode(), match, screened)
		tr.org.Decoding = reading
	}
	attested := SourceAttestation
	if m.Simulated {
		tr.org.Source, attested = SourceSimulator, SourceSimulator
	}
	rt, err := c.rec(m.Channel, rcpt, "")
	if err != nil {
		return Result{}, err
	}
	pending := rt.r.state == StatePending
	if (match.Class == keyword.OptIn || match.Class == keyword.Yes && pending) && !m.NotBefore.IsZero() &&
		!m.ReceivedAt.IsZero() && m.ReceivedAt.Before(m.NotBefore) {
		// Not applied, but in the evidence log: what came, and why it changed nothing.
		res.Stale, res.Old, res.New = true, rt.r.state, rt.r.state
		org := tr.org
		org.Detail = "no change: dated before the last consent change applied from this source (" +
			m.NotBefore.UTC().Format(time.RFC3339) + ")"
		c.record(rt, rt.r.state, rt.r.state, "all", org)
		if m.MessageID != "" {
			c.setTTL(dedupeKey(t.cfg.ID, m.Channel, sender, m.MessageID), []byte{1}, s.cfg.DedupeTTL)
		}
		if err := c.commit(); err != nil {
			return Result{}, err
		}
		return res, nil
	}
	switch match.Class {
	case keyword.OptOut:
		err = c.optOut(&res, tr, kindAll)
	case keyword.OptOutAll:
		err = c.optOut(&res, tr, kindAllFamily)
	case keyword.MarketingOptOut:
		err = c.optOut(&res, tr, kindMarketing)
	case keyword.OptIn:
		if pending {
			tr.org.Source = attested
		}
		err = c.optIn(&res, tr)
	case keyword.Yes:
		if !pending {
			// YES is an opt-in only as the answer to a prompt.
			res.Forward = true
			break
		}
		tr.org.Source = attested
		err = c.optIn(&res, tr)
	case keyword.Help:
		c.reply(&res, ReplyHelp, t.templates(tr.lang).Help, tr)
		st := effective(nil, rt)
		if rs, e := c.rec(m.Channel, rcpt, sender); e == nil {
			st = effective(rs, rt)
		}
		res.Old, res.New = st, st
	default:
		res.Forward = true
		res.Old = rt.r.state
		if pending && int(rt.r.prompts) < t.cfg.MaxPrompts {
			rt.r.prompts++
			c.mark(rt)
			tr.lang = t.cfg.DefaultLang
			c.reply(&res, ReplyReprompt, t.def.Reprompt, tr)
		}
		res.New = res.Old
	}
	if err != nil {
		return Result{}, err
	}
	dirty := len(c.ops) > 0
	for _, r := range c.recs {
		dirty = dirty || r.dirty
	}
	if !dirty && len(res.Replies) == 0 {
		return res, nil
	}
	if m.MessageID != "" {
		c.setTTL(dedupeKey(t.cfg.ID, m.Channel, sender, m.MessageID), []byte{1}, s.cfg.DedupeTTL)
	}
	if err := c.commit(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// labelLang keeps the language label bounded.
func labelLang(l string) string {
	if len(l) > 8 || l == "" {
		return "other"
	}
	return l
}

// matchEvidence describes how a keyword was recognised, for the evidence
// log: the match mode and a detail such as "keyword STOP (opt_out)",
// "first-word: keyword STOP (opt_out) at the start of the message" or
// "reasonable-means: per-se word REVOKE in 'please revoke my consent'".
func matchEvidence(mode keyword.Mode, m keyword.Match, text string) (matchMode, detail string) {
	kw := "keyword " + m.Keyword + " (" + m.Class.String() + ")"
	switch {
	case m.PerSe:
		quoted := truncate(strings.Join(strings.Fields(strings.ToValidUTF8(text, "\uFFFD")), " "), 128)
		return "per-se", "reasonable-means: per-se word " + m.Keyword + " in '" + quoted + "'"
	case mode == keyword.FirstWord:
		return mode.String(), "first-word: " + kw + " at the start of the message"
	case mode == keyword.ReasonableMeans:
		return mode.String(), "reasonable-means: " + kw + ", the whole message"
	default:
		return mode.String(), kw
	}
}

// RememberMessage records msgID as an MO already applied for (tenant,
// channel, sender), durably and for Config.DedupeTTL, exactly as Inbound
// records the MessageID of a message it applies: a later Inbound with the
// same MessageID is a Duplicate (no second change, no second reply).
//
// It is for an MO that was applied without an id (most SMSCs give none)
// whose answer may not have reached the SMSC: the gateway names it
// afterwards, so that the SMSC's retry, given the same name, is known.
func (s *Store) RememberMessage(ctx context.Context, tenant, channel, sender, msgID string) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	t, err := s.tenant(tenant)
	if err != nil {
		return err
	}
	if err := errors.Join(checkChannel(channel), checkSender(sender), checkField("MessageID", msgID, 128), ctxErr(ctx)); err != nil {
		return err
	}
	if msgID == "" {
		return fmt.Errorf("%w: empty message id", ErrInvalidInput)
	}
	c := s.newChange(t)
	defer c.discard()
	c.setTTL(dedupeKey(t.cfg.ID, channel, senderKey(sender), msgID), []byte{1}, s.cfg.DedupeTTL)
	return c.commit()
}
