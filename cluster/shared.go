package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Shared is the cluster's map of small facts about recipients that are
// not consent and need no quorum before anyone is answered: the WhatsApp
// customer service window and the channel a recipient last wrote on. A
// fact is put by the node that learnt it and applied by every node (the
// putter included), in one order, so the nodes converge on the last one
// put; a fact lost in a crash before it reached the servers only changes
// a default (the window then opens at the recipient's next message, the
// channel choice falls back).
//
// It is a JetStream key-value bucket (one stream, history 1 per key, file
// storage, the consent stream's replicas, entries kept cfg.SharedTTL).
// A key is an HMAC-SHA-256 of the caller's key under cfg.SubjectKey, so
// no phone number is ever in a subject; the value carries what the
// appliers need. Put never blocks its caller: a bounded queue feeds one
// publisher, and a put that finds the queue full is dropped and counted.
type Shared struct {
	c      *Conn
	kv     jetstream.KeyValue
	bucket string
	queue  chan sharedPut
	done   chan struct{}
	closed atomic.Bool
	wg     sync.WaitGroup

	dropped, failed atomic.Uint64
}

type sharedPut struct {
	key   string
	value []byte
}

// sharedQueue bounds the puts waiting for the publisher.
const sharedQueue = 8192

// SharedBucket is the bucket's name for a consent stream name:
// OPTGATE_SHARED for OPTGATE_CONSENT.
func SharedBucket(stream string) string {
	return strings.TrimSuffix(stream, "_CONSENT") + "_SHARED"
}

// Shared creates or opens the shared bucket and starts its publisher. It
// retries while JetStream has no leader for it, until ctx ends.
func (c *Conn) Shared(ctx context.Context) (*Shared, error) {
	s := &Shared{c: c, bucket: SharedBucket(c.cfg.Stream), queue: make(chan sharedPut, sharedQueue), done: make(chan struct{})}
	cfg := jetstream.KeyValueConfig{Bucket: s.bucket, History: 1, TTL: c.cfg.SharedTTL, Storage: jetstream.FileStorage,
		Replicas: c.cfg.Replicas, Description: "optgate: shared WhatsApp windows and last channels (cluster/shared.go)"}
	err := retry(ctx, func() error {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		kv, err := c.js.CreateOrUpdateKeyValue(actx, cfg)
		s.kv = kv
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: shared bucket %s: %w", s.bucket, err)
	}
	s.wg.Add(1)
	go s.publish()
	return s, nil
}

// Key is the bucket key of a caller's key: hex HMAC-SHA-256 under the
// subject key (the subject is $KV.<bucket>.<key>).
func (s *Shared) Key(key []byte) string {
	h := hmac.New(sha256.New, []byte(s.c.cfg.SubjectKey))
	h.Write([]byte("shared\x00"))
	h.Write(key)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:20])
}

// Put queues value under key for every node; it never blocks. A full
// queue (the servers unreachable for long) drops the put, counted by
// Dropped.
func (s *Shared) Put(key, value []byte) {
	if s == nil || s.closed.Load() {
		return
	}
	select {
	case s.queue <- sharedPut{key: s.Key(key), value: value}:
	default:
		s.dropped.Add(1)
		s.c.metrics.sharedDrop.Inc()
	}
}

// Dropped is how many puts found the queue full; Failed how many the
// servers did not acknowledge.
func (s *Shared) Dropped() uint64 { return s.dropped.Load() }

// Failed is how many puts the servers did not acknowledge.
func (s *Shared) Failed() uint64 { return s.failed.Load() }

func (s *Shared) fail() {
	s.failed.Add(1)
	s.c.metrics.sharedFail.Inc()
}

// publish sends the queued puts asynchronously (the connection's bounded
// window) and settles their acknowledgements in batches.
func (s *Shared) publish() {
	defer s.wg.Done()
	var futs []jetstream.PubAckFuture
	settle := func() {
		for _, f := range futs {
			select {
			case <-f.Ok():
				s.c.metrics.sharedOK.Inc()
			case <-f.Err():
				s.fail()
			case <-time.After(s.c.cfg.AckTimeout):
				s.fail()
			}
		}
		futs = futs[:0]
	}
	for {
		var p sharedPut
		select {
		case p = <-s.queue:
		case <-s.done:
			settle()
			return
		}
		f, err := s.c.js.PublishAsync("$KV."+s.bucket+"."+p.key, p.value)
		if err != nil {
			s.fail()
		} else {
			futs = append(futs, f)
		}
		if len(s.queue) == 0 || len(futs) >= 256 {
			settle()
		}
	}
}

// Watch applies every value in the bucket, then every value put later,
// in the bucket's order, until the returned stop is called (or the
// Shared closes). It returns once the values present when it started are
// applied. apply must not block for long; its error is logged and the
// value skipped (a fact is only a default).
func (s *Shared) Watch(ctx context.Context, apply func(value []byte) error) (stop func(), err error) {
	w, err := s.kv.WatchAll(context.Background(), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("cluster: watching %s: %w", s.bucket, err)
	}
	caughtUp := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer w.Stop()
		initial := true
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case e, ok = <-w.Updates():
			case <-s.done:
				return
			}
			if !ok {
				return
			}
			if e == nil { // the values present at the start are delivered
				if initial {
					initial = false
					close(caughtUp)
				}
				continue
			}
			if err := apply(e.Value()); err != nil {
				s.c.log.Warn("cluster: shared value not applied", "bucket", s.bucket, "err", err)
			}
		}
	}()
	select {
	case <-caughtUp:
	case <-ctx.Done():
		w.Stop()
		return nil, fmt.Errorf("cluster: catching up with %s: %w", s.bucket, ctx.Err())
	}
	return func() { w.Stop() }, nil
}

// Close stops the publisher (after it published what was queued) and the
// watchers.
func (s *Shared) Close() {
	if s == nil || !s.closed.CompareAndSwap(false, true) {
		return
	}
	// What is queued is published before the publisher sees done: drain
	// by waiting for an empty queue, bounded by the ack timeout.
	deadline := time.Now().Add(s.c.cfg.AckTimeout)
	for len(s.queue) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(s.done)
	s.wg.Wait()
}
