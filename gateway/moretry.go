package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
)

// An SMSC sends a deliver_sm again when it did not get our ESME_ROK: we
// answered an error, or the connection dropped after it wrote the PDU and
// before our answer reached it. user_message_reference is no id (it is
// the handset's cycling TP-MR, constant from some SMSCs), and a handset
// may really send the same text twice, so an MO is not deduplicated by
// its reference or its content in general: only the
// MOs whose answer may not have arrived are remembered, for the SMSC's
// mo_retry_window, keyed by a keyed hash of (SMSC, from, to, data_coding,
// octets). An identical MO within that time is the retry: what the first
// attempt did (the consent change, its confirmation, the copy for the
// tenant) is not done again, and it is answered ESME_ROK.
//
// The memory is written only on those rare paths (an error answer, a
// connection closed before the answer was written), synced, with a TTL:
// it holds across restarts, and the healthy path reads a counter only.
const (
	retryPrefix    = "mr/k/"     // + 32-byte key → moRetry JSON, with TTL
	retrySecretKey = "mr/secret" // 32 random bytes: the hash key
)

// moRetry is what the first attempt of an unanswered MO did.
type moRetry struct {
	// ID is the message id the consent store remembers the MO's change
	// under (consent.Store.RememberMessage); "" when it made none.
	ID string `json:"id,omitempty"`
	// Forwarded: the MO is durably queued for the tenant already.
	Forwarded bool `json:"fwd,omitempty"`

	expires time.Time
}

type retryKey [sha256.Size]byte

// moRetries is the memory, mirrored in a map (it is small: entries are
// made only when an answer may have been lost).
type moRetries struct {
	db     *badger.DB
	commit *groupcommit.Committer
	secret []byte

	mu  sync.Mutex
	mem map[retryKey]moRetry // guarded by mu
	// writing are the MOs being remembered: their answer was just found
	// lost and the memory is not stored yet. A retry of one (on another
	// bind of the SMSC) waits for it. Guarded by mu; closed when done.
	writing map[retryKey]chan struct{}
	n       atomic.Int32 // len(mem) + len(writing): the healthy path's only cost
}

// openRetries loads the hash key (made on first use) and the entries that
// have not expired.
func openRetries(db *badger.DB, c *groupcommit.Committer) (*moRetries, error) {
	m := &moRetries{db: db, commit: c, mem: map[retryKey]moRetry{}, writing: map[retryKey]chan struct{}{}}
	if _, err := readKey(db, []byte(retrySecretKey), func(v []byte) { m.secret = append([]byte(nil), v...) }); err != nil {
		return nil, err
	}
	if len(m.secret) != 32 {
		m.secret = make([]byte, 32)
		if _, err := rand.Read(m.secret); err != nil {
			return nil, err
		}
		if err := c.Write(groupcommit.Op{Key: []byte(retrySecretKey), Value: m.secret}); err != nil {
			return nil, err
		}
	}
	err := db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte(retryPrefix)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var k retryKey
			if len(item.Key()) != len(retryPrefix)+len(k) {
				continue
			}
			copy(k[:], item.Key()[len(retryPrefix):])
			var e moRetry
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				continue // unreadable: the MO is treated as new, as without the memory
			}
			e.expires = time.Unix(int64(item.ExpiresAt()), 0)
			m.mem[k] = e
		}
		return nil
	})
	m.count()
	return m, err
}

// key is the keyed hash of an MO: its SMSC, addresses, data_coding and
// octets, each length-prefixed.
func (m *moRetries) key(smsc, from, to string, dc uint8, body []byte) retryKey {
	h := hmac.New(sha256.New, m.secret)
	var n [4]byte
	for _, f := range [][]byte{[]byte(smsc), []byte(from), []byte(to), {dc}, body} {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	var k retryKey
	h.Sum(k[:0])
	return k
}

// active reports whether any MO is remembered (no lock).
func (m *moRetries) active() bool { return m.n.Load() > 0 }

// count updates n; mu is held (or m not shared yet).
func (m *moRetries) count() { m.n.Store(int32(len(m.mem) + len(m.writing))) }

// lookup returns the memory of k, if any and not expired. When k is being
// remembered, it waits (at most 10 seconds) for that first.
func (m *moRetries) lookup(k retryKey, now time.Time) (moRetry, bool) {
	m.mu.Lock()
	if ch := m.writing[k]; ch != nil {
		m.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
		}
		m.mu.Lock()
	}
	defer m.mu.Unlock()
	e, ok := m.mem[k]
	if ok && !now.Before(e.expires) {
		delete(m.mem, k)
		m.count()
		return moRetry{}, false
	}
	return e, ok
}

