package whatsapp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
)

// Badger key prefixes owned by this package.
const (
	spoolPrefix = "wa/spool/" // + 8-byte big-endian sequence → raw verified webhook body
	deadPrefix  = "wa/dead/"  // + 8-byte sequence → body whose handler kept failing
	dedupPrefix = "wa/dedup/" // + kind/id → empty, with DedupTTL
)

func spoolKey(prefix string, seq uint64) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], seq)
	return k
}

func seqOf(prefix string, key []byte) (uint64, bool) {
	if len(key) != len(prefix)+8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[len(prefix):]), true
}

// appendReq carries one verified body from an HTTP handler to the committer.
type appendReq struct {
	body   []byte
	events []Event
	done   chan error // cap 1; the committer answers exactly once
}

var appendReqPool = sync.Pool{New: func() any { return &appendReq{done: make(chan error, 1)} }}

func acquireAppendReq() *appendReq  { return appendReqPool.Get().(*appendReq) }
func releaseAppendReq(r *appendReq) { appendReqPool.Put(r) }

// spoolItem is one spooled body on its way to a worker. Its events are parsed once: by the
// HTTP handler, or by the sweeper for bodies read back from Badger.
type spoolItem struct {
	seq    uint64
	body   []byte
	events []Event
	parsed bool // events holds the parse of body (nil when it had none or did not parse)
	swept  bool
}

// workQueue is one worker's queue. All bodies of one sender go to the same queue (see route),
// so that worker handles them in spool order.
type workQueue struct {
	ch chan *spoolItem
	// behind is set when a body did not fit in ch (and at start-up, until the leftovers are
	// queued): from then on the queue's bodies wait in the spool, their sequences appended to
	// left, and only the sweeper feeds ch, from left in order, until left is empty and it clears
	// behind. So a later body never overtakes an earlier one of the same sender. Both guarded
	// by Receiver.mu.
	behind bool
	left   []uint64
}

// sender is the wa_id an event concerns: a message's sender, a preference's user, a status's
// recipient; "" for error notifications.
func (e *Event) sender() string {
	switch {
	case e.Kind == KindMessage && e.Message != nil:
		if e.Message.From == "" {
			return e.Message.UserID // a user known by the business-scoped id only
		}
		return e.Message.From
	case e.Kind == KindPreference && e.Preference != nil:
		return e.Preference.WaID
	case e.Kind == KindStatus && e.Status != nil:
		return e.Status.RecipientID
	}
	return ""
}

// route picks the queue of a body: by the sender of its first message or preference, else of
// its first status. A body without any goes to queue 0. (A body carrying several users' events
// is ordered with its first user's; Meta sends one user message per body.)
func (r *Receiver) route(evs []Event) *workQueue {
	if len(r.wq) == 1 {
		return &r.wq[0]
	}
	key := ""
	for i := range evs {
		if k := evs[i].Kind; k == KindMessage || k == KindPreference {
			if key = evs[i].sender(); key != "" {
				break
			}
		}
	}
	if key == "" {
		for i := range evs {
			if key = evs[i].sender(); key != "" {
				break
			}
		}
	}
	if key == "" {
		return &r.wq[0]
	}
	return &r.wq[maphash.String(r.seed, key)%uint64(len(r.wq))]
}

// parse fills it.events from its body, once.
func (r *Receiver) parse(it *spoolItem) {
	if it.parsed {
		return
	}
	evs, st, err := ParseWebhook(it.body, r.opts)
	if err != nil {
		r.log.Error("whatsapp: spooled body unparseable; dropping", "seq", it.seq, "err", err)
	}
	r.metrics.skipped.Add(float64(st.Skipped))
	it.events, it.parsed = evs, true
}

// scanSpool counts the spooled bodies and returns the highest sequence used (spool or dead).
func (r *Receiver) scanSpool() (depth int, last uint64, err error) {
	err = r.db.View(func(txn *badger.Txn) error {
		for _, prefix := range []string{spoolPrefix, deadPrefix} {
			opts := badger.DefaultIteratorOptions
			opts.PrefetchValues = false
			opts.Prefix = []byte(prefix)
			it := txn.NewIterator(opts)
			for it.Rewind(); it.Valid(); it.Next() {
				seq, ok := seqOf(prefix, it.Item().Key())
				if !ok {
					continue
				}
				if prefix == spoolPrefix {
					depth++
				}
				if seq > last {
					last = seq
				}
			}
			it.Close()
		}
		return nil
	})
	return depth, last, err
}

