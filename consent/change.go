package consent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/optgate/optgate/internal/e164"

	"github.com/dgraph-io/badger/v4"
)

// senderKey is the form a sender takes in keys: a leading "+" is dropped
// from all-digit senders, so "+15551230000" and "15551230000" are one sender.
func senderKey(s string) string {
	if len(s) > 1 && s[0] == '+' && e164.AllDigits(s[1:]) {
		return s[1:]
	}
	return s
}

// change collects one atomic consent change: the records it read, the
// mutations, the evidence, and the resulting memory-index updates. It is
// built while the caller holds the stripe lock(s) of every recipient it
// touches, then committed with one submit.
type change struct {
	s    *Store
	t    *tenant
	txn  *badger.Txn // read snapshot
	now  time.Time
	recs map[string]*recState
	ops  []op
}

type recState struct {
	tenant, ch, rcpt, scope string
	key                     []byte
	r                       rec
	existed, dirty          bool
}

func (s *Store) newChange(t *tenant) *change {
	return &change{s: s, t: t, txn: s.db.NewTransaction(false), now: s.clock(), recs: map[string]*recState{}}
}

func (c *change) discard() { c.txn.Discard() }

// rec loads (once) the record of (channel, recipient, scope) of c's tenant.
func (c *change) rec(ch, rcpt, scope string) (*recState, error) {
	k := recordKey(c.t.cfg.ID, ch, rcpt, scope)
	if rs, ok := c.recs[string(k)]; ok {
		return rs, nil
	}
	rs := &recState{tenant: c.t.cfg.ID, ch: ch, rcpt: rcpt, scope: scope, key: k}
	ok, err := getRec(c.txn, k, &rs.r)
	if err != nil {
		return nil, err
	}
	rs.existed = ok
	c.recs[string(k)] = rs
	return rs, nil
}

// scopes lists the scopes of every record of (channel, recipient).
func (c *change) scopes(ch, rcpt string) ([]string, error) {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = recordPrefix(c.t.cfg.ID, ch, rcpt)
	it := c.txn.NewIterator(o)
	defer it.Close()
	var out []string
	for it.Rewind(); it.Valid(); it.Next() {
		out = append(out, string(it.Item().Key()[len(o.Prefix):]))
	}
	return out, nil
}

func (c *change) mark(rs *recState) {
	rs.dirty = true
	rs.r.updated = c.now.UnixNano()
}

// exists reports whether a key exists in the snapshot.
func (c *change) exists(key []byte) (bool, error) {
	_, err := c.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: read: %v", ErrStorage, err)
	}
	return true, nil
}

func (c *change) set(key, val []byte) { c.ops = append(c.ops, op{Key: key, Value: val}) }
func (c *change) setTTL(key, val []byte, d time.Duration) {
	c.ops = append(c.ops, op{Key: key, Value: val, TTL: d})
}
func (c *change) del(key []byte) { c.ops = append(c.ops, op{Key: key, Delete: true}) }

// evidence appends one evidence entry.
func (c *change) evidence(e Evidence) uint64 {
	e.Time = c.now.UTC()
	e.Tenant = c.t.cfg.ID
	e.Text = truncate(strings.ToValidUTF8(e.Text, "\uFFFD"), 1024)
	b, _ := json.Marshal(&e) // plain struct of strings: cannot fail
	seq := c.s.seq.Add(1)
	c.set(evidenceKey(e.Tenant, e.Channel, e.Recipient, c.now.UnixNano(), seq), b)
	return seq
}

// commit writes everything and, after the sync, updates the memory index.
func (c *change) commit() error {
	var mem []memOp
	for _, rs := range c.recs {
		if !rs.dirty {
			continue
		}
		home, tag := c.s.idx.hashes(rs.tenant, rs.ch, false, rs.rcpt, rs.scope)
		if rs.r.empty() {
			if rs.existed {
				c.del(rs.key)
				mem = append(mem, memOp{home: home, tag: tag, existed: true, exists: false})
			}
			continue
		}
		c.set(rs.key, rs.r.marshal())
		mem = append(mem, memOp{home: home, tag: tag, existed: rs.existed, exists: true, v: rs.r.packed()})
	}
	return c.s.submit(c.ops, mem)
}

func scopeName(scope string) string {
	if scope == "" {
		return "tenant"
	}
	return scope
}

// effective is the state of (channel, recipient) as seen from sender.
func effective(rs, rt *recState) State {
	if (rs != nil && rs.r.flags&fAll != 0) || rt.r.flags&fAll != 0 {
		return StateOptedOut
	}
	if rt.r.state == StateOptedOut {
		return StateNone
	}
	return rt.r.state
}
