package consent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Replica is one encoded consent change for the replicated log: Tenant and
// Key choose its shard (Key is the recipient or sender of its first op; it
// is the replicator's to hash, never to send in the clear), Data is what
// ApplyReplicated takes on the other nodes.
type Replica struct {
	Tenant string
	Key    []byte
	Data   []byte
}

// Replicator appends consent changes to a log every node applies (package
// cluster, wired by the gateway). Append returns nil only once every
// replica is held by a quorum; an error leaves the change refused to its
// caller (ErrStorage) although it is stored locally.
type Replicator interface {
	// Append returns each replica's log sequence (seqs[i] for recs[i]).
	Append(ctx context.Context, recs []Replica) (seqs []uint64, err error)
}

// What is replicated: consent records, evidence, MO de-duplication
// markers and held messages (so a YES on any node releases them, and a
// STOP on any node drops them). Archive schedules, held messages' expiry
// index and pending replies stay on the node that made them: their
// sweeps and sends would run once per node otherwise. So a hold expires
// on the node that held it; a release or drop elsewhere deletes the held
// message everywhere, and the holder's expiry entry, finding it gone,
// is removed without an event (expireOne).
func replicated(key []byte) bool {
	return len(key) > 2 && key[1] == 0 &&
		(key[0] == pfxRecord || key[0] == pfxEvidence || key[0] == pfxDedupe || key[0] == pfxHeld)
}

// maxReplicatedPayload bounds a held message's payload when changes are
// replicated: a held message travels in one log record (64 KiB, with its
// key and the change's other ops).
const maxReplicatedPayload = 40 << 10

// appliedKey holds the sequence of the last replicated record applied;
// it and the pending replicas (pendingPrefix) share the prefix n.
var appliedKey = []byte{pfxApplied, 0, 'a', 'p', 'p', 'l', 'i', 'e', 'd'}

const (
	pfxApplied     = 'n'
	replicaVersion = 1
	// maxReplica bounds one replica's Data (the log takes 64 KiB); a
	// change with more ops (an import chunk) is cut into several.
	maxReplica = 48 << 10
)

// ErrBadReplica is matched by the error of a replicated record that does
// not decode.
var ErrBadReplica = errors.New("consent: bad replicated record")

// replicate appends the replicated ops of a change this node committed.
// Callers hold closeMu for reading.
func (s *Store) replicate(ops []op) error {
	var out []Replica
	var keys [][][]byte // the op keys of each replica
	var cur []byte
	var curKeys [][]byte
	var n int
	var tenant, key []byte
	flush := func() {
		if n > 0 {
			out = append(out, Replica{Tenant: string(tenant), Key: key, Data: encodeReplica(s.cfg.Node, n, cur)})
			keys = append(keys, curKeys)
		}
		cur, curKeys, n, tenant, key = nil, nil, 0, nil, nil
	}
	for i := range ops {
		o := &ops[i]
		if !replicated(o.Key) {
			continue
		}
		if n > 0 && len(cur)+len(o.Key)+len(o.Value)+32 > maxReplica {
			flush()
		}
		if n == 0 {
			tenant, key = keyField(o.Key, 0), keyField(o.Key, 2)
		}
		cur = appendOp(cur, o)
		if guarded(o.Key) {
			curKeys = append(curKeys, o.Key)
		}
		n++
	}
	flush()
	if len(out) == 0 {
		return nil
	}
	seqs, err := s.cfg.Replicator.Append(context.Background(), out)
	if err == nil && len(seqs) != len(out) {
		err = fmt.Errorf("replicator returned %d sequences for %d replicas", len(seqs), len(out))
	}
	if err != nil {
		s.metrics.commitErrors.Inc()
		for _, k := range keys {
			s.own.wait(k, 1)
		}
		s.keepPending(out)
		return fmt.Errorf("%w: replicate: %w", ErrStorage, err)
	}
	for i, k := range keys {
		s.own.appended(k, seqs[i])
	}
	return nil
}

