package cluster

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ApplyFunc applies one record of the consent log to the node's local
// state. The contract:
//
//   - Records come one at a time, in stream order, seq strictly increasing,
//     starting after the sequence given to Follow. Apply is never called
//     for a seq at or below one it already returned nil for, so it need not
//     detect replays within one Follower's life.
//   - Apply must store seq as its last applied sequence in the same atomic,
//     synced write as the change itself (one Badger batch), and give that
//     sequence to Follow after a restart: then no record is applied twice
//     and none is skipped, whatever the crash point.
//   - A record this node appended itself comes back through Apply too: the
//     change is already in the local store, so applying it again must leave
//     the same state (consent changes are idempotent by content).
//   - An error stops the feed: the same record is offered again after a
//     pause, and meanwhile the node's lag grows until Healthy fails it
//     closed. rec.Data is Apply's to keep.
type ApplyFunc func(seq uint64, rec Record) error

// ApplyBatchFunc applies consecutive records of the consent log: recs[i]
// has sequence first+i. The contract is ApplyFunc's, for the batch as a
// whole: the batch is applied in one atomic, synced write that stores
// first+len(recs)-1 as the last applied sequence, or not at all (an
// error offers the same records again, perhaps batched otherwise). One
// synced write per batch instead of per record is what lets a node keep
// up with the log: a fsync per record caps a node near a thousand records
// a second on ordinary disks.
type ApplyBatchFunc func(first uint64, recs []Record) error

// Batches the follower hands to an ApplyBatchFunc: the records delivered
// and waiting, up to these bounds (well inside a Badger transaction).
const (
	maxBatchRecords = 256
	maxBatchBytes   = 1 << 20
)

// Errors of Healthy and Follow.
var (
	ErrNotReady  = errors.New("cluster: consent log not caught up yet")
	ErrFeedDown  = errors.New("cluster: consent feed not connected")
	ErrNoQuorum  = errors.New("cluster: consent stream out of quorum")
	ErrLagging   = errors.New("cluster: consent log lagging")
	ErrApply     = errors.New("cluster: applying the consent log failed")
	ErrLogBroken = errors.New("cluster: consent log does not continue this node's applied sequence")
)

// Follower applies the consent stream, in order, to an ApplyFunc and
// tracks how stale this node is. Lag is now minus the latest time at which
// the node is known to have applied everything the stream held: a probe of
// the stream's last sequence every cfg.Heartbeat (sent at t0, answering L)
// proves the node current as of t0 once it has applied L, so an idle
// cluster does not look stale; an applied record proves it current as of
// the record's stream timestamp (the leader's clock).
type Follower struct {
	c       *Conn
	apply   ApplyBatchFunc
	started time.Time

	applied atomic.Uint64
	asOf    atomic.Int64 // unix ns; 0 until the first proof
	ready   atomic.Bool
	running atomic.Bool // a consumer is delivering
	// ok caches Healthy's verdict but for the lag, refreshed every
	// heartbeat and cleared at once when the consumer stops; Current adds
	// the live lag.
	ok atomic.Bool

	mu     sync.Mutex // guards the fields below
	probes []probe    // unconfirmed probes, seq ascending
	state  streamState
	err    error // the feed's last error, nil once it delivers again
	fatal  error // ErrLogBroken: the feed stopped for good
	iter   jetstream.MessagesContext

	stop chan struct{}
	wg   sync.WaitGroup
}

type probe struct {
	seq uint64
	t0  time.Time
}

// streamState is what the last probe learned.
type streamState struct {
	last, msgs, bytes uint64
	peers             []Peer
	quorum            bool
}

// Peer is one replica of the consent stream as its leader sees it.
type Peer struct {
	Name    string
	Leader  bool
	Current bool
	Offline bool
	Active  time.Duration // since the leader last heard from it
	Lag     uint64        // operations behind the leader
}

// Status is a snapshot of the follower.
type Status struct {
	Node          string
	Applied       uint64        // last stream sequence applied
	StreamLast    uint64        // the stream's last sequence at the last probe
	Lag           time.Duration // staleness; since the start until the first proof
	Ready         bool          // caught up once since Follow
	FeedConnected bool
	Quorum        bool // the last probe found a leader and a quorum of current replicas
	Peers         []Peer
	StreamMsgs    uint64
	StreamBytes   uint64
	Err           error // why the feed is not delivering, if it is not
}

