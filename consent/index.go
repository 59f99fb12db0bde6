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
// the records sharing its tag, and a slot holding more than one record is
// ambiguous, which makes Check read those keys from Badger. The seed is
// random per process, so collisions cannot be crafted and differ per run.
// (A lookup of an absent key that collides with a stored one, probability
// about n/2^64 per lookup, is not detected.)
//
// Each of the 64 shards is an open-addressing table with linear probing
// and backward-shift deletion: one 16-byte entry per record in one array.
// Records are placed by a hash of (tenant, channel, recipient) and told
// apart by a hash of the whole key, so a Check finds both of its records
// with one probe sequence, usually one cache miss (a Go map keyed by the
// whole-key hash cost two misses and measured about twice as slow).
type memIndex struct {
	seed   maphash.Seed
	shards [indexShards]indexShard
}

const indexShards = 64

type indexShard struct {
	mu      sync.RWMutex
	entries []entry // guarded by mu; len is a power of two; tag == 0 means empty
	n       int     // guarded by mu; occupied entries
}

// entry is one record: its tag (hash of the whole key), the low bits of its
// home (hash of the key without the scope) and its slot. All scopes of one
// recipient share a home, so Check finds the sender-scoped and tenant-wide
// records in one probe sequence, usually within one cache line.
type entry struct {
	tag  uint64
	home uint32
	s    slot
}

// slot is the packed record (low byte) and the number of records sharing the
// tag (high byte, saturating; more than one means ambiguous).
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

// hashes returns the home (hash of tenant, channel and recipient) and the
// tag (hash of the whole key) of a record. With plus set, a "+" is hashed
// before rcpt, so bare digits and "+digits" hash alike without building a
// string. The byte stream equals the record key after its "c\x00" prefix,
// so hashKey(recordKey(...)) gives the same values.
func (x *memIndex) hashes(tenant, ch string, plus bool, rcpt, scope string) (home, tag uint64) {
	var h maphash.Hash
	x.recipientHash(&h, tenant, ch, plus, rcpt)
	home = h.Sum64()
	h.WriteByte(0)
	h.WriteString(scope)
	return home, fix(h.Sum64())
}

// hashes2 returns the home and the tags of the sender-scoped and the
// tenant-wide record of one recipient, hashing the common part once.
func (x *memIndex) hashes2(tenant, ch string, plus bool, rcpt, sender string) (home, tagS, tagT uint64) {
	var h maphash.Hash
	x.recipientHash(&h, tenant, ch, plus, rcpt)
	home = h.Sum64()
	h.WriteByte(0)
	tagT = fix(h.Sum64()) // scope "" adds no bytes after the separator
	h.WriteString(sender)
	return home, fix(h.Sum64()), tagT
}

func (x *memIndex) recipientHash(h *maphash.Hash, tenant, ch string, plus bool, rcpt string) {
	h.SetSeed(x.seed)
	h.WriteString(tenant)
	h.WriteByte(0)
	h.WriteString(ch)
	h.WriteByte(0)
	if plus {
		h.WriteByte('+')
	}
	h.WriteString(rcpt)
}

// hashKey hashes a stored record key (see hashes).
func (x *memIndex) hashKey(key []byte) (home, tag uint64) {
	body := key[2:]
	i := len(body) - 1
	for i >= 0 && body[i] != 0 {
		i--
	}
	if i < 0 {
		i = len(body)
	}
	var h maphash.Hash
	h.SetSeed(x.seed)
	h.Write(body[:i])
	home = h.Sum64()
	h.Write(body[i:])
	return home, fix(h.Sum64())
}

// fix keeps 0 free as the empty marker.
func fix(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

func (x *memIndex) shard(home uint64) *indexShard { return &x.shards[home>>58] }

// find returns the position of tag, or of the empty entry where it would go.
func (sh *indexShard) find(home, tag uint64) (int, bool) {
	mask := len(sh.entries) - 1
	for i := int(uint32(home)) & mask; ; i = (i + 1) & mask {
		switch sh.entries[i].tag {
		case tag:
			return i, true
		case 0:
			return i, false
		}
	}
}

// get2 looks up the sender-scoped (tagS) and tenant-wide (tagT) records of
// one recipient in one probe sequence. For each: the packed record, whether
// one exists, and whether several records share the tag (read Badger then).
func (x *memIndex) get2(home, tagS, tagT uint64) (vs uint8, okS, ambS bool, vt uint8, okT, ambT bool) {
	sh := x.shard(home)
	sh.mu.RLock()
	mask := len(sh.entries) - 1
	var s1, s2 slot
	for i := int(uint32(home)) & mask; ; i = (i + 1) & mask {
		e := &sh.entries[i]
		if e.tag == 0 {
			break
		}
		if e.tag == tagS {
			s1, okS = e.s, true
		} else if e.tag == tagT {
			s2, okT = e.s, true
		}
		if okS && okT {
			break
		}
	}
	sh.mu.RUnlock()
	return s1.v(), okS, s1.n() > 1, s2.v(), okT, s2.n() > 1
}

// get returns the packed record of (home, tag) (see get2).
func (x *memIndex) get(home, tag uint64) (v uint8, present, ambiguous bool) {
	sh := x.shard(home)
	sh.mu.RLock()
	i, ok := sh.find(home, tag)
	s := sh.entries[i].s
	sh.mu.RUnlock()
	if !ok {
		return 0, false, false
	}
	return s.v(), true, s.n() > 1
}

// apply records that the record (home, tag) went from existed to exists
// with packed value v. Callers serialise changes to one key (stripe lock).
func (x *memIndex) apply(home, tag uint64, existed, exists bool, v uint8) {
	sh := x.shard(home)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(home, tag)
	s := sh.entries[i].s
	switch {
	case !existed && exists: // insert
		if !ok {
			sh.insertLocked(i, home, tag, slot(1<<8)|slot(v))
		} else if s.n() < 255 {
			sh.entries[i].s = slot(uint16(s.n()+1)<<8) | slot(s.v())
		}
	case existed && exists: // update
		if !ok {
			sh.insertLocked(i, home, tag, slot(1<<8)|slot(v))
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

func (sh *indexShard) insertLocked(i int, home, tag uint64, s slot) {
	if (sh.n+1)*4 > len(sh.entries)*3 { // keep the load factor under 3/4
		sh.growLocked()
		i, _ = sh.find(home, tag)
	}
	sh.entries[i] = entry{tag: tag, home: uint32(home), s: s}
	sh.n++
}

func (sh *indexShard) growLocked() {
	old := sh.entries
	sh.entries = make([]entry, 2*len(old))
	adviseHuge(sh.entries)
	for _, e := range old {
		if e.tag != 0 {
			i, _ := sh.find(uint64(e.home), e.tag)
			sh.entries[i] = e
		}
	}
}

// deleteLocked removes entry i with backward-shift deletion, so probes
// never need tombstones.
func (sh *indexShard) deleteLocked(i int) {
	mask := len(sh.entries) - 1
	for j := (i + 1) & mask; sh.entries[j].tag != 0; j = (j + 1) & mask {
		home := int(sh.entries[j].home) & mask
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
