package coding

import (
	"fmt"
	"sync"
	"time"
)

// Defaults for the zero-value fields of a Reassembler.
const (
	DefaultReassemblyTimeout = 5 * time.Minute
	DefaultMaxSets           = 10000
	DefaultMaxBytes          = 16 << 20
)

// Message is a reassembled multipart message.
type Message struct {
	Key    string     // the caller's key, e.g. source|destination
	Ref    uint16     // concatenation reference
	Ref8   bool       // Ref was an 8-bit UDH reference (IE 0x00)
	Total  uint8      // number of parts joined
	Coding DataCoding // data_coding of part 1 (or the first part to arrive)
	Data   []byte     // the parts' octets joined in sequence order
	Text   string     // Decode(Coding, Data)
	Err    error      // the error from Decode, e.g. ErrBinary; nil for text
}

// DropReason says why a Reassembler gave up on an incomplete set.
type DropReason uint8

const (
	DropExpired DropReason = iota + 1 // Timeout passed since its first part
	DropEvicted                       // removed to stay within MaxSets or MaxBytes
)

func (r DropReason) String() string {
	switch r {
	case DropExpired:
		return "expired"
	case DropEvicted:
		return "evicted"
	}
	return "DropReason(" + fmt.Sprint(uint8(r)) + ")"
}

// Fragment is one received part of an incomplete set.
type Fragment struct {
	Seq  uint8
	Data []byte
}

// Dropped describes an incomplete set that a Reassembler discarded. Parts
// holds what had arrived, in sequence order, so the caller can still deliver
// the fragments one by one (Kannel's behaviour) or log them.
type Dropped struct {
	Key    string
	Ref    uint16
	Ref8   bool // Ref was an 8-bit UDH reference
	Total  uint8
	Coding DataCoding
	Reason DropReason
	First  time.Time // arrival of the first part
	Parts  []Fragment
}

// ReassemblerStats are a Reassembler's gauges and counters since creation.
type ReassemblerStats struct {
	Pending    int    // incomplete sets held
	Bytes      int    // octets of part data held
	Completed  uint64 // sets returned complete (multipart only)
	Duplicates uint64 // parts ignored because their seq had already arrived
	Expired    uint64 // sets dropped by timeout
	Evicted    uint64 // sets dropped to respect MaxSets or MaxBytes
	Refused    uint64 // parts rejected with an error
}

// Reassembler joins the parts of incoming concatenated messages, whether
// they came with a UDH (see ParseUDH and AddUDH) or with sar_* TLVs (Add).
// Parts belong to the same set when key, ref and the reference's width
// match: an 8-bit UDH reference 5 and a 16-bit reference 5 are different
// sets. The caller builds key from whatever identifies the sender and
// recipient (for example "src|dst", plus the bind if references are per
// link).
//
// Memory is bounded. When a new set would exceed MaxSets, or a new part
// would exceed MaxBytes, the oldest incomplete sets are evicted (reported to
// OnDrop with DropEvicted): an old incomplete set is more likely abandoned
// than a new one, and refusing new sets instead would let a burst of stray
// fragments block every multipart message until the timeout. A part that
// does not fit even after every other set has been evicted is refused with
// ErrMemoryLimit.
//
// Sets whose first part arrived Timeout ago or more are dropped with
// DropExpired, by Expire and at the start of every Add (using Now). A
// completed set is forgotten at once, so a part retransmitted after its set
// completed starts a new set, which in time expires.
//
// The zero value is ready to use with the defaults. Set the fields before
// the first Add and do not change them afterwards. A Reassembler is safe
// for concurrent use and must not be copied after first use.
type Reassembler struct {
	// Timeout is how long an incomplete set waits for its missing parts,
	// counted from its first part. Zero means DefaultReassemblyTimeout (5
	// minutes; Kannel waits 1800 s).
	Timeout time.Duration
	// MaxSets bounds the incomplete sets held; zero means DefaultMaxSets.
	MaxSets int
	// MaxBytes bounds the part octets held; zero means DefaultMaxBytes.
	MaxBytes int
	// Now is the clock; nil means time.Now. Tests inject a fake one.
	Now func() time.Time
	// OnDrop, if set, is called for each incomplete set that expires or is
	// evicted. It runs in the goroutine that called Add or Expire, after
	// the Reassembler's lock is released, so it may call the Reassembler.
	OnDrop func(Dropped)

	mu sync.Mutex
	// The fields below are guarded by mu.
	sets       map[setKey]*pendingSet
	head, tail *pendingSet // oldest first, by first arrival
	bytes      int
	stats      ReassemblerStats
}

