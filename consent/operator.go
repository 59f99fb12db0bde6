package consent

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// OperatorChange is a consent change recorded by an operator (or through
// the API) rather than by the recipient's own message.
type OperatorChange struct {
	Tenant    string
	Channel   string
	Recipient string
	// Sender optionally names our number: an opt-out then follows the
	// tenant's scope for it, an opt-in clears that sender's opt-out (and the
	// tenant-wide one); empty means tenant-wide / every sender. A
	// confirmation reply is produced only when Sender is set.
	Sender string
	// Operator identifies who made the change. Required.
	Operator string
	// Source is the stated source of the recipient's consent (e.g.
	// "web_form", "signed_paper", "phone_call"). Required for OptIn.
	Source string
	// ProofRef points at the proof of express consent (document id, call
	// recording, form submission). Required for OptIn.
	ProofRef string
	Note     string
	// Marketing limits an OptOut to marketing messages.
	Marketing bool
	// API records the change with source "api" instead of "operator".
	API bool
}

func (oc *OperatorChange) origin() origin {
	src := SourceOperator
	if oc.API {
		src = SourceAPI
	}
	return origin{Evidence{Source: src, Sender: oc.Sender, Operator: oc.Operator,
		ConsentSource: oc.Source, ProofRef: oc.ProofRef, Detail: oc.Note}}
}

func (oc *OperatorChange) validate(optIn bool) error {
	var errs []error
	if strings.TrimSpace(oc.Operator) == "" {
		errs = append(errs, fmt.Errorf("%w: Operator is required", ErrEvidenceRequired))
	}
	if optIn && (strings.TrimSpace(oc.Source) == "" || strings.TrimSpace(oc.ProofRef) == "") {
		errs = append(errs, fmt.Errorf("%w: an operator opt-in needs Source and ProofRef of the recipient's express consent", ErrEvidenceRequired))
	}
	if oc.Sender != "" {
		errs = append(errs, checkSender(oc.Sender))
	}
	errs = append(errs, checkChannel(oc.Channel), checkField("Operator", oc.Operator, 256),
		checkField("Source", oc.Source, 256), checkField("ProofRef", oc.ProofRef, 1024), checkField("Note", oc.Note, 1024))
	return errors.Join(errs...)
}

// OptOut records an opt-out on the recipient's behalf (e.g. a request by
// phone or e-mail). It is durable when OptOut returns. Like every operator
// action it is in the evidence log even when it changes nothing (an entry
// with old = new and a "no change" detail).
func (s *Store) OptOut(ctx context.Context, oc OperatorChange) (Result, error) {
	k := kindAll
	if oc.Marketing {
		k = kindMarketing
	}
	return s.operator(ctx, oc, false, func(c *change, res *Result, tr transition) error {
		return c.optOut(res, tr, k)
	})
}

// OptIn re-subscribes a recipient on the strength of express consent the
// operator records (Source and ProofRef are required; ErrEvidenceRequired
// otherwise). It clears plain and marketing opt-outs (not WhatsApp's own
// marketing stop, which only the user can lift) and releases held messages.
func (s *Store) OptIn(ctx context.Context, oc OperatorChange) (Result, error) {
	return s.operator(ctx, oc, true, func(c *change, res *Result, tr transition) error {
		tr.allSenders = oc.Sender == ""
		return c.optIn(res, tr)
	})
}