// keepPending stores replicas whose Append failed, synced, for
// ReplicatePending to append again: the change is stored here, and a
// source that retries it on this node would find it done (an MO's
// de-duplication marker) and never replicate it.
func (s *Store) keepPending(recs []Replica) {
	ops := make([]op, len(recs))
	now := s.clock().UnixNano()
	for i, r := range recs {
		v := binary.AppendUvarint(nil, uint64(len(r.Tenant)))
		v = append(v, r.Tenant...)
		v = binary.AppendUvarint(v, uint64(len(r.Key)))
		v = append(v, r.Key...)
		k := binary.BigEndian.AppendUint64(append([]byte(nil), pendingPrefix...), uint64(now))
		ops[i] = op{Key: binary.BigEndian.AppendUint64(k, s.seq.Add(1)), Value: append(v, r.Data...)}
	}
	if err := s.write(ops, nil, 0); err != nil {
		s.log.Error("consent change not replicated and not kept for a later append: it stays on this node only", "err", err)
		return
	}
	s.pending.Add(int64(len(ops)))
}

// pendingPrefix starts the keys of replicas kept by keepPending, in the
// order they failed.
var pendingPrefix = []byte{pfxApplied, 0, 'p', 0}

// Pending is how many changes committed here wait for ReplicatePending.
// While any waits, a retried MO is answered ErrStorage rather than
// Duplicate (inbound.go), so its source keeps retrying until the change
// is held by a quorum.
func (s *Store) Pending() int64 { return s.pending.Load() }

// ReplicatePending appends again, oldest first, up to 256 changes whose
// Append failed, and forgets those appended. It returns how many it
// appended; the gateway calls it every second.
func (s *Store) ReplicatePending(ctx context.Context) (int, error) {
	if s.cfg.Replicator == nil || s.pending.Load() == 0 {
		return 0, nil
	}
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.end()
	var keys [][]byte
	var recs []Replica
	err := s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = pendingPrefix
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid() && len(keys) < 256; it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			r, ok := decodePending(v)
			if !ok {
				return fmt.Errorf("%w: bad pending replica", ErrStorage)
			}
			keys = append(keys, it.Item().KeyCopy(nil))
			recs = append(recs, r)
		}
		return nil
	})
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	seqs, err := s.cfg.Replicator.Append(ctx, recs)
	if err == nil && len(seqs) != len(recs) {
		err = fmt.Errorf("replicator returned %d sequences for %d replicas", len(seqs), len(recs))
	}
	if err != nil {
		return 0, fmt.Errorf("%w: replicate: %w", ErrStorage, err)
	}
	for i, r := range recs {
		k := replicaKeys(r.Data)
		s.own.appended(k, seqs[i])
		s.own.wait(k, -1)
	}
	dels := make([]op, len(keys))
	for i, k := range keys {
		dels[i] = op{Key: k, Delete: true}
	}
	if err := s.write(dels, nil, 0); err != nil {
		return len(recs), err // appended again next time: applying twice is harmless
	}
	s.pending.Add(-int64(len(keys)))
	return len(recs), nil
}

func decodePending(v []byte) (Replica, bool) {
	var r Replica
	field := func() (f []byte, ok bool) { f, v, ok = lengthPrefixed(v); return f, ok }
	t, ok1 := field()
	key, ok2 := field()
	r.Tenant, r.Key, r.Data = string(t), key, v
	return r, ok1 && ok2 && len(v) > 0
}