// finishReq carries the outcome of one worker batch to the committer, which writes it in the
// transaction of its next group: the handled events' dedup keys, the finished bodies' deletions
// and the exhausted bodies' moves to dead letters. Until that commit the batch's sequences stay
// in inflight and its dedup keys stay claimed, so neither a sweep nor a redelivery can handle
// them again meanwhile.
type finishReq struct {
	seen       [][]byte // dedup keys to record, written before the deletions
	done, dead []*spoolItem
	claims     [][]byte // dedup keys claimed by the batch; released after the commit
	seqs       []uint64 // the batch's sequences; unmarked after the commit
}

// maxGroupFinishes bounds the worker batches one group commit carries.
const maxGroupFinishes = 64

// group is one committed batch (synced, unless the DB is opened without SyncWrites): new
// bodies and worker outcomes.
type group struct {
	reqs  []*appendReq
	first uint64
	fins  []*finishReq
	stop  bool // no body follows: the syncer closes intakeDone
}

// committer is the single writer of the spool. It takes every body and every worker outcome
// waiting, gives them sequences and writes them through the group committer (with the window
// records of the new bodies' user messages; see writeGroup), and passes the group to the
// syncer, which answers and dispatches it while the committer collects the next group. After
// stopIntake it takes no more bodies but keeps writing the workers' outcomes until
// workersDone.
func (r *Receiver) committer() {
	defer close(r.syncCh)
	intake, stop := r.appendCh, r.stopIntake
	for {
		var batch []*appendReq
		var fins []*finishReq
		select {
		case req := <-intake:
			batch = append(make([]*appendReq, 0, 16), req)
		case f := <-r.finishCh:
			fins = append(fins, f)
		case <-stop:
			// appendCh is unbuffered: no handler is left waiting.
			intake, stop = nil, nil
			r.syncCh <- &group{stop: true}
			continue
		case <-r.workersDone:
			// No worker is left to send: write what was sent and stop.
			for {
				select {
				case f := <-r.finishCh:
					fins = append(fins, f)
					continue
				default:
				}
				break
			}
			if len(fins) > 0 {
				if g := r.write(nil, fins); g != nil {
					r.syncCh <- g
				}
			}
			return
		}
	drain:
		for len(batch) < r.cfg.MaxGroupCommit && len(fins) < maxGroupFinishes {
			select {
			case req := <-intake:
				batch = append(batch, req)
			case f := <-r.finishCh:
				fins = append(fins, f)
			default:
				break drain
			}
		}
		if g := r.write(batch, fins); g != nil {
			r.syncCh <- g
		}
	}
}

// write assigns sequences to batch and commits it, with fins, to Badger. On failure it answers
// the handlers and releases fins itself, and returns nil.
func (r *Receiver) write(batch []*appendReq, fins []*finishReq) *group {
	first := r.nextSeq
	r.nextSeq += uint64(len(batch))
	r.mu.Lock()
	for i := range batch {
		r.inflight[first+uint64(i)] = struct{}{}
	}
	r.mu.Unlock()
	if len(batch) > 0 {
		r.metrics.commitGroups.Observe(float64(len(batch)))
	}
	g := &group{reqs: batch, first: first, fins: fins}
	if err := r.writeGroup(g); err != nil {
		r.fail(g, err)
		return nil
	}
	return g
}

// fail answers the handlers of g with err and releases its worker outcomes. Bodies that did
// land in the spool are found by the next sweep; Meta retries the others and dedup absorbs the
// copies. The bodies of unrecorded outcomes stay spooled and are handled again (their events
// were not recorded as seen either).
func (r *Receiver) fail(g *group, err error) {
	r.mu.Lock()
	for i := range g.reqs {
		delete(r.inflight, g.first+uint64(i))
	}
	r.mu.Unlock()
	if len(g.fins) > 0 {
		r.log.Error("whatsapp: recording processed webhooks failed", "err", err)
	}
	for _, f := range g.fins {
		r.release(f)
	}
	r.requestRescan()
	for _, req := range g.reqs {
		req.done <- err
	}
}

