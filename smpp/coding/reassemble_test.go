package coding

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// fakeClock is an injectable clock for Reassembler tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type partIn struct {
	seq  uint8
	data string
}

func TestReassemblerOrders(t *testing.T) {
	tests := []struct {
		name  string
		total uint8
		parts []partIn
		want  string
	}{
		{"in order", 3, []partIn{{1, "Hel"}, {2, "lo "}, {3, "you"}}, "Hello you"},
		{"reverse", 3, []partIn{{3, "you"}, {2, "lo "}, {1, "Hel"}}, "Hello you"},
		{"shuffled with duplicates", 3, []partIn{{2, "lo "}, {2, "XXX"}, {3, "you"}, {3, "YYY"}, {1, "Hel"}}, "Hello you"},
		{"empty part", 2, []partIn{{2, ""}, {1, "all"}}, "all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Reassembler
			for i, p := range tt.parts {
				msg, complete, err := r.Add("a|b", 7, tt.total, p.seq, GSM7, []byte(p.data))
				requireNoError(t, err)
				last := i == len(tt.parts)-1
				testutil.RequireEqual(t, complete, last)
				if !last {
					testutil.RequireEqual(t, msg == nil, true)
					continue
				}
				testutil.RequireEqual(t, msg.Text, tt.want)
				testutil.RequireEqual(t, string(msg.Data), tt.want)
				testutil.RequireEqual(t, msg.Key, "a|b")
				testutil.RequireEqual(t, msg.Ref, uint16(7))
				testutil.RequireEqual(t, msg.Total, tt.total)
			}
			st := r.Stats()
			testutil.RequireEqual(t, st.Pending, 0)
			testutil.RequireEqual(t, st.Bytes, 0)
			testutil.RequireEqual(t, st.Completed, uint64(1))
		})
	}
}

func TestReassemblerDuplicatesCounted(t *testing.T) {
	var r Reassembler
	_, _, err := r.Add("k", 1, 2, 1, GSM7, []byte("a"))
	requireNoError(t, err)
	msg, complete, err := r.Add("k", 1, 2, 1, GSM7, []byte("b"))
	requireNoError(t, err)
	testutil.RequireEqual(t, complete, false)
	testutil.RequireEqual(t, msg == nil, true)
	testutil.RequireEqual(t, r.Stats().Duplicates, uint64(1))
	testutil.RequireEqual(t, r.Stats().Bytes, 1)
}

func TestReassemblerCopiesData(t *testing.T) {
	var r Reassembler
	buf := []byte("ab")
	_, _, err := r.Add("k", 1, 2, 1, GSM7, buf)
	requireNoError(t, err)
	buf[0], buf[1] = 'x', 'x'
	msg, _, err := r.Add("k", 1, 2, 2, GSM7, []byte("cd"))
	requireNoError(t, err)
	testutil.RequireEqual(t, msg.Text, "abcd")
}

func TestReassemblerSinglePart(t *testing.T) {
	var r Reassembler
	msg, complete, err := r.Add("k", 0, 1, 1, UCS2, []byte{0x04, 0x36})
	requireNoError(t, err)
	testutil.RequireEqual(t, complete, true)
	testutil.RequireEqual(t, msg.Text, "ж")
	testutil.RequireEqual(t, r.Stats().Pending, 0)
}

func TestReassemblerInvalid(t *testing.T) {
	var r Reassembler
	tests := []struct {
		name       string
		total, seq uint8
		err        error
	}{
		{"total zero", 0, 0, ErrInvalidPart},
		{"total zero seq one", 0, 1, ErrInvalidPart},
		{"seq zero", 3, 0, ErrInvalidPart},
		{"seq beyond total", 3, 4, ErrInvalidPart},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := r.Add("k", 1, tt.total, tt.seq, GSM7, []byte("x"))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
		})
	}
	t.Run("inconsistent total", func(t *testing.T) {
		_, _, err := r.Add("k", 9, 3, 1, GSM7, []byte("a"))
		requireNoError(t, err)
		_, _, err = r.Add("k", 9, 4, 2, GSM7, []byte("b"))
		if !errors.Is(err, ErrInconsistent) {
			t.Fatalf("err = %v, want ErrInconsistent", err)
		}
		// The set survives and still completes with consistent parts.
		_, _, err = r.Add("k", 9, 3, 2, GSM7, []byte("b"))
		requireNoError(t, err)
		msg, complete, err := r.Add("k", 9, 3, 3, GSM7, []byte("c"))
		requireNoError(t, err)
		testutil.RequireEqual(t, complete, true)
		testutil.RequireEqual(t, msg.Text, "abc")
	})
	testutil.RequireEqual(t, r.Stats().Refused, uint64(5))
}

