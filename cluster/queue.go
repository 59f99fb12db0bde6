package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/optgate/optgate/gateway/outbox"
)

// workPrefix starts every work subject: optgate.work.<kind>.<hash>.
const workPrefix = "optgate.work."

// Defaults of the work queue.
const (
	// DefaultWorkAckWait is how long a node may hold an item without a
	// sign of life before the servers hand it to another node.
	DefaultWorkAckWait = 30 * time.Second
	// workMaxAckPending bounds a kind's items held by all nodes at once
	// (each node also takes no more than its kind's Workers or Inflight).
	workMaxAckPending = 65536
	// workFetchWait bounds one pull request, and so how long Close waits
	// for a fetch under way.
	workFetchWait = time.Second
	// workMaxItem bounds an item's JSON: a queued MT's payload may be
	// a long message (message_payload); NATS's own limit is 1 MiB.
	workMaxItem = 512 << 10
	// workCloseWait bounds Close's wait for the attempts under way.
	workCloseWait = 40 * time.Second
	// workDepthEvery is how often a kind's depth is read from its consumer.
	workDepthEvery = 5 * time.Second
)

// ErrQueueNotAcknowledged is returned by Queue.Put when the stream did not
// acknowledge every item in time: some may be stored anyway (a Put again
// with the same ids stores them once within the de-duplication window).
var ErrQueueNotAcknowledged = errors.New("cluster: work item not acknowledged by a quorum")

// WorkStream is the work queue stream's name for a consent stream name:
// OPTGATE_WORK for OPTGATE_CONSENT.
func WorkStream(stream string) string {
	return strings.TrimSuffix(stream, "_CONSENT") + "_WORK"
}

// elsewhere marks an error of a node that cannot do the work when another
// node may (Elsewhere).
type elsewhere struct{ error }

func (e elsewhere) Unwrap() error { return e.error }

// Elsewhere wraps a handler's temporary error that says "not on this node"
// (the upstream ESME is bound on another node, not here): the item goes
// back to the stream after a short delay (100 ms, doubling with each
// delivery up to 2 s, at most the kind's MaxBackoff; half of it off at
// random) instead of the
// kind's back-off, so that a node that can do it gets it soon.
func Elsewhere(err error) error { return elsewhere{err} }