// finished releases a committed worker outcome.
func (r *Receiver) finished(f *finishReq) {
	r.metrics.spoolDepth.Sub(float64(len(f.done) + len(f.dead)))
	r.release(f)
}

// release ends the claims of f and unmarks its sequences.
func (r *Receiver) release(f *finishReq) {
	r.mu.Lock()
	for _, k := range f.claims {
		delete(r.claims, string(k))
	}
	for _, seq := range f.seqs {
		delete(r.inflight, seq)
	}
	r.mu.Unlock()
}

// syncer makes committed groups durable: one DB.Sync covers every group committed before it
// started, however many. Only then are the handlers answered and the bodies dispatched.
func (r *Receiver) syncer() {
	defer close(r.committerDone)
	if r.ownCommit {
		defer r.commit.Close() // the committer goroutine, its only writer, has stopped
	}
	var groups []*group
	for g := range r.syncCh {
		groups = append(groups[:0], g)
	drain:
		for {
			select {
			case g, ok := <-r.syncCh:
				if !ok {
					break drain
				}
				groups = append(groups, g)
			default:
				break drain
			}
		}
		var err error
		if !r.synced {
			err = r.db.Sync()
		}
		for _, g := range groups {
			switch {
			case g.stop:
				close(r.intakeDone)
			case err != nil:
				r.fail(g, err)
			default:
				r.dispatch(g)
				for _, f := range g.fins {
					r.finished(f)
				}
			}
		}
		clear(groups)
	}
}

// dispatch answers the handlers of a durable group and queues its bodies for the workers.
func (r *Receiver) dispatch(g *group) {
	r.metrics.spoolDepth.Add(float64(len(g.reqs)))
	items := make([]spoolItem, len(g.reqs)) // one allocation per group
	for i, req := range g.reqs {
		items[i] = spoolItem{seq: g.first + uint64(i), body: req.body, events: req.events, parsed: true}
		req.done <- nil
	}
	for i := range items {
		it := &items[i]
		q := r.route(it.events)
		r.mu.Lock()
		if !q.behind {
			select {
			case q.ch <- it:
				r.mu.Unlock()
				continue
			default:
				q.behind = true
			}
		}
		// The worker is behind: the body waits in the spool for the sweeper.
		q.left = append(q.left, it.seq)
		r.left[it.seq] = struct{}{}
		r.leftBehind.Add(1)
		delete(r.inflight, it.seq)
		r.mu.Unlock()
		r.requestSweep()
	}
}

// windowUpdates lists the user messages of batch for the window, or nil when the window is
// kept in another DB (the workers record it then).
func (r *Receiver) windowUpdates(batch []*appendReq) []WindowUpdate {
	if !r.windowInTxn {
		return nil
	}
	now := r.cfg.Now()
	var ups []WindowUpdate
	for _, req := range batch {
		ups = appendWindowUpdates(ups, req.events, now)
	}
	return ups
}

// appendWindowUpdates appends the window updates of the user messages in evs: at the message's
// time, or now when it has none or is in the future.
func appendWindowUpdates(ups []WindowUpdate, evs []Event, now time.Time) []WindowUpdate {
	for i := range evs {
		ev := &evs[i]
		if ev.Kind == KindMessage && ev.Message.OpensWindow() {
			at := ev.Message.Timestamp
			if at.IsZero() || at.After(now) {
				at = now
			}
			ups = append(ups, WindowUpdate{PhoneNumberID: ev.PhoneNumberID, WaID: ev.Message.From, At: at})
		}
	}
	return ups
}

