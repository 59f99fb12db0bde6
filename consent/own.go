package consent

import "sync"

// ownChanges makes every node apply the log in its order, its own changes
// included, without ever going back over a change of its own.
//
// A node applies every record of the log, its own too (ApplyReplicated),
// so that two nodes that changed one recipient at the same moment end with
// the same value: the one later in the log. Applying an own record again
// is harmless (records carry whole values), except when the node has made
// a newer change to the same key since: applying the older one would
// undo, for a moment, a change already stored here and perhaps already
// acknowledged (a STOP). So for each key this node changed, ownChanges
// keeps the log sequence of its newest own change (known once the quorum
// acknowledged it, under the recipient's stripe, before any record of
// that recipient can be applied), and how many own changes of the key
// wait for ReplicatePending (their sequence is not known yet).
// ApplyReplicated skips an op whose key has a newer own change, or one
// still waiting; that change comes later in the log and sets the key on
// every node. It skips the op of the newest own change itself too: that
// value is stored here already and nothing older was applied over it, so
// only records of keys this node no longer tracks (after a restart) are
// written again.
//
// It holds only keys with own changes not applied back yet: a handful,
// for milliseconds, unless appends fail.
type ownChanges struct {
	mu      sync.Mutex
	seq     map[string]uint64 // key → sequence of the newest own change not applied back
	waiting map[string]int    // key → own changes kept for ReplicatePending
}

// appended notes own changes of keys held by the log at seq.
func (o *ownChanges) appended(keys [][]byte, seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seq == nil {
		o.seq = make(map[string]uint64)
	}
	for _, k := range keys {
		if seq > o.seq[string(k)] {
			o.seq[string(k)] = seq
		}
	}
}

// wait adds d own changes of keys waiting for ReplicatePending.
func (o *ownChanges) wait(keys [][]byte, d int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.waiting == nil {
		o.waiting = make(map[string]int)
	}
	for _, k := range keys {
		n := o.waiting[string(k)] + d
		if n > 0 {
			o.waiting[string(k)] = n
		} else {
			delete(o.waiting, string(k))
		}
	}
}

// superseded reports whether the op on key in the record at seq must be
// skipped: this node made a newer change of key (or one still waiting).
// reached: the record is this node's own (own) newest change of key,
// which forget drops once the record's write is stored.
func (o *ownChanges) superseded(key []byte, seq uint64, own bool) (skip, reached bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.waiting[string(key)] > 0 {
		return true, false
	}
	s, ok := o.seq[string(key)]
	if !ok {
		return false, false
	}
	if s > seq {
		return true, false
	}
	return false, own && s == seq
}

// ownApplied is an own change applied back from the log.
type ownApplied struct {
	key []byte
	seq uint64
}

// forget drops the keys whose newest own change is applied back.
func (o *ownChanges) forget(done []ownApplied) {
	if len(done) == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range done {
		if o.seq[string(d.key)] == d.seq {
			delete(o.seq, string(d.key))
		}
	}
}

// len is how many keys are tracked (tests).
func (o *ownChanges) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.seq) + len(o.waiting)
}