// countPending counts the kept replicas at Open.
func (s *Store) countPending() error {
	return s.db.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = pendingPrefix
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			s.pending.Add(1)
			err := it.Item().Value(func(v []byte) error {
				if r, ok := decodePending(v); ok {
					s.own.wait(replicaKeys(r.Data), 1)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// replicaKeys is the op keys of an encoded replica (none if it does not
// decode).
func replicaKeys(data []byte) [][]byte {
	_, ops, err := decodeReplica(data)
	if err != nil {
		return nil
	}
	var keys [][]byte
	for i := range ops {
		if guarded(ops[i].Key) {
			keys = append(keys, ops[i].Key)
		}
	}
	return keys
}

// guarded reports whether an op's key is one that two changes can set to
// different values (a consent record, a held message): ownChanges tracks
// those. Evidence keys are unique to their change and de-duplication
// markers only ever say the same, so an own one coming back from the log
// is stored already and is skipped without tracking.
func guarded(key []byte) bool { return key[0] == pfxRecord || key[0] == pfxHeld }

// keyField is field i (0: tenant) after a key's one-byte prefix.
func keyField(key []byte, i int) []byte {
	b := key[2:]
	for ; i > 0; i-- {
		j := slices.Index(b, 0)
		if j < 0 {
			return nil
		}
		b = b[j+1:]
	}
	if j := slices.Index(b, 0); j >= 0 {
		b = b[:j]
	}
	return b
}

// Encoding of a replica: version byte, origin node, op count, then per op
// a flags byte (1: delete), key, value and TTL in nanoseconds; lengths
// and counts as uvarints.
func encodeReplica(origin string, n int, ops []byte) []byte {
	b := make([]byte, 0, 16+len(origin)+len(ops))
	b = append(b, replicaVersion)
	b = binary.AppendUvarint(b, uint64(len(origin)))
	b = append(b, origin...)
	b = binary.AppendUvarint(b, uint64(n))
	return append(b, ops...)
}

func appendOp(b []byte, o *op) []byte {
	var flags byte
	if o.Delete {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(o.Key)))
	b = append(b, o.Key...)
	b = binary.AppendUvarint(b, uint64(len(o.Value)))
	b = append(b, o.Value...)
	return binary.AppendUvarint(b, uint64(max(o.TTL, 0)))
}

// decodeReplica is encodeReplica's inverse; it refuses what it did not
// write (unknown version, short or trailing bytes, ops it does not
// replicate).
func decodeReplica(b []byte) (origin string, ops []op, err error) {
	bad := func(what string) (string, []op, error) {
		return "", nil, fmt.Errorf("%w: %s", ErrBadReplica, what)
	}
	if len(b) == 0 || b[0] != replicaVersion {
		return bad("unknown version")
	}
	b = b[1:]
	field := func() (f []byte, ok bool) { f, b, ok = lengthPrefixed(b); return f, ok }
	o, ok := field()
	if !ok {
		return bad("origin")
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return bad("op count")
	}
	b = b[k:]
	ops = make([]op, 0, n)
	for range n {
		if len(b) == 0 || b[0] > 1 {
			return bad("op flags")
		}
		del := b[0] == 1
		b = b[1:]
		key, ok1 := field()
		val, ok2 := field()
		ttl, k := binary.Uvarint(b)
		if !ok1 || !ok2 || k <= 0 || ttl > uint64(1<<62) || !replicated(key) {
			return bad("op")
		}
		b = b[k:]
		ops = append(ops, op{Key: key, Value: val, Delete: del, TTL: time.Duration(ttl)})
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return string(o), ops, nil
}

// lengthPrefixed splits a uvarint-length-prefixed field off b.
func lengthPrefixed(b []byte) (f, rest []byte, ok bool) {
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) {
		return nil, b, false
	}
	return b[k : k+int(l)], b[k+int(l):], true
}

// AppliedSeq is the sequence of the last replicated record this store
// applied (0: none); the follower resumes after it.
func (s *Store) AppliedSeq() uint64 { return s.applied.Load() }

// loadApplied reads AppliedSeq at Open.
func (s *Store) loadApplied() error {
	return s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(appliedKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%w: applied sequence of %d bytes", ErrStorage, len(v))
			}
			s.applied.Store(binary.BigEndian.Uint64(v))
			return nil
		})
	})
}

// ApplyReplicated applies record seq of the replicated log: its ops and
// the applied sequence are written in one synced group-commit request,
// and the memory index is updated by the committer after the sync,
// exactly as for a local change. A record at or below AppliedSeq is
// ignored (idempotent by sequence). A record this node made itself (its
// origin is Config.Node) is applied too, but for the ops on keys this
// node has changed again since (own.go). The caller gives records in
// order.
func (s *Store) ApplyReplicated(seq uint64, data []byte) error {
	return s.ApplyReplicatedBatch(seq, [][]byte{data})
}