const (
	maxProbes  = 256
	retryPause = 250 * time.Millisecond
)

// Follow starts applying the stream from sequence from+1 (from is the last
// sequence the caller applied, 0 for none) and returns once this node has
// caught up with the stream as it was when Follow started, or an error
// when it cannot within cfg.StartWait or ctx. Close stops it.
func (c *Conn) Follow(ctx context.Context, from uint64, apply ApplyFunc) (*Follower, error) {
	last := from // records up to last are applied (a failed batch is offered again)
	return c.FollowBatch(ctx, from, func(first uint64, recs []Record) error {
		for i := range recs {
			seq := first + uint64(i)
			if seq <= last {
				continue
			}
			if err := apply(seq, recs[i]); err != nil {
				return err
			}
			last = seq
		}
		return nil
	})
}

// FollowBatch is Follow with an ApplyBatchFunc: the records that are
// delivered and waiting are applied together.
func (c *Conn) FollowBatch(ctx context.Context, from uint64, apply ApplyBatchFunc) (*Follower, error) {
	f := &Follower{c: c, apply: apply, started: time.Now(), stop: make(chan struct{})}
	f.applied.Store(from)
	f.wg.Add(2)
	go f.consume()
	go f.heartbeat()
	c.metrics.follow(f)
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StartWait)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !f.ready.Load() {
		select {
		case <-ctx.Done():
			err := f.Status().Err
			f.Close()
			return nil, fmt.Errorf("%w: from sequence %d after %v: %v", ErrNotReady, from, time.Since(f.started).Round(time.Millisecond), err)
		case <-t.C:
		}
	}
	return f, nil
}

// Close stops the follower and waits for its goroutines.
func (f *Follower) Close() {
	f.mu.Lock()
	select {
	case <-f.stop:
		f.mu.Unlock()
		return
	default:
	}
	close(f.stop)
	it := f.iter
	f.mu.Unlock()
	if it != nil {
		it.Stop()
	}
	f.wg.Wait()
	f.c.metrics.unfollow(f)
}

// consume runs ordered consumers from the last applied sequence, one at a
// time, until Close; an error pauses, then starts a new consumer.
func (f *Follower) consume() {
	defer f.wg.Done()
	for {
		err := f.consumeOnce()
		f.running.Store(false)
		f.ok.Store(false)
		f.mu.Lock()
		if errors.Is(err, ErrLogBroken) {
			f.fatal = err
		}
		f.err = err
		f.iter = nil
		fatal := f.fatal != nil
		f.mu.Unlock()
		if fatal {
			f.c.log.Error("cluster: consent feed stopped", "err", err)
			return
		}
		if err != nil {
			f.c.log.Warn("cluster: consent feed interrupted", "err", err, "applied", f.applied.Load())
		}
		select {
		case <-f.stop:
			return
		case <-time.After(retryPause):
		}
	}
}

// pullExpiry is the expiry of the follower's pull requests (see
// consumeOnce).
const pullExpiry = 2 * time.Second

func (f *Follower) consumeOnce() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cons, err := f.c.js.OrderedConsumer(ctx, f.c.cfg.Stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   f.applied.Load() + 1,
	})
	if err != nil {
		return fmt.Errorf("cluster: consumer on %s: %w", f.c.cfg.Stream, err)
	}
	// A pull that goes astray (route churn while the nodes start, the
	// server holding the consumer gone) is noticed by two missed idle
	// heartbeats, which are half the pull's expiry: 2 s here instead of
	// the library's 10 s for ordered consumers, since the node fails
	// closed all that time.
	it, err := cons.Messages(jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return fmt.Errorf("cluster: consumer on %s: %w", f.c.cfg.Stream, err)
	}
	f.mu.Lock()
	select {
	case <-f.stop:
		f.mu.Unlock()
		it.Stop()
		return nil
	default:
	}
	f.iter, f.err = it, nil
	f.mu.Unlock()
	f.running.Store(true)
	// A reader hands the delivered messages over, so that the ones that
	// arrived while a batch was being applied are applied together.
	msgs := make(chan jetstream.Msg, maxBatchRecords)
	errc := make(chan error, 1)
	done := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() {
		for {
			msg, err := it.Next()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- msg:
			case <-done:
				return
			}
		}
	})
	defer reader.Wait()
	defer close(done)
	batch := make([]jetstream.Msg, 0, maxBatchRecords)
	for {
		var msg jetstream.Msg
		select {
		case msg = <-msgs:
		case err := <-errc:
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		batch = append(batch[:0], msg)
		size := len(msg.Data())
	more:
		for len(batch) < maxBatchRecords && size < maxBatchBytes {
			select {
			case m := <-msgs:
				batch = append(batch, m)
				size += len(m.Data())
			default:
				break more
			}
		}
		if err := f.handle(batch); err != nil {
			it.Stop()
			return err
		}
	}
}