// writeGroup makes g durable through the group committer: the window records of its user
// messages (so the window is open before any handler runs, and a STOP can be confirmed
// free-form), its bodies under consecutive sequences, then each worker outcome's dedup keys
// before its deletions. WriteAll cuts them into requests that each fit in a Badger transaction,
// committed in that order; should one fail, the ones after it fail too or are redone harmlessly
// (a dead-letter copy written twice, a deletion of a body handled again).
//
// The window records are read and moved forward under the Window's lock, which Window.Close
// and RecordBatch take too, and written in the same group commit: a Close between our read and
// our write cannot be lost.
func (r *Receiver) writeGroup(g *group) error {
	ops := r.ops[:0]
	defer func() { clear(ops); r.ops = ops[:0] }() // let the bodies go, keep the array
	ups := r.windowUpdates(g.reqs)
	if len(ups) > 0 {
		r.window.mu.Lock()
		defer r.window.mu.Unlock()
		var err error
		if ops, err = r.window.appendRecords(ops, ups); err != nil {
			r.log.Error("whatsapp: recording window failed", "err", err)
			ops = ops[:0] // the bodies are written without the window, as a failed window write was before
		}
	}
	for i, req := range g.reqs {
		ops = append(ops, groupcommit.Op{Key: spoolKey(spoolPrefix, g.first+uint64(i)), Value: req.body})
	}
	for _, f := range g.fins {
		for _, k := range f.seen {
			ops = append(ops, groupcommit.Op{Key: k, TTL: r.cfg.DedupTTL})
		}
	}
	for _, f := range g.fins {
		for _, it := range f.dead {
			ops = append(ops, groupcommit.Op{Key: spoolKey(deadPrefix, it.seq), Value: it.body},
				groupcommit.Op{Key: spoolKey(spoolPrefix, it.seq), Delete: true})
		}
		for _, it := range f.done {
			ops = append(ops, groupcommit.Op{Key: spoolKey(spoolPrefix, it.seq), Delete: true})
		}
	}
	_, err := r.commit.WriteAll(ops)
	if err == nil {
		r.window.notify(ups, false)
	}
	return err
}

// requestSweep asks the sweeper to queue the bodies left behind.
func (r *Receiver) requestSweep() {
	select {
	case r.sweepCh <- struct{}{}:
	default:
	}
}

// requestRescan asks the sweeper for a pass over the whole spool as well.
func (r *Receiver) requestRescan() {
	r.rescan.Store(true)
	r.requestSweep()
}

// sweeper queues the bodies that dispatch left behind, and rescans the spool for bodies nothing
// queued: at start-up (left over from an earlier run), after Replay, and every SweepInterval
// (bodies whose commit reported an error may still have landed).
func (r *Receiver) sweeper() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-r.sweepCh:
		case <-t.C:
			r.rescan.Store(true)
		case <-r.quit:
			return
		}
		var err error
		if r.rescan.Swap(false) {
			if err = r.sweep(); err != nil {
				r.rescan.Store(true) // and the queues stay behind until a rescan succeeds
			}
		}
		if err == nil {
			err = r.feedLeft()
		}
		if err != nil && !errors.Is(err, errQuit) {
			r.log.Error("whatsapp: spool sweep failed", "err", err)
		}
	}
}

var errQuit = errors.New("whatsapp: quitting")

// sweepPage bounds the bodies read per sweep transaction.
const sweepPage = 256

// sweep queues, in sequence order, every spooled body that is neither queued, being
// processed, nor left behind (feedLeft queues those in their queue's order).
func (r *Receiver) sweep() error {
	var after []byte
	for {
		var page []*spoolItem
		err := r.db.View(func(txn *badger.Txn) error {
			opts := badger.DefaultIteratorOptions
			opts.Prefix = []byte(spoolPrefix)
			it := txn.NewIterator(opts)
			defer it.Close()
			if after == nil {
				it.Rewind()
			} else {
				it.Seek(after)
				if it.Valid() && string(it.Item().Key()) == string(after) {
					it.Next()
				}
			}
			for ; it.Valid() && len(page) < sweepPage; it.Next() {
				item := it.Item()
				after = item.KeyCopy(after[:0])
				seq, ok := seqOf(spoolPrefix, after)
				if !ok {
					continue
				}
				r.mu.Lock()
				_, busy := r.inflight[seq]
				if _, left := r.left[seq]; left {
					busy = true
				}
				if !busy {
					r.inflight[seq] = struct{}{}
				}
				r.mu.Unlock()
				if busy {
					continue
				}
				body, err := item.ValueCopy(nil)
				if err != nil {
					r.unmark(seq)
					return err
				}
				page = append(page, &spoolItem{seq: seq, body: body, swept: true})
			}
			return nil
		})
		if err != nil {
			for _, it := range page {
				r.unmark(it.seq)
			}
			return err
		}
		if len(page) == 0 {
			return nil
		}
		after = append([]byte(nil), after...)
		for i, it := range page {
			r.parse(it)
			select {
			case r.route(it.events).ch <- it:
			case <-r.quit:
				for _, rest := range page[i:] {
					r.unmark(rest.seq)
				}
				return errQuit
			}
		}
	}
}