func TestReassemblerMixedSets(t *testing.T) {
	var r Reassembler
	type in struct {
		key        string
		ref        uint16
		total, seq uint8
		data       string
	}
	steps := []in{
		{"a|b", 1, 2, 1, "A1"},
		{"a|c", 1, 2, 2, "C2"}, // same ref, other key
		{"a|b", 2, 2, 2, "B2"}, // same key, other ref
		{"a|b", 1, 2, 2, "A2"},
		{"a|c", 1, 2, 1, "C1"},
		{"a|b", 2, 2, 1, "B1"},
	}
	var got []string
	for _, s := range steps {
		msg, complete, err := r.Add(s.key, s.ref, s.total, s.seq, GSM7, []byte(s.data))
		requireNoError(t, err)
		if complete {
			got = append(got, fmt.Sprintf("%s/%d=%s", msg.Key, msg.Ref, msg.Text))
		}
	}
	testutil.RequireEqual(t, got, []string{"a|b/1=A1A2", "a|c/1=C1C2", "a|b/2=B1B2"})
}

func TestReassemblerJoinsBeforeDecoding(t *testing.T) {
	enc := EncodeUCS2("ab😀")
	var r Reassembler
	// A sloppy sender cut the surrogate pair, and even a UTF-16 unit, in two.
	_, _, err := r.Add("k", 3, 2, 2, UCS2, enc[5:])
	requireNoError(t, err)
	msg, complete, err := r.Add("k", 3, 2, 1, UCS2, enc[:5])
	requireNoError(t, err)
	testutil.RequireEqual(t, complete, true)
	testutil.RequireEqual(t, msg.Text, "ab😀")

	// Likewise a GSM-7 escape pair.
	gsm, _ := EncodeGSM7("x€")
	_, _, err = r.Add("k", 4, 2, 1, GSM7, gsm[:2])
	requireNoError(t, err)
	msg, _, err = r.Add("k", 4, 2, 2, GSM7, gsm[2:])
	requireNoError(t, err)
	testutil.RequireEqual(t, msg.Text, "x€")

	// Binary sets complete with the raw octets and ErrBinary.
	_, _, err = r.Add("k", 5, 2, 1, Binary, []byte{1})
	requireNoError(t, err)
	msg, _, err = r.Add("k", 5, 2, 2, Binary, []byte{2})
	requireNoError(t, err)
	requireBytes(t, msg.Data, []byte{1, 2})
	if !errors.Is(msg.Err, ErrBinary) {
		t.Fatalf("msg.Err = %v", msg.Err)
	}
}

func TestReassemblerCodingFromFirstPart(t *testing.T) {
	var r Reassembler
	_, _, err := r.Add("k", 1, 2, 2, 0xF0, []byte("b"))
	requireNoError(t, err)
	msg, _, err := r.Add("k", 1, 2, 1, GSM7, []byte("a"))
	requireNoError(t, err)
	testutil.RequireEqual(t, msg.Coding, GSM7)
}