// handle applies a batch of delivered messages: those after the applied
// sequence, which must continue it without a gap.
func (f *Follower) handle(batch []jetstream.Msg) error {
	applied := f.applied.Load()
	recs := make([]Record, 0, len(batch))
	var last time.Time
	for _, msg := range batch {
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("cluster: consent message without metadata: %w", err)
		}
		seq := meta.Sequence.Stream
		if seq <= applied+uint64(len(recs)) {
			continue // redelivered after a consumer reset
		}
		if seq != applied+uint64(len(recs))+1 {
			return fmt.Errorf("%w: applied %d, the stream's next is %d (bootstrap this node from a snapshot)",
				ErrLogBroken, applied+uint64(len(recs)), seq)
		}
		recs = append(recs, Record{Tenant: tenantOf(msg.Subject()), ID: msg.Headers().Get(jetstream.MsgIDHeader),
			Data: msg.Data(), Time: meta.Timestamp})
		last = meta.Timestamp
	}
	if len(recs) == 0 {
		return nil
	}
	first := applied + 1
	if err := f.apply(first, recs); err != nil {
		return fmt.Errorf("%w: sequences %d-%d: %v", ErrApply, first, applied+uint64(len(recs)), err)
	}
	seq := applied + uint64(len(recs))
	f.applied.Store(seq)
	f.confirm(seq, last)
	return nil
}

// tenantOf is the tenant token of optgate.consent.<tenant>.<shard>.
func tenantOf(subject string) string {
	s := strings.TrimPrefix(subject, subjectPrefix)
	if i := strings.IndexByte(s, '.'); i >= 0 {
		return s[:i]
	}
	return s
}

// confirm records that everything up to seq is applied: the node is current
// as of t and as of every probe that asked for at most seq.
func (f *Follower) confirm(seq uint64, t time.Time) {
	f.mu.Lock()
	n := 0
	for n < len(f.probes) && f.probes[n].seq <= seq {
		if f.probes[n].t0.After(t) {
			t = f.probes[n].t0
		}
		n++
	}
	f.probes = f.probes[n:]
	f.mu.Unlock()
	f.advance(t)
	if n > 0 {
		f.ready.Store(true)
	}
}

func (f *Follower) advance(t time.Time) {
	ns := t.UnixNano()
	for {
		old := f.asOf.Load()
		if ns <= old || f.asOf.CompareAndSwap(old, ns) {
			return
		}
	}
}

// heartbeat probes the stream every cfg.Heartbeat and samples the lag.
func (f *Follower) heartbeat() {
	defer f.wg.Done()
	t := time.NewTicker(f.c.cfg.Heartbeat)
	defer t.Stop()
	timeout := max(4*f.c.cfg.Heartbeat, 500*time.Millisecond)
	var stream jetstream.Stream
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		var info *jetstream.StreamInfo
		var err error
		if stream == nil {
			stream, err = f.c.js.Stream(ctx, f.c.cfg.Stream)
			if err == nil {
				info = stream.CachedInfo()
			}
		} else {
			info, err = stream.Info(ctx)
		}
		cancel()
		f.probed(t0, info, err)
		err = f.Healthy(time.Duration(math.MaxInt64))
		f.ok.Store(err == nil)
		f.c.metrics.sampleLag(f.Status().Lag)
	}
}

