package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/smpp"
)

// Dead letters are inbound messages whose sender or destination could not
// be keyed (an address no form of which is a usable number, or a number no
// tenant owns): they are kept in the gateway store under deadLetterPrefix
// with the raw PDU, so that no MO is acknowledged and forgotten, and an
// operator can read them (GET /v1/admin/deadletter) and replay them by hand.
const (
	deadLetterPrefix = "dl/"
	// deadLetterTTL is how long a dead letter is kept.
	deadLetterTTL = 30 * 24 * time.Hour
	// deadLetterMax bounds how many are kept at once: beyond it an unkeyed
	// MO is answered ESME_RX_T_APPN (the SMSC keeps it and retries) rather
	// than stored, and the alert on optgate_inbound_unkeyed_total fires.
	deadLetterMax = 100000
)

// Reasons an inbound message could not be keyed (label values of
// optgate_inbound_unkeyed_total, and DeadLetter.Reason).
const (
	unkeyedInvalidSource   = "invalid_source"
	unkeyedAmbiguousSource = "ambiguous_source"
	unkeyedNotANumber      = "source_not_a_number" // alphanumeric or short-code sender
	unkeyedInvalidDest     = "invalid_destination"
	unkeyedAmbiguousDest   = "ambiguous_destination"
	unkeyedUnknownDest     = "unknown_destination" // a number no tenant owns
	unkeyedStoreFailed     = "deadletter_failed"   // not stored either: the SMSC was asked to retry
	// unkeyedRefusedPart is a part of a concatenated MO the reassembler
	// refuses (its total disagrees with its set's, or the sets in memory
	// are over their bound): keyed, but its text cannot be joined.
	unkeyedRefusedPart = "refused_part"
)

var unkeyedReasons = []string{unkeyedInvalidSource, unkeyedAmbiguousSource, unkeyedNotANumber, unkeyedInvalidDest,
	unkeyedAmbiguousDest, unkeyedUnknownDest, unkeyedStoreFailed, unkeyedRefusedPart}

// DeadLetter is one kept inbound message, as stored and as listed.
type DeadLetter struct {
	ID       string    `json:"id"`
	Channel  string    `json:"channel"`
	SMSC     string    `json:"smsc,omitempty"`
	Received time.Time `json:"received"`
	Reason   string    `json:"reason"`
	Detail   string    `json:"detail"` // the normalisation's error
	// SourceTON, SourceNPI, DestTON and DestNPI are the PDU's address types.
	SourceTON uint8 `json:"source_ton"`
	SourceNPI uint8 `json:"source_npi"`
	DestTON   uint8 `json:"dest_ton"`
	DestNPI   uint8 `json:"dest_npi"`
	// PDU is the deliver_sm or data_sm as received (header and body).
	PDU []byte `json:"pdu"`
}

// deadLetters counts the stored dead letters (lazily, from the store).
type deadLetters struct {
	once  sync.Once
	count atomic.Int64
}

func (d *deadLetters) n(g *Gateway) *atomic.Int64 {
	d.once.Do(func() {
		n := 0
		_ = g.db.View(func(txn *badger.Txn) error {
			opt := badger.DefaultIteratorOptions
			opt.PrefetchValues = false
			opt.Prefix = []byte(deadLetterPrefix)
			it := txn.NewIterator(opt)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			return nil
		})
		d.count.Store(int64(n))
	})
	return &d.count
}