// ApplyReplicatedBatch applies records first, first+1, ... of the
// replicated log (datas in order) as ApplyReplicated does, all in one
// synced group-commit request that stores the last one's sequence: a
// follower that applies what arrived together pays one fsync for all of
// it. Records at or below AppliedSeq are skipped. The batch is applied
// whole or not at all.
func (s *Store) ApplyReplicatedBatch(first uint64, datas [][]byte) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	type rec struct {
		seq uint64
		own bool
		ops []op
	}
	applied := s.applied.Load()
	recs := make([]rec, 0, len(datas))
	var all []op
	for i, data := range datas {
		seq := first + uint64(i)
		if seq <= applied {
			continue
		}
		origin, ops, err := decodeReplica(data)
		if err != nil {
			return fmt.Errorf("record %d: %w", seq, err)
		}
		recs = append(recs, rec{seq: seq, own: origin == s.cfg.Node, ops: ops})
		all = append(all, ops...)
	}
	if len(recs) == 0 {
		return nil
	}
	last := recs[len(recs)-1].seq
	unlock := s.lockRecords(all)
	defer unlock()
	// Every record is applied, this node's own too, so that every node
	// ends with the value later in the log; an op on a key this node has
	// changed again since (own.go) is skipped: that change comes later.
	kept := all[:0]
	var forget []ownApplied
	for _, r := range recs {
		for _, o := range r.ops {
			if r.own && !guarded(o.Key) {
				continue // stored when it was made (guarded)
			}
			skip, reached := s.own.superseded(o.Key, r.seq, r.own)
			if reached {
				// This node's newest change of the key, stored here when
				// it was made; nothing older was applied over it since
				// (own.go), so writing it again would change nothing.
				forget = append(forget, ownApplied{o.Key, r.seq})
				continue
			}
			if !skip {
				kept = append(kept, o)
			}
		}
	}
	mem, err := s.memOpsOf(kept)
	if err != nil {
		return err
	}
	kept = append(kept, op{Key: appliedKey, Value: binary.BigEndian.AppendUint64(nil, last)})
	if err := s.write(kept, mem, last); err != nil {
		return err
	}
	s.own.forget(forget)
	return nil
}

// lockRecords takes the stripes of the recipients whose records or held
// messages ops change, in ascending order (the lock order), and returns
// their unlock.
func (s *Store) lockRecords(ops []op) func() {
	var stripes []int
	for i := range ops {
		if k := ops[i].Key; k[0] == pfxRecord || k[0] == pfxHeld {
			stripes = append(stripes, s.stripe(string(keyField(k, 0)), string(keyField(k, 2))))
		}
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		s.stripes[i].Lock()
	}
	return func() {
		for _, i := range stripes {
			s.stripes[i].Unlock()
		}
	}
}

// memOpsOf is the memory-index change of the record ops of a replicated
// change, read against this node's store (callers hold the stripes).
func (s *Store) memOpsOf(ops []op) ([]memOp, error) {
	var mem []memOp
	var after map[string]bool // whether a record exists after an earlier op of ops
	err := s.db.View(func(txn *badger.Txn) error {
		for i := range ops {
			o := &ops[i]
			if o.Key[0] != pfxRecord {
				continue
			}
			existed, ok := after[string(o.Key)]
			if !ok {
				_, err := txn.Get(o.Key)
				existed = err == nil
				if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
					return fmt.Errorf("%w: read: %v", ErrStorage, err)
				}
			}
			if len(ops) > 1 {
				if after == nil {
					after = make(map[string]bool)
				}
				after[string(o.Key)] = !o.Delete
			}
			m := memOp{existed: existed, exists: !o.Delete}
			if !o.Delete {
				var r rec
				if err := r.unmarshal(o.Value); err != nil {
					return fmt.Errorf("%w: record value: %v", ErrBadReplica, err)
				}
				m.v = r.packed()
			}
			if !m.existed && !m.exists {
				continue
			}
			m.home, m.tag = s.idx.hashKey(o.Key)
			mem = append(mem, m)
		}
		return nil
	})
	return mem, err
}