func (s *Store) operator(ctx context.Context, oc OperatorChange, optIn bool,
	apply func(*change, *Result, transition) error) (Result, error) {
	if err := s.begin(); err != nil {
		return Result{}, err
	}
	defer s.end()
	t, err := s.tenant(oc.Tenant)
	if err != nil {
		return Result{}, err
	}
	if err := errors.Join(oc.validate(optIn), ctxErr(ctx)); err != nil {
		return Result{}, err
	}
	rcpt, err := t.recipient(oc.Channel, oc.Recipient)
	if err != nil {
		return Result{}, err
	}
	mu := &s.stripes[s.stripe(t.cfg.ID, rcpt)]
	mu.Lock()
	defer mu.Unlock()
	c := s.newChange(t)
	defer c.discard()
	res := Result{Recipient: rcpt}
	tr := transition{chans: c.chansFor(oc.Channel), sender: senderKey(oc.Sender), rcpt: rcpt,
		org: oc.origin(), reply: oc.Sender != "", lang: t.cfg.DefaultLang}
	if err := apply(c, &res, tr); err != nil {
		return Result{}, err
	}
	if !res.Changed {
		// Every operator action is in the evidence log, even one that
		// changes nothing (the opt-out or opt-in was already in effect).
		scope, class, what := "", "all", "opt-in"
		if !optIn {
			what = "opt-out"
			if oc.Marketing {
				class, what = kindMarketing.class(), "marketing opt-out"
			}
			if t.cfg.Scope == ScopeSender && tr.sender != "" {
				scope = tr.sender
			}
		}
		rs, err := c.rec(tr.chans[0], rcpt, scope)
		if err != nil {
			return Result{}, err
		}
		org := tr.org
		org.Detail = "no change: " + what + " already in effect"
		if oc.Note != "" {
			org.Detail += "; " + oc.Note
		}
		c.record(rs, res.Old, res.New, class, org)
	}
	if err := c.commit(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// MarketingPreference is a WhatsApp user_preferences webhook entry (or a
// tap on the "Stop promotions" button when it arrives outside Inbound).
type MarketingPreference struct {
	Tenant    string
	Sender    string // our WhatsApp business number
	Recipient string // wa_id
	Stop      bool   // true: stop marketing; false: resume
	MessageID string
	At        time.Time
}

// SetMarketingPreference records a WhatsApp marketing stop or resume.
// Resume clears only a marketing stop that WhatsApp set.
func (s *Store) SetMarketingPreference(ctx context.Context, p MarketingPreference) (Result, error) {
	return s.whatsapp(ctx, p.Tenant, ChannelWhatsApp, p.Sender, p.Recipient, SourceWhatsAppPreference,
		p.MessageID, p.At, func(c *change, res *Result, tr transition) error {
			if p.Stop {
				return c.optOut(res, tr, kindMarketingWA)
			}
			return c.marketingResume(res, tr)
		})
}

// WhatsAppMarketingBlocked is the WhatsApp error code for a marketing
// template refused because the user stopped marketing messages.
const WhatsAppMarketingBlocked = 131050

// DeliveryFailure is a failed status for an outbound message.
type DeliveryFailure struct {
	Tenant    string
	Channel   string
	Sender    string
	Recipient string
	Code      int
	MessageID string
	At        time.Time
}

// DeliveryFailed records what a delivery failure says about consent: a
// WhatsApp 131050 is a marketing-only opt-out by the user. Other codes
// change nothing.
func (s *Store) DeliveryFailed(ctx context.Context, f DeliveryFailure) (Result, error) {
	if f.Channel != ChannelWhatsApp || f.Code != WhatsAppMarketingBlocked {
		if err := checkChannel(f.Channel); err != nil {
			return Result{}, err
		}
		return Result{}, nil
	}
	return s.whatsapp(ctx, f.Tenant, f.Channel, f.Sender, f.Recipient, SourceWhatsAppFailure, f.MessageID, f.At,
		func(c *change, res *Result, tr transition) error { return c.optOut(res, tr, kindMarketingWA) })
}

func (s *Store) whatsapp(ctx context.Context, tenant, ch, sender, recipient string, src Source, msgID string,
	at time.Time, apply func(*change, *Result, transition) error) (Result, error) {
	if err := s.begin(); err != nil {
		return Result{}, err
	}
	defer s.end()
	t, err := s.tenant(tenant)
	if err != nil {
		return Result{}, err
	}
	if err := errors.Join(checkSender(sender), checkField("MessageID", msgID, 128), ctxErr(ctx)); err != nil {
		return Result{}, err
	}
	rcpt, err := t.recipient(ch, recipient)
	if err != nil {
		return Result{}, err
	}
	mu := &s.stripes[s.stripe(t.cfg.ID, rcpt)]
	mu.Lock()
	defer mu.Unlock()
	c := s.newChange(t)
	defer c.discard()
	res := Result{Recipient: rcpt}
	tr := transition{chans: []string{ch}, sender: senderKey(sender), rcpt: rcpt,
		org: origin{Evidence{Source: src, Sender: sender, MessageID: msgID, Received: at}}}
	if err := apply(c, &res, tr); err != nil {
		return Result{}, err
	}
	if err := c.commit(); err != nil {
		return Result{}, err
	}
	return res, nil
}

// Get returns the stored consent of a recipient on a channel.
func (s *Store) Get(tenant, channel, recipient string) (Status, error) {
	if err := s.failedErr(); err != nil {
		return Status{}, err
	}
	t, err := s.tenant(tenant)
	if err != nil {
		return Status{}, err
	}
	if err := checkChannel(channel); err != nil {
		return Status{}, err
	}
	rcpt, err := t.recipient(channel, recipient)
	if err != nil {
		return Status{}, err
	}
	st := Status{Recipient: rcpt, Senders: map[string]Record{}}
	err = s.view(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = recordPrefix(tenant, channel, rcpt)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r rec
			if err := it.Item().Value(r.unmarshal); err != nil {
				return fmt.Errorf("%w: record: %v", ErrStorage, err)
			}
			scope := string(it.Item().Key()[len(o.Prefix):])
			if scope == "" {
				st.Tenant = r.public()
			} else {
				st.Senders[scope] = r.public()
			}
		}
		return nil
	})
	return st, err
}