// begin marks k as being remembered (no I/O: it may run on a session's
// writer goroutine); done must follow.
func (m *moRetries) begin(k retryKey) {
	m.mu.Lock()
	if m.writing[k] == nil {
		m.writing[k] = make(chan struct{})
	}
	m.count()
	m.mu.Unlock()
}

// done ends begin.
func (m *moRetries) done(k retryKey) {
	m.mu.Lock()
	if ch := m.writing[k]; ch != nil {
		close(ch)
		delete(m.writing, k)
	}
	m.count()
	m.mu.Unlock()
}

// remember stores e for k for window, synced.
func (m *moRetries) remember(k retryKey, e moRetry, window time.Duration) error {
	v, _ := json.Marshal(e)
	if err := m.commit.Write(groupcommit.Op{Key: append([]byte(retryPrefix), k[:]...), Value: v, TTL: window}); err != nil {
		return err
	}
	e.expires = time.Now().Add(window)
	m.mu.Lock()
	m.mem[k] = e
	m.count()
	m.mu.Unlock()
	return nil
}

// forget drops k once its retry was answered and the answer written. The
// delete is lazy: were it lost in a crash, the entry would only expire.
func (m *moRetries) forget(k retryKey) error {
	m.mu.Lock()
	delete(m.mem, k)
	m.count()
	m.mu.Unlock()
	return m.commit.WriteLazy(groupcommit.Op{Key: append([]byte(retryPrefix), k[:]...), Delete: true})
}

// retryMsgID is the consent message id of a remembered MO.
func retryMsgID(k retryKey) string { return "mo-retry:" + hex.EncodeToString(k[:16]) }

// moAttempt follows one attempt at an MO that may be retried: a
// single-part MO, or the part that completed a concatenated one.
type moAttempt struct {
	key     retryKey
	prior   moRetry
	retried bool // the memory knew it: this is the SMSC's retry
	changed bool // this attempt's consent change stored something
	fwd     bool // durably queued for the tenant (this attempt or the first)
}

// beginAttempt keys the MO (only when the memory is not empty: the
// healthy path hashes nothing) and looks it up.
func (g *Gateway) beginAttempt(a *moAttempt, l *smscLink, from, to string, ex moExtra) {
	if g.retries.active() {
		a.key = g.retries.key(l.name, from, to, ex.dc, ex.body)
		a.prior, a.retried = g.retries.lookup(a.key, time.Now())
		a.fwd = a.retried && a.prior.Forwarded
	}
}

// lostAnswer is unanswered for an answer the connection closed before
// writing, called on the session's writer goroutine: it marks the MO as
// being remembered at once, so that a retry arriving on another bind
// meanwhile waits for the memory, and hands the writes to a goroutine.
func (g *Gateway) lostAnswer(l *smscLink, t *Tenant, channel, from, to string, ex moExtra, a *moAttempt) {
	if !a.changed && !a.fwd && !a.retried {
		return
	}
	if a.key == (retryKey{}) {
		a.key = g.retries.key(l.name, from, to, ex.dc, ex.body)
	}
	g.retries.begin(a.key)
	go g.unanswered(l, t, channel, from, to, ex, a)
}

// unanswered remembers, synced, what of the MO is done when its answer may
// not reach the SMSC (an error answer, or the connection closed before the
// answer was written), so that the SMSC's retry does not do it again. An
// attempt that did nothing needs no memory: the retry is a first attempt.
func (g *Gateway) unanswered(l *smscLink, t *Tenant, channel, from, to string, ex moExtra, a *moAttempt) {
	if !a.changed && !a.fwd && !a.retried {
		return
	}
	if a.key == (retryKey{}) {
		a.key = g.retries.key(l.name, from, to, ex.dc, ex.body)
	}
	defer g.retries.done(a.key)
	e := moRetry{ID: a.prior.ID, Forwarded: a.fwd}
	if a.changed && e.ID == "" {
		id := retryMsgID(a.key)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := g.consent.RememberMessage(ctx, t.ID, channel, to, id)
		cancel()
		if err != nil {
			g.log.Error("MO answer may be lost and its consent change not remembered: a retry may be confirmed again",
				"tenant", t.ID, "smsc", l.name, "mo", fmt.Sprintf("%x", a.key[:8]), "err", err)
		} else {
			e.ID = id
		}
	}
	if err := g.retries.remember(a.key, e, l.cfg.MORetryWindow); err != nil {
		g.log.Error("MO answer may be lost and the MO not remembered: a retry will be taken for a new MO",
			"tenant", t.ID, "smsc", l.name, "mo", fmt.Sprintf("%x", a.key[:8]), "err", err)
		return
	}
	g.log.Warn("MO answer may not have reached the SMSC; its retry will be recognised", "tenant", t.ID, "smsc", l.name,
		"mo", fmt.Sprintf("%x", a.key[:8]), "consent_applied", e.ID != "", "forwarded", e.Forwarded)
}
