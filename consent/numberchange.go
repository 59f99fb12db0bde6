package consent

import (
	"context"
	"errors"
	"time"
)

// SourceNumberChange marks the opt-outs copied to a person's new number
// when WhatsApp reported that they changed number (user_changed_number).
const SourceNumberChange Source = "whatsapp_number_change"

// NumberChange is a WhatsApp user_changed_number notification: the user
// who wrote from From now writes from To.
type NumberChange struct {
	Tenant    string
	Channel   string // the channel whose records move (WhatsApp)
	Sender    string // our business number that got the notification
	From, To  string // old and new wa_id or E.164, any form NormalizeRecipient takes
	MessageID string // the system message's wamid
	At        time.Time
	Detail    string // why, for the evidence (the wa_ids as received)
}

// MoveNumber carries every opt-out of From (tenant-wide and sender-scoped:
// plain, STOPALL family, marketing, WhatsApp's marketing stop) to To, in
// one durable change, each with evidence of source whatsapp_number_change
// that names the old key in Detail. No confirmation is produced: the person
// did not write a keyword. The records of From are left as they are:
// clearing an opt-out needs the person's consent, which a number change is
// not (and the old number may be given to someone who never opted in).
// A To already opted out stays so; nothing is ever cleared on To.
func (s *Store) MoveNumber(ctx context.Context, nc NumberChange) (Result, error) {
	if err := s.begin(); err != nil {
		return Result{}, err
	}
	defer s.end()
	t, err := s.tenant(nc.Tenant)
	if err != nil {
		return Result{}, err
	}
	if err := errors.Join(checkChannel(nc.Channel), checkSender(nc.Sender), checkField("MessageID", nc.MessageID, 128),
		checkField("Detail", nc.Detail, 1024), ctxErr(ctx)); err != nil {
		return Result{}, err
	}
	from, err := t.recipient(nc.Channel, nc.From)
	if err != nil {
		return Result{}, err
	}
	to, err := t.recipient(nc.Channel, nc.To)
	if err != nil {
		return Result{}, err
	}
	res := Result{Recipient: to}
	if from == to {
		return res, nil
	}
	// Both recipients' stripes, in index order (one lock when they share one).
	a, b := s.stripe(t.cfg.ID, from), s.stripe(t.cfg.ID, to)
	if a > b {
		a, b = b, a
	}
	s.stripes[a].Lock()
	defer s.stripes[a].Unlock()
	if b != a {
		s.stripes[b].Lock()
		defer s.stripes[b].Unlock()
	}
	c := s.newChange(t)
	defer c.discard()
	scopes, err := c.scopes(nc.Channel, from)
	if err != nil {
		return Result{}, err
	}
	org := origin{Evidence{Source: SourceNumberChange, Sender: nc.Sender, MessageID: nc.MessageID, Received: nc.At,
		Detail: truncate("moved from "+from+" (user_changed_number); "+nc.Detail, 1024)}}
	for _, scope := range scopes {
		rs, err := c.rec(nc.Channel, from, scope)
		if err != nil {
			return Result{}, err
		}
		for _, k := range []optOutKind{kindAllFamily, kindAll, kindMarketing, kindMarketingWA} {
			if rs.r.flags&k.flags() != k.flags() || (k == kindAll && rs.r.flags&fAllFamily != 0) {
				continue
			}
			tr := transition{chans: []string{nc.Channel}, sender: scope, rcpt: to, org: org, exactScope: true,
				lang: t.cfg.DefaultLang}
			if err := c.optOut(&res, tr, k); err != nil {
				return Result{}, err
			}
		}
	}
	if err := c.commit(); err != nil {
		return Result{}, err
	}
	return res, nil
}