// feedLeft queues the bodies left behind, each queue's in the order they were left, and clears
// behind on every queue whose left it empties (under r.mu, so dispatch queues directly only
// bodies that follow).
func (r *Receiver) feedLeft() error {
	var seqs []uint64
	for i := range r.wq {
		q := &r.wq[i]
		for {
			r.mu.Lock()
			if len(q.left) == 0 {
				q.behind, q.left = false, q.left[:0]
				r.mu.Unlock()
				break
			}
			seqs = append(seqs[:0], q.left[:min(len(q.left), sweepPage)]...)
			for _, seq := range seqs {
				r.inflight[seq] = struct{}{}
			}
			r.mu.Unlock()
			page := make([]*spoolItem, len(seqs))
			err := r.db.View(func(txn *badger.Txn) error {
				for j, seq := range seqs {
					item, err := txn.Get(spoolKey(spoolPrefix, seq))
					if errors.Is(err, badger.ErrKeyNotFound) {
						continue // gone (nothing else queues a left body; kept for safety)
					}
					if err != nil {
						return err
					}
					body, err := item.ValueCopy(nil)
					if err != nil {
						return err
					}
					page[j] = &spoolItem{seq: seq, body: body}
				}
				return nil
			})
			if err != nil {
				for _, seq := range seqs {
					r.unmark(seq)
				}
				return err
			}
			for j, it := range page {
				if it == nil {
					r.unmark(seqs[j])
					continue
				}
				r.parse(it)
				select {
				case q.ch <- it:
				case <-r.quit:
					for _, seq := range seqs[j:] {
						r.unmark(seq)
					}
					return errQuit
				}
			}
			r.mu.Lock()
			q.left = q.left[len(seqs):] // dispatch only appends
			for _, seq := range seqs {
				delete(r.left, seq)
			}
			r.mu.Unlock()
		}
	}
	return nil
}

func (r *Receiver) unmark(seq uint64) {
	r.mu.Lock()
	delete(r.inflight, seq)
	r.mu.Unlock()
}

// workerBatch bounds the bodies one worker takes at a time (and so the size of its commit).
const workerBatch = 128

// worker processes the bodies of q until quit.
func (r *Receiver) worker(q chan *spoolItem) {
	defer r.wg.Done()
	batch := make([]*spoolItem, 0, workerBatch)
	for {
		select {
		case it := <-q:
			batch = append(batch[:0], it)
		drain:
			for len(batch) < workerBatch {
				select {
				case it := <-q:
					batch = append(batch, it)
				default:
					break drain
				}
			}
			r.process(batch)
			clear(batch)
		case <-r.quit:
			return
		}
	}
}

// work is the per-event state of one batch.
type work struct {
	item    *spoolItem
	ev      *Event
	key     []byte
	dup     bool
	handled bool  // the Handler accepted the event
	err     error // the Handler kept failing
}