type setKey struct {
	key  string
	ref  uint16
	ref8 bool // an 8-bit UDH reference: never the same set as a 16-bit one
}

type pendingSet struct {
	k          setKey
	total      uint8
	coding     DataCoding
	haveFirst  bool     // coding came from part 1
	parts      [][]byte // index seq-1; nil until the part arrives
	got        int
	bytes      int
	first      time.Time
	prev, next *pendingSet
}

func (r *Reassembler) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultReassemblyTimeout
}

func (r *Reassembler) maxSets() int {
	if r.MaxSets > 0 {
		return r.MaxSets
	}
	return DefaultMaxSets
}

func (r *Reassembler) maxBytes() int {
	if r.MaxBytes > 0 {
		return r.MaxBytes
	}
	return DefaultMaxBytes
}

func (r *Reassembler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// AddUDH is Add for a part that came with a user data header: the
// reference's width (udh.Ref16) is part of the set's identity.
func (r *Reassembler) AddUDH(key string, udh UDH, coding DataCoding, data []byte) (msg *Message, complete bool, err error) {
	return r.add(key, udh.Ref, !udh.Ref16, udh.Total, udh.Seq, coding, data)
}

// Add records part seq of total of the set (key, ref), where ref is a
// 16-bit reference: sar_msg_ref_num, or a UDH IE 0x08 reference (AddUDH
// tells the two UDH forms apart by itself). data is copied. When
// the part completes its set, Add returns the joined message and complete
// true; a single-part message (total 1) completes at once without being
// stored. A duplicate part (a seq already received) is ignored: the first
// copy wins and Add returns nil, false, nil.
//
// Add returns an error wrapping ErrInvalidPart for total 0, seq 0 or seq >
// total; ErrInconsistent when total differs from the one the set started
// with (the set is kept; the part is refused); ErrMemoryLimit when the
// part cannot fit within MaxBytes.
func (r *Reassembler) Add(key string, ref uint16, total, seq uint8, coding DataCoding, data []byte) (msg *Message, complete bool, err error) {
	return r.add(key, ref, false, total, seq, coding, data)
}

func (r *Reassembler) add(key string, ref uint16, ref8 bool, total, seq uint8, coding DataCoding, data []byte) (msg *Message, complete bool, err error) {
	if total == 0 || seq == 0 || seq > total {
		r.mu.Lock()
		r.stats.Refused++
		r.mu.Unlock()
		return nil, false, fmt.Errorf("%w: part %d of %d", ErrInvalidPart, seq, total)
	}
	if total == 1 {
		d := make([]byte, len(data))
		copy(d, data)
		return newMessage(setKey{key, ref, ref8}, 1, coding, d), true, nil
	}
	var dropped []Dropped
	defer func() { r.report(dropped) }()

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sets == nil {
		r.sets = make(map[setKey]*pendingSet)
	}
	dropped = r.expireLocked(r.now(), dropped)
	maxBytes := r.maxBytes()
	if len(data) > maxBytes {
		r.stats.Refused++
		return nil, false, fmt.Errorf("%w: part of %d octets exceeds %d", ErrMemoryLimit, len(data), maxBytes)
	}
	k := setKey{key, ref, ref8}
	s := r.sets[k]
	if s != nil {
		if s.total != total {
			r.stats.Refused++
			return nil, false, fmt.Errorf("%w: part %d says %d parts, set %q/%d has %d", ErrInconsistent, seq, total, key, ref, s.total)
		}
		if s.parts[seq-1] != nil {
			r.stats.Duplicates++
			return nil, false, nil
		}
	} else {
		for len(r.sets) >= r.maxSets() {
			dropped = r.dropLocked(r.head, DropEvicted, dropped)
		}
		s = &pendingSet{k: k, total: total, coding: coding, parts: make([][]byte, total), first: r.now()}
		r.sets[k] = s
		r.pushLocked(s)
	}
	for r.bytes+len(data) > maxBytes {
		v := r.head
		if v == s {
			v = s.next
		}
		if v == nil {
			break
		}
		dropped = r.dropLocked(v, DropEvicted, dropped)
	}
	if r.bytes+len(data) > maxBytes {
		// Only s itself is left and it is too big with this part.
		r.stats.Refused++
		return nil, false, fmt.Errorf("%w: set %q/%d would hold more than %d octets", ErrMemoryLimit, key, ref, maxBytes)
	}
	d := make([]byte, len(data)) // non-nil even when empty: marks the part present
	copy(d, data)
	s.parts[seq-1] = d
	s.got++
	s.bytes += len(d)
	r.bytes += len(d)
	if seq == 1 && !s.haveFirst {
		s.coding, s.haveFirst = coding, true
	}
	if s.got < int(s.total) {
		return nil, false, nil
	}
	r.removeLocked(s)
	r.stats.Completed++
	joined := make([]byte, 0, s.bytes)
	for _, p := range s.parts {
		joined = append(joined, p...)
	}
	return newMessage(k, total, s.coding, joined), true, nil
}

func newMessage(k setKey, total uint8, coding DataCoding, data []byte) *Message {
	text, err := Decode(coding, data)
	return &Message{Key: k.key, Ref: k.ref, Ref8: k.ref8, Total: total, Coding: coding, Data: data, Text: text, Err: err}
}

// Expire drops the incomplete sets whose first part arrived at least
// Timeout before now, reports them to OnDrop, and returns how many it
// dropped.
func (r *Reassembler) Expire(now time.Time) int {
	r.mu.Lock()
	dropped := r.expireLocked(now, nil)
	r.mu.Unlock()
	r.report(dropped)
	return len(dropped)
}

// Stats returns the current gauges and counters.
func (r *Reassembler) Stats() ReassemblerStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Pending = len(r.sets)
	st.Bytes = r.bytes
	return st
}