// moKeys reads an MO's destination and source (consent.NormalizeAddress in
// the link's region) and finds the tenant. When either cannot be keyed the
// MO is dead-lettered and answered (off the caller's goroutine) and ok is
// false.
func (g *Gateway) moKeys(l *smscLink, r *smpp.Request, sm *smpp.SM) (from, to string, t *Tenant, ok bool) {
	region := l.region()
	to, kind, err := g.smppNumber(sm.Dest, region)
	switch {
	case errors.Is(err, consent.ErrAmbiguousNumber):
		g.deadLetterMO(l, r, sm, unkeyedAmbiguousDest, err)
		return "", "", nil, false
	case err != nil || kind != consent.AddressNumber:
		if err == nil {
			err = fmt.Errorf("destination of TON %d is not a number", sm.Dest.TON)
		}
		g.deadLetterMO(l, r, sm, unkeyedInvalidDest, err)
		return "", "", nil, false
	}
	if t = g.byNumber[to]; t == nil {
		g.metrics.mo.WithLabelValues("", "unknown_number").Inc()
		g.deadLetterMO(l, r, sm, unkeyedUnknownDest, errors.New("no tenant owns the destination number"))
		return "", "", nil, false
	}
	from, kind, err = g.smppNumber(sm.Source, region)
	switch {
	case errors.Is(err, consent.ErrAmbiguousNumber):
		g.deadLetterMO(l, r, sm, unkeyedAmbiguousSource, err)
		return "", "", nil, false
	case err != nil:
		g.deadLetterMO(l, r, sm, unkeyedInvalidSource, err)
		return "", "", nil, false
	case kind != consent.AddressNumber:
		g.deadLetterMO(l, r, sm, unkeyedNotANumber, fmt.Errorf("source of TON %d is not a phone number", sm.Source.TON))
		return "", "", nil, false
	}
	return from, to, t, true
}

// deadLetterMO keeps an MO that cannot be keyed: counted, logged at warn
// (the SMSC, address types and lengths, the reason: never the numbers),
// stored durably with the raw PDU, then answered ESME_ROK so the SMSC does
// not retry forever; ESME_RX_T_APPN when it could not be stored (the SMSC
// keeps it and retries). The store write runs on a goroutine of its own, not
// on the SMSC session's read goroutine.
func (g *Gateway) deadLetterMO(l *smscLink, r *smpp.Request, sm *smpp.SM, reason string, why error) {
	g.metrics.unkeyed.WithLabelValues(ChannelSMS, reason).Inc()
	g.log.Warn("MO cannot be keyed, dead-lettering it", "smsc", l.name, "reason", reason,
		"source_ton", sm.Source.TON, "source_npi", sm.Source.NPI, "source_len", len(sm.Source.Addr),
		"dest_ton", sm.Dest.TON, "dest_npi", sm.Dest.NPI, "dest_len", len(sm.Dest.Addr))
	raw, err := smpp.AppendPDU(nil, r.Header.Status, r.Header.Sequence, r.PDU)
	if err != nil {
		raw = nil // kept without the PDU: the addresses' types and the reason still say what came
	}
	d := DeadLetter{ID: g.ids.next(), Channel: ChannelSMS, SMSC: l.name, Received: time.Now().UTC(), Reason: reason,
		Detail: why.Error(), SourceTON: sm.Source.TON, SourceNPI: sm.Source.NPI, DestTON: sm.Dest.TON, DestNPI: sm.Dest.NPI, PDU: raw}
	go func() {
		if err := g.putDeadLetter(&d); err != nil {
			g.metrics.unkeyed.WithLabelValues(ChannelSMS, unkeyedStoreFailed).Inc()
			g.log.Error("unkeyed MO not dead-lettered, asking the SMSC to retry", "smsc", l.name, "reason", reason, "err", err)
			r.Respond(smpp.StatusXTAppn, nil)
			return
		}
		r.Respond(smpp.StatusOK, nil)
	}()
}

// putDeadLetter stores d durably (synced) under its time, so a listing is
// in arrival order.
func (g *Gateway) putDeadLetter(d *DeadLetter) error {
	count := g.deadletters.n(g)
	if count.Load() >= deadLetterMax {
		return fmt.Errorf("dead-letter store full (%d kept)", deadLetterMax)
	}
	val, err := json.Marshal(d)
	if err != nil {
		return err
	}
	key := []byte(deadLetterPrefix + fmt.Sprintf("%020d", d.Received.UnixNano()) + "/" + d.ID)
	if err := g.commit.Write(groupcommit.Op{Key: key, Value: val, TTL: deadLetterTTL}); err != nil {
		return err
	}
	count.Add(1)
	return nil
}

// DeadLetters calls fn for each kept dead letter, oldest first, until fn
// returns false.
func (g *Gateway) DeadLetters(fn func(DeadLetter) bool) error {
	return g.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = []byte(deadLetterPrefix)
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var d DeadLetter
			err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &d) })
			if err != nil {
				return err
			}
			if !fn(d) {
				return nil
			}
		}
		return nil
	})
}