// probed records a probe's answer (or its failure: no quorum known).
func (f *Follower) probed(t0 time.Time, info *jetstream.StreamInfo, err error) {
	routed := f.routedQuorum()
	if err != nil {
		f.mu.Lock()
		f.state.quorum = false
		f.mu.Unlock()
		return
	}
	st := streamState{last: info.State.LastSeq, msgs: info.State.Msgs, bytes: info.State.Bytes, quorum: routed}
	if ci := info.Cluster; ci != nil {
		var q bool
		st.peers, q = peersOf(ci)
		st.quorum = q && routed
	}
	applied := f.applied.Load()
	f.mu.Lock()
	f.state = st
	// An answer below applied (a new leader still applying its log, or a
	// recreated stream) proves nothing: the lag grows until one that does.
	if st.last > applied {
		if len(f.probes) == maxProbes {
			// Dropping the oldest only delays a proof: lag over-estimated.
			f.probes = append(f.probes[:0], f.probes[1:]...)
		}
		f.probes = append(f.probes, probe{seq: st.last, t0: t0})
	}
	f.mu.Unlock()
	if st.last == applied {
		f.advance(t0)
		f.ready.Store(true)
	}
}

// routedQuorum says whether this node's embedded server has routes to
// enough peers to be in a majority of the stream's replicas; true with an
// external cluster, where the stream info is all we know.
func (f *Follower) routedQuorum() bool {
	if f.c.srv == nil {
		return true
	}
	return f.c.srv.Peers()+1 >= f.c.cfg.Replicas/2+1
}

// peersOf lists the stream's replicas and says whether a leader and a
// quorum of current replicas exist.
func peersOf(ci *jetstream.ClusterInfo) ([]Peer, bool) {
	peers := make([]Peer, 0, len(ci.Replicas)+1)
	current := 0
	if ci.Leader != "" {
		peers = append(peers, Peer{Name: ci.Leader, Leader: true, Current: true})
		current++
	}
	for _, r := range ci.Replicas {
		if r == nil {
			continue
		}
		peers = append(peers, Peer{Name: r.Name, Current: r.Current, Offline: r.Offline, Active: r.Active, Lag: r.Lag})
		if r.Current && !r.Offline {
			current++
		}
	}
	return peers, ci.Leader != "" && current >= len(peers)/2+1
}

// Status is a snapshot of the follower's state.
func (f *Follower) Status() Status {
	s := Status{
		Node:          f.c.cfg.Node,
		Applied:       f.applied.Load(),
		Ready:         f.ready.Load(),
		FeedConnected: f.running.Load() && f.c.nc.IsConnected(),
	}
	if ns := f.asOf.Load(); ns != 0 {
		s.Lag = time.Since(time.Unix(0, ns))
	} else {
		s.Lag = time.Since(f.started)
	}
	f.mu.Lock()
	s.StreamLast, s.StreamMsgs, s.StreamBytes = f.state.last, f.state.msgs, f.state.bytes
	s.Quorum = f.state.quorum
	s.Peers = append([]Peer(nil), f.state.peers...)
	s.Err = f.err
	if f.fatal != nil {
		s.Err = f.fatal
		s.FeedConnected = false
	}
	f.mu.Unlock()
	return s
}

// Current is Healthy(maxLag) == nil for the MT hot path: no lock, no
// allocation. The verdict but for the lag is the one of the last heartbeat
// (at most cfg.Heartbeat old, and cleared at once when the feed stops);
// the lag is measured now, so a stalled heartbeat cannot keep a node
// current past maxLag.
func (f *Follower) Current(maxLag time.Duration) bool {
	ns := f.asOf.Load()
	return f.ok.Load() && ns != 0 && time.Now().UnixNano()-ns <= int64(maxLag)
}

// Healthy returns nil when this node may screen MT against its local
// consent state: caught up, feed connected, stream in quorum and lag
// within maxLag (cfg.MaxLag when 0). Otherwise it returns why, wrapping
// one of ErrNotReady, ErrFeedDown, ErrNoQuorum, ErrLagging or
// ErrLogBroken: the node must fail closed.
func (f *Follower) Healthy(maxLag time.Duration) error {
	if maxLag == 0 {
		maxLag = f.c.cfg.MaxLag
	}
	s := f.Status()
	switch {
	case errors.Is(s.Err, ErrLogBroken):
		return s.Err
	case !s.Ready:
		return ErrNotReady
	case !s.FeedConnected:
		if s.Err != nil {
			return fmt.Errorf("%w: %v", ErrFeedDown, s.Err)
		}
		return ErrFeedDown
	case !s.Quorum:
		return ErrNoQuorum
	case s.Lag > maxLag:
		return fmt.Errorf("%w: %v behind, budget %v", ErrLagging, s.Lag.Round(time.Millisecond), maxLag)
	}
	return nil
}