func TestReassemblerTimeout(t *testing.T) {
	clock := newFakeClock()
	var dropped []Dropped
	r := &Reassembler{Timeout: time.Minute, Now: clock.Now, OnDrop: func(d Dropped) { dropped = append(dropped, d) }}

	_, _, err := r.Add("old", 1, 3, 2, GSM7, []byte("two"))
	requireNoError(t, err)
	_, _, err = r.Add("old", 1, 3, 1, GSM7, []byte("one"))
	requireNoError(t, err)
	clock.Advance(30 * time.Second)
	_, _, err = r.Add("young", 1, 2, 1, GSM7, []byte("y"))
	requireNoError(t, err)

	testutil.RequireEqual(t, r.Expire(clock.Now()), 0)
	clock.Advance(30 * time.Second)
	testutil.RequireEqual(t, r.Expire(clock.Now()), 1)
	testutil.RequireEqual(t, len(dropped), 1)
	d := dropped[0]
	testutil.RequireEqual(t, d.Key, "old")
	testutil.RequireEqual(t, d.Reason, DropExpired)
	testutil.RequireEqual(t, d.Total, uint8(3))
	testutil.RequireEqual(t, d.Parts, []Fragment{{1, []byte("one")}, {2, []byte("two")}})

	// The late part of an expired set starts a new set.
	_, complete, err := r.Add("old", 1, 3, 3, GSM7, []byte("three"))
	requireNoError(t, err)
	testutil.RequireEqual(t, complete, false)

	// Add sweeps by itself using Now.
	clock.Advance(31 * time.Second)
	_, _, err = r.Add("other", 1, 2, 1, GSM7, []byte("o"))
	requireNoError(t, err)
	testutil.RequireEqual(t, len(dropped), 2)
	testutil.RequireEqual(t, dropped[1].Key, "young")

	st := r.Stats()
	testutil.RequireEqual(t, st.Expired, uint64(2))
	testutil.RequireEqual(t, st.Pending, 2)
	testutil.RequireEqual(t, st.Bytes, len("three")+len("o"))
}

func TestReassemblerDefaultTimeout(t *testing.T) {
	clock := newFakeClock()
	r := &Reassembler{Now: clock.Now}
	_, _, err := r.Add("k", 1, 2, 1, GSM7, []byte("a"))
	requireNoError(t, err)
	testutil.RequireEqual(t, r.Expire(clock.Now().Add(DefaultReassemblyTimeout-time.Second)), 0)
	testutil.RequireEqual(t, r.Expire(clock.Now().Add(DefaultReassemblyTimeout)), 1)
}

func TestReassemblerMaxSets(t *testing.T) {
	clock := newFakeClock()
	var dropped []string
	r := &Reassembler{MaxSets: 3, Now: clock.Now, OnDrop: func(d Dropped) {
		testutil.RequireEqual(t, d.Reason, DropEvicted)
		dropped = append(dropped, d.Key)
	}}
	for i := range 5 {
		_, _, err := r.Add(fmt.Sprint(i), 1, 2, 1, GSM7, []byte("x"))
		requireNoError(t, err)
		clock.Advance(time.Second)
	}
	testutil.RequireEqual(t, dropped, []string{"0", "1"})
	st := r.Stats()
	testutil.RequireEqual(t, st.Pending, 3)
	testutil.RequireEqual(t, st.Evicted, uint64(2))
	// Surviving sets still complete; adding to an existing set evicts nothing.
	msg, complete, err := r.Add("2", 1, 2, 2, GSM7, []byte("y"))
	requireNoError(t, err)
	testutil.RequireEqual(t, complete, true)
	testutil.RequireEqual(t, msg.Text, "xy")
	testutil.RequireEqual(t, len(dropped), 2)
}

func TestReassemblerMaxBytes(t *testing.T) {
	var dropped []string
	r := &Reassembler{MaxBytes: 10, OnDrop: func(d Dropped) { dropped = append(dropped, d.Key) }}
	add := func(key string, seq uint8, n int) error {
		_, _, err := r.Add(key, 1, 3, seq, GSM7, []byte(strings.Repeat("x", n)))
		return err
	}
	requireNoError(t, add("a", 1, 4))
	requireNoError(t, add("b", 1, 4))
	requireNoError(t, add("a", 2, 2)) // 10 bytes held
	testutil.RequireEqual(t, r.Stats().Bytes, 10)
	// b needs room: the oldest other set (a) is evicted.
	requireNoError(t, add("b", 2, 5))
	testutil.RequireEqual(t, dropped, []string{"a"})
	testutil.RequireEqual(t, r.Stats().Bytes, 9)
	// A part that cannot fit even alone with its own set is refused.
	if err := add("b", 3, 2); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("err = %v, want ErrMemoryLimit", err)
	}
	if err := add("c", 1, 11); !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("oversized part: err = %v, want ErrMemoryLimit", err)
	}
	st := r.Stats()
	testutil.RequireEqual(t, st.Refused, uint64(2))
	testutil.RequireEqual(t, st.Bytes, 9)
	testutil.RequireEqual(t, st.Pending, 1)
}

