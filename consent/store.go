package consent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/consent/keyword"
	"github.com/optgate/optgate/internal/groupcommit"
)

// Store is the consent engine: suppression index, state machine, evidence
// log, held messages and archive schedule, on one Badger database.
// All methods are safe for concurrent use.
type Store struct {
	cfg     Config
	log     *slog.Logger
	db      *badger.DB
	opts    badger.Options // what Open opened db with; Reopen uses it again
	clock   func() time.Time
	tenants map[string]*tenant // read-only after Open
	idx     *memIndex
	metrics *metrics

	// stripes serialise read-modify-write changes per (tenant, recipient):
	// a change reads the current records, computes the transition, commits
	// and updates the memory index while holding its stripe. Lock order:
	// stripes in ascending index order (Import takes several), then the
	// committer (no lock), then index shard locks.
	stripes    [nStripes]sync.Mutex
	stripeSeed maphash.Seed

	commit *groupcommit.Committer // replaced by Reopen (closeMu held for writing)
	quit   chan struct{}
	sent   chan string // reply ids reported sent, removed in batches by replyReaper
	wg     sync.WaitGroup
	failed atomic.Bool
	// commitTxn commits a batch's transaction (synced: SyncWrites is on);
	// replaced by fault-injection tests. Only the committer calls it (its
	// groupcommit.Options.Commit).
	commitTxn func(*badger.Txn) error

	// closeMu is held for reading by every writer from before it submits
	// until it has its answer, and for writing by Close, so Close waits for
	// in-flight writes and later writes see closed.
	closeMu sync.RWMutex
	closed  bool        // guarded by closeMu
	shut    atomic.Bool // set with closed; read without the lock by Check

	seq     atomic.Uint64 // evidence key tiebreaker
	applied atomic.Uint64 // AppliedSeq: last replicated record applied (replicate.go)
	pending atomic.Int64  // changes whose Append failed, kept for ReplicatePending
	own     ownChanges    // own changes not applied back from the log yet (own.go)
	sweepMu sync.Mutex    // one Sweep at a time
}

const nStripes = 1024

// Open opens (or creates) the store in cfg.Dir, validates every tenant
// (returning all problems joined), and loads the memory index from disk.
func Open(cfg Config) (*Store, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.DedupeTTL == 0 {
		cfg.DedupeTTL = 72 * time.Hour
	}
	s := &Store{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "consent"),
		clock:      cfg.Clock,
		tenants:    make(map[string]*tenant, len(cfg.Tenants)),
		idx:        newMemIndex(),
		stripeSeed: maphash.MakeSeed(),
		quit:       make(chan struct{}),
		sent:       make(chan string, 8192),
	}
	for _, tc := range cfg.Tenants {
		t, _ := tc.compile() // validated above
		s.tenants[t.cfg.ID] = t
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	// Durability: SyncWrites ON, one transaction per group-commit batch.
	//
	// With SyncWrites off and one db.Sync per batch, an acknowledged change
	// could be lost on power failure: in badger v4.9.6, DB.Sync (db.go:708)
	// syncs only the ACTIVE memtable's WAL and the value log, and
	// ensureRoomForWrite (db.go:1044) rotates the memtable as soon as it is
	// full. If the rotation happened between our commit and the Sync (a batch
	// split over several transactions, or any other unsynced write to this
	// DB), the earlier entries sat in the old memtable's WAL, unsynced until
	// its flush to L0 completed, although the callers were told "stored".
	// With SyncWrites on, writeToLSM (db.go:861) fsyncs the WAL of the
	// memtable each transaction went into before the commit returns, so a
	// later rotation cannot strand it; the committer (commit.go) still puts a
	// whole batch into ONE transaction, so the cost stays one fsync per batch.
	// Every value we write is far below ValueThreshold (1 MiB; held payloads
	// are capped at maxPayload), so it lives in the WAL, whose sync errors
	// Badger returns; a value-log sync error would only be logged
	// (value.go:833).
	opts := badger.DefaultOptions(cfg.Dir).
		WithSyncWrites(true).
		WithDetectConflicts(false). // one committer; stripes serialise read-modify-write
		WithLogger(badgerLogger{s.log}).
		WithNumVersionsToKeep(1)
	if cfg.BadgerLowMemory {
		opts = opts.WithMemTableSize(8 << 20).WithBlockCacheSize(8 << 20).
			WithIndexCacheSize(8 << 20).WithNumMemtables(2).WithValueLogFileSize(64 << 20).
			WithNumCompactors(2)
	}
	if cfg.badgerOptions != nil {
		opts = cfg.badgerOptions(opts)
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: open %s: %v", ErrStorage, cfg.Dir, err)
	}
	s.db = db
	s.opts = opts
	clearSpool(cfg.Dir)
	s.commitTxn = func(txn *badger.Txn) error { return txn.Commit() }
	s.seq.Store(uint64(time.Now().UnixNano()))
	start := time.Now()
	n, err := s.loadIndex()
	if err == nil {
		err = s.loadApplied()
	}
	if err == nil {
		err = s.countPending()
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	s.log.Info("consent store open", "dir", cfg.Dir, "records", n, "load", time.Since(start).Round(time.Millisecond))
	s.start()
	return s, nil
}

// loadIndex mirrors every consent record into the memory index. It hashes
// the raw keys and reads the state and flags bytes of the values in place,
// so loading allocates almost nothing per record.
func (s *Store) loadIndex() (int, error) {
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pfxRecord, 0}
		o.PrefetchValues = false // values are small and stored inline in the LSM tree
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			var packed uint8
			err := item.Value(func(v []byte) error {
				if len(v) < 5 || v[0] != recVersion || State(v[1]) > StateOptedOut {
					return errBadRecord
				}
				r := rec{state: State(v[1]), flags: v[2]}
				packed = r.packed()
				return nil
			})
			if err != nil {
				return fmt.Errorf("%w: record %q: %v", ErrStorage, k, err)
			}
			home, tag := s.idx.hashKey(k)
			s.idx.apply(home, tag, false, true, packed)
			n++
		}
		return nil
	})
	return n, err
}