// process runs one batch through: claims and the dedup lookup, the Handler, then the outcome
// (handled events recorded as seen, finished bodies deleted) handed to the committer, which
// writes it in its next group commit. The window of the batch's user messages was recorded
// with their bodies, except for bodies swept from the spool (they may come from an earlier
// version), whose window is recorded here first.
func (r *Receiver) process(batch []*spoolItem) {
	now := r.cfg.Now()

	// Bodies swept from disk: skip those another pass already finished, parse the rest.
	if err := r.dropFinished(batch); err != nil {
		r.log.Error("whatsapp: spool lookup failed", "err", err)
	}
	var works []work
	var windows []WindowUpdate
	for _, it := range batch {
		if it.body == nil {
			continue // dropped above
		}
		r.parse(it) // a no-op: bodies are parsed before they are queued
		for i := range it.events {
			ev := &it.events[i]
			works = append(works, work{item: it, ev: ev, key: ev.dedupKey()})
		}
		if it.swept || !r.windowInTxn {
			windows = appendWindowUpdates(windows, it.events, now)
		}
	}
	// The window first, so that a handler answering a STOP can reply free-form in it.
	if err := r.window.RecordBatch(windows); err != nil {
		r.log.Error("whatsapp: recording window failed", "err", err)
	}

	// Claim keys so that two workers never handle the same event concurrently; a key claimed
	// elsewhere is a concurrent duplicate (or one handled whose seen key is not committed yet).
	fin := &finishReq{seqs: make([]uint64, len(batch))}
	for i, it := range batch {
		fin.seqs[i] = it.seq
	}
	r.mu.Lock()
	for i := range works {
		w := &works[i]
		if _, busy := r.claims[string(w.key)]; busy {
			w.dup = true
			continue
		}
		r.claims[string(w.key)] = struct{}{}
		fin.claims = append(fin.claims, w.key)
	}
	r.mu.Unlock()
	if err := r.db.View(func(txn *badger.Txn) error {
		for i := range works {
			w := &works[i]
			if w.dup {
				continue
			}
			_, err := txn.Get(w.key)
			if err == nil {
				w.dup = true
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		return nil
	}); err != nil {
		// Without the dedup lookup nothing may be handled; leave the bodies spooled.
		r.log.Error("whatsapp: dedup lookup failed", "err", err)
		r.release(fin)
		return
	}

	// Handle, different senders concurrently. failed[seq] marks bodies that keep an unhandled
	// event.
	r.handleLanes(works, batch)
	failed := make(map[uint64]error)
	var closes []*Event
	for i := range works {
		w := &works[i]
		switch {
		case w.dup:
			r.metrics.dedupDrops.Inc()
		case w.err != nil:
			if _, ok := failed[w.item.seq]; !ok {
				failed[w.item.seq] = w.err
			}
		case w.handled:
			fin.seen = append(fin.seen, w.key)
			if w.ev.Kind == KindStatus && w.ev.Status.WindowClosed() {
				closes = append(closes, w.ev)
			}
		}
	}
	for _, ev := range closes {
		at := ev.Status.Timestamp
		if at.IsZero() {
			at = now
		}
		if err := r.window.Close(ev.PhoneNumberID, ev.Status.RecipientID, at); err != nil {
			r.log.Error("whatsapp: recording closed window failed", "err", err)
		}
	}

	// The outcome: seen keys, finished bodies deleted, exhausted ones moved to dead letters.
	quitting := r.hctx.Err() != nil
	for _, it := range batch {
		if it.body == nil {
			continue
		}
		err, bad := failed[it.seq]
		switch {
		case !bad:
			fin.done = append(fin.done, it)
		case quitting || errors.Is(err, context.Canceled):
			// Left in the spool for the next run.
		default:
			fin.dead = append(fin.dead, it)
			r.metrics.spoolDead.Inc()
			if errors.Is(err, ErrDeadLetter) {
				r.log.Warn("whatsapp: body kept in dead letters", "seq", it.seq, "err", err)
			} else {
				r.log.Error("whatsapp: handler kept failing; body moved to dead letters", "seq", it.seq, "err", err)
			}
		}
	}
	if len(fin.seen) == 0 && len(fin.done) == 0 && len(fin.dead) == 0 {
		r.release(fin)
		return
	}
	// The committer runs until the workers are done (see Shutdown).
	r.finishCh <- fin
}

// handleLanes calls the Handler for the events of works that are not duplicates. Works are
// split into lanes: the events of one sender, and of one body, share a lane (a body with
// several senders joins their lanes), and a lane's events are handled one after another in
// batch order, which is spool order; different lanes run concurrently, on at most workerBatch
// goroutines, so that their Handler calls (a consent change waits for a synced commit) share
// commits. Within a lane, an event of a body whose earlier event failed is not handled: order
// within the body is kept.
func (r *Receiver) handleLanes(works []work, batch []*spoolItem) {
	lanes := splitLanes(works, batch)
	run := func(lane []int32) {
		var failed *spoolItem
		for _, i := range lane {
			w := &works[i]
			if w.dup || w.item == failed {
				continue
			}
			if err := r.handle(w.ev); err != nil {
				w.err, failed = err, w.item
				continue
			}
			w.handled = true
		}
	}
	if len(lanes) == 1 {
		run(lanes[0])
		return
	}
	var next atomic.Int32
	var wg sync.WaitGroup
	for range min(len(lanes), workerBatch) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(lanes) {
					return
				}
				run(lanes[i])
			}
		}()
	}
	wg.Wait()
}