// Queue is the cluster's work queue: an outbox.Queue whose items live in
// one JetStream work-queue stream (WorkStream of cfg.Stream: file storage,
// the consent stream's replicas, WorkQueue retention, de-duplication by
// Nats-Msg-Id for 2 minutes) instead of a node's disk, so that any node
// delivers what any node put, and an item held by a node that dies is
// delivered by another after cfg.WorkAckWait.
//
// Each kind has one durable pull consumer (optgate-work-<kind>) shared by
// every node; an item is on subject optgate.work.<kind>.<hash>, where hash
// is a keyed hash (HMAC-SHA-256 under cfg.SubjectKey) of its tenant and
// account: never a number. The contract is outbox.Queue's, with these
// mappings:
//
//   - Put returns once every item is acknowledged by the stream (held by a
//     quorum; synced, on embedded servers); Nats-Msg-Id is the kind and the
//     item's id, so a Put retried after a lost acknowledgement stores the
//     item once.
//   - A handler's nil acknowledges (removes) the item; a temporary error
//     naks it with the outbox's back-off (2 s doubling per attempt, capped
//     by MaxBackoff, half of it off at random), or with Elsewhere's short
//     delay; a Permanent error terminates it after GiveUp.
//   - MaxAge is checked when an item is delivered and when an attempt
//     fails: past it the item is given up (GiveUp with outbox.ErrExpired)
//     and terminated, so an item nobody can deliver still ends.
//   - While an attempt is under way the node tells the servers every
//     WorkAckWait/3 (in-progress), for at most twice the kind's Timeout; a
//     node that dies stops telling, and the item goes to another node
//     after WorkAckWait: at least once.
//   - Item.Attempts is the number of earlier deliveries (from any node);
//     LastErr is not carried from one node to the next.
//   - Depth is told the change in the consumer's pending plus held items
//     every 5 s: the cluster's depth, the same on every node.
//   - PerTenant is not enforced.
type Queue struct {
	c      *Conn
	stream string
	log    *slog.Logger
	kinds  map[string]*outbox.Kind // written only before Start
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

var _ outbox.Queue = (*Queue)(nil)

// Queue creates or updates the work queue stream and returns the queue;
// it retries while JetStream has no leader for the stream, until ctx ends.
func (c *Conn) Queue(ctx context.Context) (*Queue, error) {
	q := &Queue{c: c, stream: WorkStream(c.cfg.Stream), log: c.log.With("queue", WorkStream(c.cfg.Stream)),
		kinds: map[string]*outbox.Kind{}, stop: make(chan struct{})}
	scfg := jetstream.StreamConfig{
		Name:        q.stream,
		Description: "optgate work queue: queued MT and spooled deliver_sm, delivered by any node (cluster/queue.go)",
		Subjects:    []string{workPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		Duplicates:  2 * time.Minute,
		MaxMsgSize:  workMaxItem + 1024, // and headers
	}
	err := retry(ctx, func() error {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := c.js.CreateOrUpdateStream(actx, scfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: work queue stream %s: %w", q.stream, err)
	}
	return q, nil
}

// Register adds k; call it before Start, once per name. It panics if k's
// name is not a subject token or k has not exactly one handler (a
// programming error).
func (q *Queue) Register(k outbox.Kind) {
	if !nameRE.MatchString(k.Name) || (k.Deliver == nil) == (k.DeliverAsync == nil) {
		panic(fmt.Sprintf("cluster: work kind %q needs a name (letters, digits, '-', '_') and exactly one of Deliver and DeliverAsync", k.Name))
	}
	k = k.WithDefaults()
	q.kinds[k.Name] = &k
}

// WorkSubject is the subject of an item of kind for tenant and account
// under cfg: optgate.work.<kind>.<16 hex digits of HMAC-SHA-256 of tenant
// and account under cfg.SubjectKey>.
func WorkSubject(cfg *Config, kind, tenant, account string) string {
	h := hmac.New(sha256.New, []byte(cfg.SubjectKey))
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(account))
	var sum [sha256.Size]byte
	return workPrefix + kind + "." + hex.EncodeToString(h.Sum(sum[:0])[:8])
}

// Put stores items in the stream and returns once every one of them is
// acknowledged (held by a quorum), or an error wrapping
// ErrQueueNotAcknowledged after cfg.AckTimeout. It sets Created (and Due)
// when zero, as the outbox does.
func (q *Queue) Put(items ...*outbox.Item) error {
	msgs := make([]*nats.Msg, 0, len(items))
	for _, it := range items {
		if it.ID == "" || it.Kind == "" {
			return outbox.ErrBadItem
		}
		if !nameRE.MatchString(it.Kind) {
			return fmt.Errorf("%w: kind %q is not a subject token", outbox.ErrBadItem, it.Kind)
		}
		v, err := it.Encode()
		if err != nil {
			return err
		}
		if len(v) > workMaxItem {
			return fmt.Errorf("%w: %d bytes, at most %d", outbox.ErrBadItem, len(v), workMaxItem)
		}
		msgs = append(msgs, &nats.Msg{Subject: WorkSubject(q.c.cfg, it.Kind, it.Tenant, it.Account), Data: v,
			Header: nats.Header{jetstream.MsgIDHeader: []string{it.Kind + ":" + it.ID}}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), q.c.cfg.AckTimeout)
	defer cancel()
	if n, cause := q.c.publishAll(ctx, q.stream, msgs, nil); n > 0 {
		if cause == nil {
			cause = ctx.Err()
		}
		return fmt.Errorf("%w: %d of %d item(s) after %v (stream %s): %v", ErrQueueNotAcknowledged, n, len(msgs),
			q.c.cfg.AckTimeout, q.stream, cause)
	}
	return nil
}

// Start starts delivering every registered kind: each creates or binds its
// consumer (retrying until it can) and pulls what it can work.
func (q *Queue) Start() {
	for _, k := range q.kinds {
		q.wg.Add(1)
		go q.run(k)
	}
}

// Close stops pulling and waits (at most 40 s) for the attempts under way
// to end and be settled. Items not settled are delivered again, by any
// node, after WorkAckWait.
func (q *Queue) Close() {
	q.once.Do(func() { close(q.stop) })
	q.wg.Wait()
}

// consumerConfig is kind k's durable pull consumer.
func (q *Queue) consumerConfig(k *outbox.Kind) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       "optgate-work-" + k.Name,
		Description:   "optgate: " + k.Name + " items, pulled by every node",
		FilterSubject: workPrefix + k.Name + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.c.cfg.WorkAckWait,
		MaxDeliver:    -1,
		MaxAckPending: workMaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// sleep waits d or until the queue stops; false when it stopped.
func (q *Queue) sleep(d time.Duration) bool {
	select {
	case <-q.stop:
		return false
	case <-time.After(d):
		return true
	}
}

// run is kind k's puller: it takes free slots, fetches at most that many
// items and works each on a goroutine of its own.
func (q *Queue) run(k *outbox.Kind) {
	defer q.wg.Done()
	var cons jetstream.Consumer
	for cons == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := q.c.js.CreateOrUpdateConsumer(ctx, q.stream, q.consumerConfig(k))
		cancel()
		if err == nil {
			cons = c
			break
		}
		q.log.Warn("cluster: work consumer not ready; retrying", "kind", k.Name, "err", err)
		if !q.sleep(time.Second) {
			return
		}
	}
	slots := k.Workers
	if k.DeliverAsync != nil {
		slots = k.Inflight
	}
	sem := make(chan struct{}, slots)
	var attempts sync.WaitGroup
	defer func() {
		waited := make(chan struct{})
		go func() { attempts.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-time.After(workCloseWait):
			q.log.Error("cluster: work items still under way at close", "kind", k.Name)
		}
	}()
	depth := newDepthReader(cons, k.Depth)
	for {
		select { // one slot, waiting for it
		case sem <- struct{}{}:
		case <-q.stop:
			return
		}
		n := 1
	more:
		for n < slots { // and every other free one
			select {
			case sem <- struct{}{}:
				n++
			default:
				break more
			}
		}
		// Pull requests of random length keep the nodes' requests from
		// lining up in one order: the servers hand an item to the oldest.
		wait := workFetchWait/2 + rand.N(workFetchWait/2+1)
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(wait))
		got := 0
		if err == nil {
			for m := range batch.Messages() {
				got++
				attempts.Add(1)
				go func() {
					defer attempts.Done()
					defer func() { <-sem }()
					q.work(k, m)
				}()
			}
			err = batch.Error()
		}
		for range n - got {
			<-sem
		}
		depth.maybe()
		if err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			q.log.Debug("cluster: work fetch failed", "kind", k.Name, "err", err)
			if !q.sleep(workFetchWait) {
				return
			}
		}
		select {
		case <-q.stop:
			return
		default:
		}
	}
}

// work delivers one message of kind k and settles it.
func (q *Queue) work(k *outbox.Kind, m jetstream.Msg) {
	var it outbox.Item
	if err := json.Unmarshal(m.Data(), &it); err != nil || it.ID == "" {
		q.log.Error("cluster: unreadable work item; dropped", "kind", k.Name, "err", err)
		_ = m.Term()
		return
	}
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 0 {
		it.Attempts = int(md.NumDelivered) - 1
	}
	if k.MaxAge > 0 && time.Since(it.Created) > k.MaxAge {
		q.giveUp(k, m, &it, fmt.Errorf("%w: queued for more than %v (%d deliveries)", outbox.ErrExpired, k.MaxAge, it.Attempts))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.Timeout)
	defer cancel()
	result := make(chan error, 1)
	if k.DeliverAsync != nil {
		var once sync.Once
		k.DeliverAsync(ctx, &it, func(err error) { once.Do(func() { result <- err }) })
	} else {
		go func() { result <- k.Deliver(ctx, &it) }()
	}
	// Tell the servers the item is being worked, so that a send longer
	// than WorkAckWait is not handed to another node; not past twice the
	// attempt's Timeout, so that a handler that never ends does not hold
	// the item for ever.
	tick := time.NewTicker(max(q.c.cfg.WorkAckWait/3, 10*time.Millisecond))
	defer tick.Stop()
	limit := time.Now().Add(2 * k.Timeout)
	var err error
wait:
	for {
		select {
		case err = <-result:
			break wait
		case <-tick.C:
			if time.Now().Before(limit) {
				_ = m.InProgress()
			}
		}
	}
	q.settle(k, m, &it, err)
}

// settle acknowledges, naks or terminates m after an attempt ended with
// err.
func (q *Queue) settle(k *outbox.Kind, m jetstream.Msg, it *outbox.Item, err error) {
	switch {
	case err == nil:
		ctx, cancel := context.WithTimeout(context.Background(), q.c.cfg.AckTimeout)
		defer cancel()
		// Confirmed, so that a lost ack does not redeliver what was done;
		// if it fails anyway the item is delivered again (at least once).
		if aerr := m.DoubleAck(ctx); aerr != nil {
			q.log.Warn("cluster: work item done but its ack failed; it may be delivered again", "kind", k.Name, "id", it.ID, "err", aerr)
		}
	case outbox.IsPermanent(err):
		q.giveUp(k, m, it, err)
	case k.MaxAge > 0 && time.Since(it.Created) > k.MaxAge:
		q.giveUp(k, m, it, fmt.Errorf("%w: %w", outbox.ErrExpired, err))
	default:
		d := retryDelay(k, it.Attempts, err)
		if nerr := m.NakWithDelay(d); nerr != nil {
			q.log.Warn("cluster: work item nak failed; it is delivered again after the ack wait", "kind", k.Name, "id", it.ID, "err", nerr)
		}
		q.log.Debug("cluster: work retry scheduled", "kind", k.Name, "id", it.ID, "attempt", it.Attempts+1, "in", d, "err", err)
	}
}

// giveUp calls GiveUp and terminates m (removed from the work queue).
func (q *Queue) giveUp(k *outbox.Kind, m jetstream.Msg, it *outbox.Item, err error) {
	q.log.Warn("cluster: giving up work item", "kind", k.Name, "id", it.ID, "attempts", it.Attempts+1, "err", err)
	if k.GiveUp != nil {
		k.GiveUp(it, err)
	}
	if terr := m.TermWithReason("given up"); terr != nil {
		q.log.Warn("cluster: work item given up but its term failed; it may be given up again", "kind", k.Name, "id", it.ID, "err", terr)
	}
}

// elsewhereMaxDelay caps the delay of an Elsewhere retry.
const elsewhereMaxDelay = 2 * time.Second

// retryDelay is the wait before an item that failed its attempts-th
// retry is delivered again: the outbox's back-off, or Elsewhere's.
func retryDelay(k *outbox.Kind, attempts int, err error) time.Duration {
	var e elsewhere
	if errors.As(err, &e) {
		// At most 2 s: the item goes to whichever node pulls next, so
		// with a third of the nodes bound it takes a few tries; a longer
		// cap (10 s, as at first) left an MO unforwarded for tens of
		// seconds now and then. The price: an item for an ESME bound
		// nowhere is tried every 1-2 s until it expires.
		d := min(100*time.Millisecond<<min(attempts, 5), elsewhereMaxDelay)
		if k.MaxBackoff > 0 {
			d = min(d, k.MaxBackoff)
		}
		// At random, so that the redelivery does not fall, attempt
		// after attempt, in the same phase of the nodes' pull cycles
		// (and so to the same node).
		return d/2 + rand.N(d/2+1)
	}
	return outbox.Backoff(attempts+1, k.MaxBackoff)
}

// depthReader tells a kind's Depth the change in its consumer's pending
// and held items, at most every workDepthEvery.
type depthReader struct {
	cons jetstream.Consumer
	tell func(int)
	last int
	next time.Time
}

func newDepthReader(cons jetstream.Consumer, tell func(int)) *depthReader {
	return &depthReader{cons: cons, tell: tell}
}

func (d *depthReader) maybe() {
	if time.Now().Before(d.next) {
		return
	}
	d.next = time.Now().Add(workDepthEvery)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	info, err := d.cons.Info(ctx)
	if err != nil {
		return
	}
	n := int(info.NumPending) + info.NumAckPending
	if n != d.last {
		d.tell(n - d.last)
		d.last = n
	}
}