// Close stops the committer after in-flight writes, syncs and closes Badger.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	s.shut.Store(true)
	s.closeMu.Unlock()
	close(s.quit)
	s.wg.Wait()
	if s.db.IsClosed() {
		return nil // a Reopen closed it and could not open it again
	}
	err := s.db.Sync()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%w: close: %v", ErrStorage, err)
	}
	return nil
}

// begin is called by every writer; end must follow.
func (s *Store) begin() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	if s.failed.Load() {
		// Reads inside a change could see unsynced data of the failed batch.
		s.closeMu.RUnlock()
		return ErrStoreFailed
	}
	return nil
}

func (s *Store) end() { s.closeMu.RUnlock() }

func (s *Store) stripe(tenant, rcpt string) int {
	var h maphash.Hash
	h.SetSeed(s.stripeSeed)
	h.WriteString(tenant)
	h.WriteByte(0)
	h.WriteString(rcpt)
	return int(h.Sum64() % nStripes)
}

func (s *Store) tenant(id string) (*tenant, error) {
	t := s.tenants[id]
	if t == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownTenant, truncate(id, 64))
	}
	return t, nil
}

func checkChannel(ch string) error {
	if !validChannel(ch) {
		return fmt.Errorf("%w: %q", ErrUnknownChannel, truncate(ch, 32))
	}
	return nil
}

// checkSender validates our sender (number, short code or alphanumeric).
func checkSender(s string) error {
	if s == "" || len(s) > 64 || !utf8.ValidString(s) {
		return fmt.Errorf("%w: %q", ErrInvalidSender, truncate(s, 64))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q: control character", ErrInvalidSender, truncate(s, 64))
		}
	}
	return nil
}

// hasControl reports whether s has an ASCII control character (Check's
// cheap form of checkSender; allocation-free).
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

