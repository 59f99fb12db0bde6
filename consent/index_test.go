package consent

import (
	"math/rand/v2"
	"testing"
)

// TestMemIndexModel checks the open-addressing index against a map, with
// hashes crowded into few home positions so that probing, wrap-around,
// growth and backward-shift deletion are all exercised.
func TestMemIndexModel(t *testing.T) {
	x := newMemIndex()
	model := map[uint64]uint8{}
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() uint64 {
		// Same shard (top bits 0), tags 1..2559 whose homes are crowded
		// near the end of the table.
		return uint64(1 + rng.IntN(2559))
	}
	home := func(tag uint64) uint64 { return uint64(1020 + tag%40) }
	for i := 0; i < 200000; i++ {
		h := key()
		_, existed := model[h]
		switch rng.IntN(3) {
		case 0, 1:
			v := uint8(rng.IntN(128))
			x.apply(home(h), h, existed, true, v)
			model[h] = v
		case 2:
			x.apply(home(h), h, existed, false, 0)
			delete(model, h)
		}
		if i%997 == 0 {
			for k, v := range model {
				got, ok, amb := x.get(home(k), k)
				if !ok || amb || got != v {
					t.Fatalf("step %d: get(%x) = %d %v %v, want %d", i, k, got, ok, amb, v)
				}
			}
			if x.len() != len(model) {
				t.Fatalf("step %d: len %d, want %d", i, x.len(), len(model))
			}
		}
	}
	for k := uint64(1); k < 5000; k++ {
		if _, ok := model[k]; !ok {
			if _, ok, _ := x.get(home(k), k); ok {
				t.Fatalf("absent key %x found", k)
			}
		}
	}
}

// TestMemIndexCollision: two records with one hash make the slot ambiguous
// until both are gone.
func TestMemIndexCollision(t *testing.T) {
	x := newMemIndex()
	x.apply(7, 42, false, true, 1)
	x.apply(7, 42, false, true, 2) // a second record with the same hash
	if _, ok, amb := x.get(7, 42); !ok || !amb {
		t.Fatal("want ambiguous")
	}
	x.apply(7, 42, true, false, 0)
	if _, ok, amb := x.get(7, 42); !ok || !amb {
		t.Fatal("want still ambiguous after one delete")
	}
}

// TestHashKeyMatches: the hashes of a stored key equal those computed from
// its fields, with and without the "+" fast path.
func TestHashKeyMatches(t *testing.T) {
	x := newMemIndex()
	for _, scope := range []string{"", "12345"} {
		k := recordKey("acme", ChannelSMS, "+12025550123", scope)
		h1, t1 := x.hashKey(k)
		h2, t2 := x.hashes("acme", ChannelSMS, false, "+12025550123", scope)
		h3, t3 := x.hashes("acme", ChannelSMS, true, "12025550123", scope)
		if h1 != h2 || t1 != t2 || h1 != h3 || t1 != t3 {
			t.Fatalf("scope %q: hashes differ", scope)
		}
		home, ts, tt := x.hashes2("acme", ChannelSMS, true, "12025550123", "12345")
		if home != h1 || (scope == "" && tt != t1) || (scope != "" && ts != t1) {
			t.Fatalf("scope %q: hashes2 differ", scope)
		}
	}
}