func (r *Reassembler) report(dropped []Dropped) {
	if r.OnDrop == nil {
		return
	}
	for _, d := range dropped {
		r.OnDrop(d)
	}
}

// expireLocked drops sets that are Timeout old at now. Sets are listed in
// order of first arrival, so it stops at the first young one.
func (r *Reassembler) expireLocked(now time.Time, dropped []Dropped) []Dropped {
	cutoff := now.Add(-r.timeout())
	for r.head != nil && !r.head.first.After(cutoff) {
		dropped = r.dropLocked(r.head, DropExpired, dropped)
	}
	return dropped
}

func (r *Reassembler) dropLocked(s *pendingSet, why DropReason, dropped []Dropped) []Dropped {
	r.removeLocked(s)
	if why == DropExpired {
		r.stats.Expired++
	} else {
		r.stats.Evicted++
	}
	d := Dropped{Key: s.k.key, Ref: s.k.ref, Ref8: s.k.ref8, Total: s.total, Coding: s.coding, Reason: why, First: s.first}
	if r.OnDrop != nil {
		d.Parts = make([]Fragment, 0, s.got)
		for i, p := range s.parts {
			if p != nil {
				d.Parts = append(d.Parts, Fragment{Seq: uint8(i + 1), Data: p})
			}
		}
	}
	return append(dropped, d)
}

func (r *Reassembler) pushLocked(s *pendingSet) {
	s.prev = r.tail
	if r.tail != nil {
		r.tail.next = s
	} else {
		r.head = s
	}
	r.tail = s
}

func (r *Reassembler) removeLocked(s *pendingSet) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		r.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		r.tail = s.prev
	}
	s.prev, s.next = nil, nil
	delete(r.sets, s.k)
	r.bytes -= s.bytes
}