func checkField(name, s string, max int) error {
	if len(s) > max || strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s: longer than %d bytes, NUL or invalid UTF-8", ErrInvalidInput, name, max)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// recipient normalises rcpt for tenant t. An SMS recipient not written
// with "+" is read as NormalizeAddress reads an SMPP address of unknown
// type in the tenant's region (00/011 prefixes, national forms that must be
// valid there), so an operator's or an import's "0612345601" for a US
// tenant is refused instead of being keyed as +10612345601; an ambiguous
// one is refused too (the error matches ErrInvalidNumber as well).
func (t *tenant) recipient(ch, rcpt string) (string, error) {
	if ch == ChannelSMS && !strings.HasPrefix(strings.TrimSpace(rcpt), "+") {
		n, kind, err := NormalizeAddress(rcpt, TONUnknown, 0, t.cfg.DefaultRegion)
		switch {
		case errors.Is(err, ErrAmbiguousNumber):
			return "", fmt.Errorf("%w: %w", ErrInvalidNumber, err)
		case err != nil:
			return "", err
		case kind != AddressNumber:
			return "", fmt.Errorf("%w: %q is not a phone number", ErrInvalidNumber, truncate(rcpt, 32))
		}
		return n, nil
	}
	return NormalizeRecipient(ch, t.cfg.DefaultRegion, rcpt)
}

// Check decides whether a message of category cat may go from sender to
// recipient. It reads only the memory index: at most two lookups (the
// sender-scoped and the tenant-wide record), plus a Badger read in the
// astronomically rare case of a hash collision.
//
// A recipient already in canonical E.164 ("+" and digits; for WhatsApp also
// the bare wa_id digits) takes an allocation-free fast path that does not
// call phonenumbers (see canonicalDigits for what counts as canonical); any
// other form is normalised with the tenant's default region, and a number
// that cannot be normalised is an error matching ErrInvalidNumber. Pass
// numbers produced by NormalizeRecipient to stay on the fast path.
//
// The sender is validated like everywhere else (length, valid UTF-8, no
// control characters: ErrInvalidSender). Errors (unknown tenant or channel, invalid sender or
// number, including a number of impossible length) mean "do not send".
func (s *Store) Check(tenant, channel, sender, recipient string, cat Category) (Decision, error) {
	if s.shut.Load() {
		return Decision{}, ErrClosed // fail closed: nothing is sent unscreened
	}
	t := s.tenants[tenant]
	if t == nil {
		return Decision{}, fmt.Errorf("%w: %q", ErrUnknownTenant, truncate(tenant, 64))
	}
	if !validChannel(channel) {
		return Decision{}, checkChannel(channel)
	}
	if sender == "" || len(sender) > 64 || hasControl(sender) || !utf8.ValidString(sender) {
		return Decision{}, checkSender(sender)
	}
	plus := true
	num, ok := canonicalDigits(channel, recipient)
	if !ok {
		n, err := t.recipient(channel, recipient)
		if err != nil {
			return Decision{}, err
		}
		num, plus = n, false
	}
	home, hs, ht := s.idx.hashes2(tenant, channel, plus, num, senderKey(sender))
	vs, okS, ambS, vt, okT, ambT := s.idx.get2(home, hs, ht)
	if ambS || ambT {
		var err error
		if vs, okS, vt, okT, err = s.readPair(tenant, channel, plus, num, senderKey(sender)); err != nil {
			return Decision{}, err
		}
	}
	d := t.decide(vs, okS, vt, okT, cat)
	s.metrics.decision(d)
	return d, nil
}

// readPair reads both records from Badger (collision fallback).
func (s *Store) readPair(tenant, ch string, plus bool, num, sender string) (vs uint8, okS bool, vt uint8, okT bool, err error) {
	rcpt := num
	if plus {
		rcpt = "+" + num
	}
	err = s.view(func(txn *badger.Txn) error {
		var e1, e2 error
		var r rec
		if okS, e1 = getRec(txn, recordKey(tenant, ch, rcpt, sender), &r); okS {
			vs = r.packed()
		}
		r = rec{}
		if okT, e2 = getRec(txn, recordKey(tenant, ch, rcpt, ""), &r); okT {
			vt = r.packed()
		}
		return errors.Join(e1, e2)
	})
	return
}

func getRec(txn *badger.Txn, key []byte, r *rec) (bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: read: %v", ErrStorage, err)
	}
	if err := item.Value(r.unmarshal); err != nil {
		return false, fmt.Errorf("%w: record: %v", ErrStorage, err)
	}
	return true, nil
}

// decide turns the two packed records into a decision.
func (t *tenant) decide(vs uint8, okS bool, vt uint8, okT bool, cat Category) Decision {
	var flags uint8
	var st State
	if okS {
		_, f := unpack(vs)
		flags |= f
	}
	if okT {
		var f uint8
		st, f = unpack(vt)
		flags |= f
	}
	switch {
	case flags&fAll != 0 && flags&fAllFamily != 0:
		return Decision{Reason: ReasonOptedOutAll, Action: ActionBlock}
	case flags&fAll != 0:
		return Decision{Reason: ReasonOptedOut, Action: ActionBlock}
	case cat == CategoryMarketing && flags&(fMkt|fMktWA) != 0:
		return Decision{Reason: ReasonMarketingOptOut, Action: ActionBlock}
	}
	switch t.cfg.Attestation {
	case ModeAttestation:
		switch st {
		case StateOptedIn:
			return Decision{Allow: true}
		case StatePending:
			return Decision{Reason: ReasonAttestationPending, Action: ActionHold}
		default:
			return Decision{Reason: ReasonNoConsent, Action: ActionHold, Prompt: t.def.AttestationPrompt}
		}
	case ModeDisclaimer:
		if st == StateOptedIn || flags&fDisclaimed != 0 {
			return Decision{Allow: true}
		}
		return Decision{Allow: true, Action: ActionDisclaimFirst, Prompt: t.def.Disclaimer}
	}
	return Decision{Allow: true}
}