// splitLanes groups the indices of works into lanes (see handleLanes), each in index order.
// The works of one body are consecutive and in body order.
func splitLanes(works []work, batch []*spoolItem) [][]int32 {
	// Union-find over the bodies: a body joins the body that first carried each of its senders.
	parent := make(map[*spoolItem]*spoolItem, len(batch))
	var find func(*spoolItem) *spoolItem
	find = func(x *spoolItem) *spoolItem {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	first := make(map[string]*spoolItem)
	for i := range works {
		it := works[i].item
		if _, ok := parent[it]; !ok {
			parent[it] = it
		}
		s := works[i].ev.sender()
		if s == "" {
			continue
		}
		if f, ok := first[s]; !ok {
			first[s] = it
		} else if a, b := find(f), find(it); a != b {
			parent[b] = a
		}
	}
	index := make(map[*spoolItem]int)
	var lanes [][]int32
	for i := range works {
		root := find(works[i].item)
		l, ok := index[root]
		if !ok {
			l = len(lanes)
			index[root] = l
			lanes = append(lanes, nil)
		}
		lanes[l] = append(lanes[l], int32(i))
	}
	return lanes
}

// dropFinished clears body for swept items no longer in the spool.
func (r *Receiver) dropFinished(batch []*spoolItem) error {
	swept := false
	for _, it := range batch {
		swept = swept || it.swept
	}
	if !swept {
		return nil
	}
	return r.db.View(func(txn *badger.Txn) error {
		for _, it := range batch {
			if !it.swept {
				continue
			}
			_, err := txn.Get(spoolKey(spoolPrefix, it.seq))
			if errors.Is(err, badger.ErrKeyNotFound) {
				it.body, it.events = nil, nil
			} else if err != nil {
				return err
			}
		}
		return nil
	})
}

// handle calls the Handler with bounded retries and back-off. It recovers panics.
func (r *Receiver) handle(ev *Event) error {
	var err error
	for attempt := 0; attempt < r.cfg.MaxAttempts; attempt++ {
		if err = r.callHandler(ev); err == nil {
			r.metrics.events.WithLabelValues(ev.Kind.String()).Inc()
			return nil
		}
		if errors.Is(err, ErrDeadLetter) {
			return err // kept, not retried: see ErrDeadLetter
		}
		r.metrics.handlerErrs.Inc()
		if r.hctx.Err() != nil {
			return context.Canceled
		}
		if attempt == r.cfg.MaxAttempts-1 {
			break
		}
		d := r.cfg.RetryBase << attempt
		if d > r.cfg.RetryMax || d <= 0 {
			d = r.cfg.RetryMax
		}
		d = d/2 + rand.N(d/2+1)
		r.log.Warn("whatsapp: handler failed; retrying", "kind", ev.Kind.String(), "attempt", attempt+1, "wait", d, "err", err)
		if sleepCtx(r.hctx, d) != nil {
			return context.Canceled
		}
	}
	return err
}

func (r *Receiver) callHandler(ev *Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.metrics.panics.Inc()
			err = fmt.Errorf("whatsapp: handler panic: %v", p)
		}
	}()
	return r.cfg.Handler.HandleEvent(r.hctx, *ev)
}

// Replay moves every dead-letter body back into the spool and queues a sweep; it returns how
// many were moved. Events of those bodies already handled are dropped as duplicates.
func (r *Receiver) Replay() (int, error) { return r.ReplayIf(nil) }

// ReplayIf is Replay for the dead-letter bodies for which keep returns true (every body when
// keep is nil); keep sees the raw body and must not retain it.
func (r *Receiver) ReplayIf(keep func(body []byte) bool) (int, error) {
	n := 0
	err := r.db.Update(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(deadPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			seq, ok := seqOf(deadPrefix, it.Item().Key())
			if !ok {
				continue
			}
			body, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if keep != nil && !keep(body) {
				continue
			}
			if err := txn.Set(spoolKey(spoolPrefix, seq), body); err != nil {
				return err
			}
			if err := txn.Delete(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	r.metrics.spoolDepth.Add(float64(n))
	r.requestRescan()
	return n, nil
}