func TestReassemblerOnDropMayReenter(t *testing.T) {
	clock := newFakeClock()
	var r *Reassembler
	r = &Reassembler{Timeout: time.Second, Now: clock.Now, OnDrop: func(Dropped) { _ = r.Stats() }}
	_, _, err := r.Add("k", 1, 2, 1, GSM7, nil)
	requireNoError(t, err)
	clock.Advance(time.Second)
	testutil.RequireEqual(t, r.Expire(clock.Now()), 1)
}

func TestReassemblerConcurrent(t *testing.T) {
	var r Reassembler
	const senders, total = 8, 5
	var wg sync.WaitGroup
	results := make([]string, senders)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprint("sender", g)
			for seq := uint8(total); seq >= 1; seq-- {
				msg, complete, err := r.Add(key, uint16(g), total, seq, GSM7, []byte{'0' + seq})
				if err != nil {
					t.Error(err)
					return
				}
				if complete {
					results[g] = msg.Text
				}
			}
		}()
	}
	wg.Wait()
	for g := range senders {
		testutil.RequireEqual(t, results[g], "12345")
	}
	testutil.RequireEqual(t, r.Stats().Completed, uint64(senders))
}

func TestSplitReassembleRoundTrip(t *testing.T) {
	texts := []string{
		strings.Repeat("Grüße {€} ", 60),
		strings.Repeat("Привет 😀 ", 30),
		strings.Repeat("a", 161),
	}
	for _, method := range []Method{UDH8, UDH16, SAR} {
		for i, s := range texts {
			t.Run(fmt.Sprint(method, i), func(t *testing.T) {
				parts, err := Split(s, SplitOptions{Method: method, Ref: 300})
				requireNoError(t, err)
				var r Reassembler
				for j := len(parts) - 1; j >= 0; j-- {
					p := parts[j]
					ref, total, seq, body := p.Ref, p.Total, p.Seq, p.Data
					if p.UDHI {
						udh, b, err := ParseUDH(p.Data)
						requireNoError(t, err)
						ref, total, seq, body = udh.Ref, udh.Total, udh.Seq, b
					}
					msg, complete, err := r.Add("src|dst", ref, total, seq, p.Coding, body)
					requireNoError(t, err)
					testutil.RequireEqual(t, complete, j == 0)
					if complete {
						testutil.RequireEqual(t, msg.Text, s)
					}
				}
			})
		}
	}
}

// An 8-bit and a 16-bit UDH reference with the same number are different
// sets: their parts must not be joined.
func TestReassembleRefWidthsDoNotCollide(t *testing.T) {
	var r Reassembler
	_, complete, err := r.AddUDH("a|b", UDH{Concat: true, Ref: 5, Total: 2, Seq: 1}, GSM7, []byte("eight-"))
	requireNoError(t, err)
	testutil.RequireEqual(t, complete, false)
	_, complete, err = r.AddUDH("a|b", UDH{Concat: true, Ref16: true, Ref: 5, Total: 2, Seq: 2}, GSM7, []byte("sixteen"))
	requireNoError(t, err)
	testutil.RequireEqual(t, complete, false) // not joined with the 8-bit set
	testutil.RequireEqual(t, r.Stats().Pending, 2)
	// A SAR (16-bit) part completes the 16-bit set, not the 8-bit one.
	msg, complete, err := r.Add("a|b", 5, 2, 1, GSM7, []byte("sar-"))
	requireNoError(t, err)
	testutil.RequireEqual(t, complete, true)
	testutil.RequireEqual(t, [3]any{msg.Text, msg.Ref, msg.Ref8}, [3]any{"sar-sixteen", uint16(5), false})
	msg, complete, err = r.AddUDH("a|b", UDH{Concat: true, Ref: 5, Total: 2, Seq: 2}, GSM7, []byte("bit"))
	requireNoError(t, err)
	testutil.RequireEqual(t, complete, true)
	testutil.RequireEqual(t, [3]any{msg.Text, msg.Ref, msg.Ref8}, [3]any{"eight-bit", uint16(5), true})
}
