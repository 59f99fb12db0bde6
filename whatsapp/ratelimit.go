package whatsapp

import (
	"context"
	"sync"
	"time"
)

// bucket is a token bucket of rate tokens a second, holding at most burst tokens. A
// reservation may drive the balance negative; the caller then waits for the returned
// duration. pause holds every reservation back until a time (used after 130429/131056).
type bucket struct {
	rate   float64   // tokens per second
	burst  float64   // bucket size
	tokens float64   // guarded by the owner's mutex
	last   time.Time // guarded by the owner's mutex
	until  time.Time // no grants before this instant; guarded by the owner's mutex
}

func newBucket(rate float64, burst int, now time.Time) bucket {
	if burst < 1 {
		burst = 1
	}
	return bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// reserveLocked takes a token and returns how long to wait before using it.
func (b *bucket) reserveLocked(now time.Time) time.Duration {
	if now.After(b.last) {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		b.last = now
	}
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
	b.tokens--
	var wait time.Duration
	if b.tokens < 0 {
		wait = time.Duration(-b.tokens / b.rate * float64(time.Second))
	}
	if d := b.until.Sub(now); d > wait {
		wait = d
	}
	return wait
}

// cancelLocked gives back a token taken by reserveLocked.
func (b *bucket) cancelLocked() { b.tokens++ }

// idleLocked reports whether the bucket is full and unpaused, i.e. can be forgotten.
func (b *bucket) idleLocked(now time.Time) bool {
	full := b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst
	return full && !now.Before(b.until)
}

// limiter holds the per-number buckets and the per-(number, recipient) pair buckets
// (whatsapp.md §12: 80 messages/s per number by default, 1 message per 6 s per recipient).
type limiter struct {
	numberRate   float64
	numberBurst  int
	pairInterval time.Duration
	pairBurst    int

	mu      sync.Mutex
	numbers map[string]*bucket  // phone-number-id → bucket; guarded by mu
	pairs   map[pairKey]*bucket // guarded by mu
	inserts int                 // pair inserts since the last sweep; guarded by mu
}

type pairKey struct{ number, recipient string }

func newLimiter(numberRate float64, numberBurst int, pairInterval time.Duration, pairBurst int) *limiter {
	return &limiter{
		numberRate: numberRate, numberBurst: numberBurst,
		pairInterval: pairInterval, pairBurst: pairBurst,
		numbers: make(map[string]*bucket), pairs: make(map[pairKey]*bucket),
	}
}

// pairSweepEvery bounds the pair map: every so many inserts, idle buckets are dropped.
const pairSweepEvery = 4096

// wait blocks until both the number's and the pair's buckets grant a send, or fails with
// ErrPairRateLimited (pair wait beyond the ctx deadline) or ctx.Err().
func (l *limiter) wait(ctx context.Context, number, recipient string, now time.Time) error {
	l.mu.Lock()
	nb := l.numbers[number]
	if nb == nil {
		b := newBucket(l.numberRate, l.numberBurst, now)
		nb = &b
		l.numbers[number] = nb
	}
	var pw time.Duration
	var pb *bucket
	if l.pairInterval > 0 {
		k := pairKey{number, recipient}
		pb = l.pairs[k]
		if pb == nil {
			b := newBucket(float64(time.Second)/float64(l.pairInterval), l.pairBurst, now)
			pb = &b
			l.pairs[k] = pb
			l.inserts++
			if l.inserts >= pairSweepEvery {
				l.inserts = 0
				for k, b := range l.pairs {
					if b != pb && b.idleLocked(now) {
						delete(l.pairs, k)
					}
				}
			}
		}
		pw = pb.reserveLocked(now)
		if dl, ok := ctx.Deadline(); ok && now.Add(pw).After(dl) {
			pb.cancelLocked()
			l.mu.Unlock()
			return ErrPairRateLimited
		}
	}
	nw := nb.reserveLocked(now)
	l.mu.Unlock()
	if nw > pw {
		pw = nw
	}
	return sleepCtx(ctx, pw)
}

// pauseNumber holds every send of the number until t (after a 130429 throttle).
func (l *limiter) pauseNumber(number string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.numbers[number]; b != nil && t.After(b.until) {
		b.until = t
	}
}

// pausePair holds sends to one recipient until t (after a 131056 pair throttle).
func (l *limiter) pausePair(number, recipient string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.pairs[pairKey{number, recipient}]; b != nil && t.After(b.until) {
		b.until = t
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