// History returns up to limit evidence entries of a recipient on a channel,
// newest first (limit <= 0 means all).
func (s *Store) History(tenant, channel, recipient string, limit int) ([]Evidence, error) {
	out, _, err := s.HistoryPage(tenant, channel, recipient, HistoryQuery{Limit: limit})
	return out, err
}

// HistoryQuery selects a page of a recipient's evidence.
type HistoryQuery struct {
	Limit        int       // entries per page; <= 0: all
	Since, Until time.Time // entries of [Since, Until); zero bounds are open
	// Cursor, a previous page's next cursor, starts the page after it.
	// Entries are listed newest first, so evidence written meanwhile is
	// before the cursor: later pages neither skip nor repeat an entry.
	Cursor []byte
}

// HistoryPage returns one page of a recipient's evidence on a channel,
// newest first, and the cursor of the next page (nil on the last one).
func (s *Store) HistoryPage(tenant, channel, recipient string, q HistoryQuery) (out []Evidence, next []byte, err error) {
	if err := s.failedErr(); err != nil {
		return nil, nil, err
	}
	t, err := s.tenant(tenant)
	if err != nil {
		return nil, nil, err
	}
	if err := checkChannel(channel); err != nil {
		return nil, nil, err
	}
	rcpt, err := t.recipient(channel, recipient)
	if err != nil {
		return nil, nil, err
	}
	pfx := evidencePrefix(tenant, channel, rcpt)
	start := append(append([]byte{}, pfx...), 0xff)
	if !q.Until.IsZero() {
		// Reverse seeks land on the last key at or before: the prefix and
		// Until's 8 bytes come before every key of that nanosecond.
		start = binary.BigEndian.AppendUint64(append([]byte{}, pfx...), uint64(q.Until.UnixNano()))
	}
	if q.Cursor != nil {
		if !bytes.HasPrefix(q.Cursor, pfx) || len(q.Cursor) != len(pfx)+16 {
			return nil, nil, fmt.Errorf("%w: cursor is not from this history", ErrInvalidInput)
		}
		if bytes.Compare(q.Cursor, start) < 0 {
			start = q.Cursor
		}
	}
	var last []byte // key of the page's last entry
	err = s.view(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Reverse = true
		o.Prefix = pfx
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek(start); it.Valid(); it.Next() {
			k := it.Item().Key()
			if q.Cursor != nil && bytes.Equal(k, q.Cursor) {
				continue
			}
			if len(k) == len(pfx)+16 && !q.Since.IsZero() && int64(binary.BigEndian.Uint64(k[len(pfx):])) < q.Since.UnixNano() {
				break // older entries follow
			}
			if q.Limit > 0 && len(out) == q.Limit {
				next = last // more follow
				break
			}
			var e Evidence
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("%w: evidence: %v", ErrStorage, err)
			}
			out = append(out, e)
			last = it.Item().KeyCopy(last[:0])
		}
		return nil
	})
	return out, next, err
}