// ApplyFooter prepares a bulk (or marketing) text: unless the text already
// says how to opt out, it appends the tenant's localised opt-out footer
// (keyword.Footer in lang, or the tenant's default language when lang is
// empty). Non-bulk texts get no footer. In both cases the result must fit
// the tenant's MaxLength in characters, or the error is a *TooLongError
// (matching ErrTooLong) with the lengths.
func (s *Store) ApplyFooter(tenant, lang, text string, bulk bool) (string, error) {
	t, err := s.tenant(tenant)
	if err != nil {
		return "", err
	}
	footerLen := 0
	if bulk && !keyword.SaysHowToOptOut(text) {
		if lang == "" {
			lang = t.cfg.DefaultLang
		}
		f := keyword.Footer(lang)
		if f == "" {
			f = keyword.Footer(t.cfg.DefaultLang)
		}
		if f != "" {
			sep := "\n"
			if text == "" || strings.HasSuffix(text, "\n") {
				sep = ""
			}
			text = text + sep + f
			footerLen = utf8.RuneCountInString(sep + f)
		}
	}
	if n := utf8.RuneCountInString(text); n > t.cfg.MaxLength {
		return "", &TooLongError{Length: n, Max: t.cfg.MaxLength, FooterLength: footerLen}
	}
	return text, nil
}

// Tenant returns the effective (defaults applied) configuration of a tenant.
func (s *Store) Tenant(id string) (TenantConfig, error) {
	t, err := s.tenant(id)
	if err != nil {
		return TenantConfig{}, err
	}
	return t.cfg, nil
}

// ctxErr returns ctx's error, if any, before a write starts.
func ctxErr(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}

// badgerLogger sends Badger's logs to slog (info and debug as debug).
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(strings.TrimSpace(fmt.Sprintf(f, a...)), "src", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(strings.TrimSpace(fmt.Sprintf(f, a...)), "src", "badger")
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)), "src", "badger")
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug(strings.TrimSpace(fmt.Sprintf(f, a...)), "src", "badger")
}

// ReplySent records that a reply was accepted by the carrier, removing it
// from the pending replies. Removals are batched (up to 1024 at a time,
// through the committer) and ReplySent does not wait for them: one lost in a crash
// means the reply is sent again (at least once).
func (s *Store) ReplySent(id string) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	select {
	case s.sent <- id:
		return nil
	default:
		// The reaper is behind: hand the removal to the committer, which
		// batches it with concurrent changes (no synced write of its own).
		return s.submit([]op{{Key: replyKey(id), Delete: true}}, nil)
	}
}

// replyReaper removes sent replies in batches until Close, through the
// committer (so a fenced store refuses them too), then closes the
// committer: it is its last writer.
func (s *Store) replyReaper(c *groupcommit.Committer) {
	defer s.wg.Done()
	defer c.Close()
	var ops []op
	flush := func(ids []string) {
		// Chunks keep each request well inside the smallest transaction.
		for len(ids) > 0 {
			n := min(len(ids), 128)
			ops = ops[:0]
			for _, id := range ids[:n] {
				ops = append(ops, op{Key: replyKey(id), Delete: true})
			}
			if err := c.WriteLazy(ops...); err != nil {
				s.log.Warn("consent: cannot remove sent replies (they may be sent again)", "err", err)
				return
			}
			ids = ids[n:]
		}
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var ids []string
	for {
		select {
		case id := <-s.sent:
			ids = append(ids, id)
			if len(ids) < 1024 {
				continue
			}
		case <-s.quit:
			for {
				select {
				case id := <-s.sent:
					ids = append(ids, id)
				default:
					flush(ids)
					return
				}
			}
		case <-tick.C:
		}
		flush(ids)
		ids = ids[:0]
	}
}

// PendingReplies calls fn, oldest first, for each reply not yet reported
// sent that was created before olderThan, until fn returns false.
func (s *Store) PendingReplies(olderThan time.Time, fn func(Reply) bool) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	pfx := []byte{pfxReply, 0}
	return s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = pfx
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r Reply
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				s.log.Error("consent: unreadable pending reply", "err", err)
				continue
			}
			if !r.Created.Before(olderThan) {
				return nil // ids are time-ordered
			}
			if !fn(r) {
				return nil
			}
		}
		return nil
	})
}
