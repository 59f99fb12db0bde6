package consent

import (
	"hash/maphash"
	"sync"
)

// memIndex mirrors every consent record in memory as a 64-bit keyed hash of
// its key mapped to the record's packed flags and state, so that Check
// answers from memory with two lookups and no allocation. Badger stays the
// durable truth: the index is rebuilt from it at Open and is changed only by
// the committer, after the batch that carries the change was synced.
//
// Hash collisions are handled exactly rather than ignored: each slot counts
// the records hashing to it, and a slot holding more than one record is
// ambiguous, which makes Check read those keys from Badger. The seed is
// random per process, so collisions cannot be crafted and differ per run.
// (A lookup of an absent key that collides with a stored one, probability
// about n/2^64 per lookup, is not detected.)
//
// Each of the 64 shards is an open-addressing table with linear probing
// and backward-shift deletion: one 16-byte entry per record in one array,
// so a lookup usually costs one cache miss (a Go map with 10M entries was
// measured at about twice the cost per lookup).
type memIndex struct {
	seed   maphash.Seed
	shards [indexShards]indexShard
}

const indexShards = 64

type indexShard struct {
	mu      sync.RWMutex
	entries []entry // guarded by mu; len is a power of two; h == 0 means empty
	n       int     // guarded by mu; occupied entries
}

type entry struct {
	h uint64
	s slot
}

// slot is the packed record (low byte) and the number of records sharing the
// hash (high byte, saturating; more than one means ambiguous).
type slot uint16

func (s slot) n() uint8 { return uint8(s >> 8) }
func (s slot) v() uint8 { return uint8(s) }

func newMemIndex() *memIndex {
	x := &memIndex{seed: maphash.MakeSeed()}
	for i := range x.shards {
		x.shards[i].entries = make([]entry, 1024)
	}
	return x
}

// hash hashes a record key's fields. With plus set, a "+" is hashed before
// rcpt, so bare digits and "+digits" hash alike without building a string.
// The byte stream equals the record key after its "c\x00" prefix, so
// hashKey(recordKey(...)) gives the same value.
func (x *memIndex) hash(tenant, ch string, plus bool, rcpt, scope string) uint64 {
	var h maphash.Hash
	h.SetSeed(x.seed)
	h.WriteString(tenant)
	h.WriteByte(0)
	h.WriteString(ch)
	h.WriteByte(0)
	if plus {
		h.WriteByte('+')
	}
	h.WriteString(rcpt)
	h.WriteByte(0)
	h.WriteString(scope)
	return fix(h.Sum64())
}

// hashKey hashes a stored record key (see hash).
func (x *memIndex) hashKey(key []byte) uint64 {
	return fix(maphash.Bytes(x.seed, key[2:]))
}

// fix keeps 0 free as the empty marker.
func fix(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

func (x *memIndex) shard(h uint64) *indexShard { return &x.shards[h>>58] }

// find returns the position of h, or of the empty entry where it would go.
func (sh *indexShard) find(h uint64) (int, bool) {
	mask := len(sh.entries) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		switch sh.entries[i].h {
		case h:
			return i, true
		case 0:
			return i, false
		}
	}
}

// get returns the packed record for h. present is false when no record
// hashes to h; ambiguous is true when several do (read Badger then).
func (x *memIndex) get(h uint64) (v uint8, present, ambiguous bool) {
	sh := x.shard(h)
	sh.mu.RLock()
	i, ok := sh.find(h)
	s := sh.entries[i].s
	sh.mu.RUnlock()
	if !ok {
		return 0, false, false
	}
	return s.v(), true, s.n() > 1
}

// apply records that the record hashing to h went from existed to exists
// with packed value v. Callers serialise changes to one key (stripe lock).
func (x *memIndex) apply(h uint64, existed, exists bool, v uint8) {
	sh := x.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(h)
	s := sh.entries[i].s
	switch {
	case !existed && exists: // insert
		if !ok {
			sh.insertLocked(i, h, slot(1<<8)|slot(v))
		} else if s.n() < 255 {
			sh.entries[i].s = slot(uint16(s.n()+1)<<8) | slot(s.v())
		}
	case existed && exists: // update
		if !ok {
			sh.insertLocked(i, h, slot(1<<8)|slot(v))
		} else if s.n() == 1 {
			sh.entries[i].s = slot(1<<8) | slot(v)
		}
	case existed && !exists: // delete
		if !ok {
			return
		}
		if s.n() <= 1 {
			sh.deleteLocked(i)
		} else if s.n() < 255 {
			// Still ambiguous even at one remaining record: its value is
			// unknown here, so Check keeps reading Badger for this slot.
			sh.entries[i].s = slot(uint16(s.n()-1)<<8) | slot(s.v()) | 0x8000
		}
	}
}

func (sh *indexShard) insertLocked(i int, h uint64, s slot) {
	if (sh.n+1)*4 > len(sh.entries)*3 { // keep the load factor under 3/4
		sh.growLocked()
		i, _ = sh.find(h)
	}
	sh.entries[i] = entry{h: h, s: s}
	sh.n++
}

func (sh *indexShard) growLocked() {
	old := sh.entries
	sh.entries = make([]entry, 2*len(old))
	adviseHuge(sh.entries)
	for _, e := range old {
		if e.h != 0 {
			i, _ := sh.find(e.h)
			sh.entries[i] = e
		}
	}
}

// deleteLocked removes entry i with backward-shift deletion, so probes
// never need tombstones.
func (sh *indexShard) deleteLocked(i int) {
	mask := len(sh.entries) - 1
	for j := (i + 1) & mask; sh.entries[j].h != 0; j = (j + 1) & mask {
		home := int(sh.entries[j].h) & mask
		// Move entry j into the hole at i if its home is not in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			sh.entries[i] = sh.entries[j]
			i = j
		}
	}
	sh.entries[i] = entry{}
	sh.n--
}

// len counts the entries (for tests and logs).
func (x *memIndex) len() int {
	n := 0
	for i := range x.shards {
		x.shards[i].mu.RLock()
		n += x.shards[i].n
		x.shards[i].mu.RUnlock()
	}
	return n
}
