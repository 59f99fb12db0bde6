package consent

import (
	"hash/maphash"
	"sync"
)

// memIndex mirrors every consent record in memory as a 64-bit keyed hash of
// its key mapped to the record's packed flags and state, so that Check
// answers from memory with two map lookups and no allocation. Badger stays
// the durable truth: the index is rebuilt from it at Open and is changed
// only by the committer, after the batch that carries the change was synced.
//
// Hash collisions are handled exactly rather than ignored: each slot counts
// the records hashing to it, and a slot holding more than one record is
// ambiguous, which makes Check read those keys from Badger. The seed is
// random per process, so collisions cannot be crafted and differ per run.
type memIndex struct {
	seed   maphash.Seed
	shards [indexShards]indexShard
}

const indexShards = 64

type indexShard struct {
	mu sync.RWMutex
	m  map[uint64]slot // guarded by mu
}

// slot is the packed record (low byte) and the number of records sharing the
// hash (high byte, saturating; more than one means ambiguous).
type slot uint16

func (s slot) n() uint8 { return uint8(s >> 8) }
func (s slot) v() uint8 { return uint8(s) }

func newMemIndex() *memIndex {
	x := &memIndex{seed: maphash.MakeSeed()}
	for i := range x.shards {
		x.shards[i].m = make(map[uint64]slot)
	}
	return x
}

// hash hashes a record key's fields. With plus set, a "+" is hashed before
// rcpt, so bare digits and "+digits" hash alike without building a string.
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
	return h.Sum64()
}

func (x *memIndex) shard(h uint64) *indexShard { return &x.shards[h>>58] }

// get returns the packed record for h. present is false when no record
// hashes to h; ambiguous is true when several do (read Badger then).
func (x *memIndex) get(h uint64) (v uint8, present, ambiguous bool) {
	sh := x.shard(h)
	sh.mu.RLock()
	s, ok := sh.m[h]
	sh.mu.RUnlock()
	return s.v(), ok, s.n() > 1
}

// apply records that the record hashing to h went from existed to exists
// with packed value v. Callers serialise changes to one key (stripe lock).
func (x *memIndex) apply(h uint64, existed, exists bool, v uint8) {
	sh := x.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s, ok := sh.m[h]
	switch {
	case !existed && exists: // insert
		if !ok {
			sh.m[h] = slot(1<<8) | slot(v)
		} else if s.n() < 255 {
			sh.m[h] = slot(uint16(s.n()+1)<<8) | slot(s.v())
		}
	case existed && exists: // update
		if !ok || s.n() == 1 {
			sh.m[h] = slot(1<<8) | slot(v)
		}
	case existed && !exists: // delete
		if !ok {
			return
		}
		if s.n() <= 1 {
			delete(sh.m, h)
		} else if s.n() < 255 {
			// Still ambiguous even at one remaining record: its value is
			// unknown here, so Check keeps reading Badger for this slot.
			sh.m[h] = slot(uint16(s.n()-1)<<8) | slot(s.v()) | 0x8000
		}
	}
}

// len counts the slots (for tests and logs).
func (x *memIndex) len() int {
	n := 0
	for i := range x.shards {
		x.shards[i].mu.RLock()
		n += len(x.shards[i].m)
		x.shards[i].mu.RUnlock()
	}
	return n
}
