package smpp

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Result is the outcome of a request sent through a Window: the response
// header and PDU, or an error (ErrTimeout, ErrClosed, a *StatusError for a
// non-zero command_status, or the context's error).
type Result struct {
	Header Header
	Resp   PDU
	Err    error
}

// Pending is a request in flight.
type Pending struct {
	Seq  uint32
	Req  PDU
	Sent time.Time
	// Written is set on the requests a session failed when its connection
	// closed (Conn.InFlightAtClose): true when the request's frame had been
	// written whole, so the peer may have it (its result is
	// ErrUnknownOutcome), false when it never reached the wire
	// (ErrNotWritten).
	Written  bool
	deadline time.Time
	done     func(Result)
}

// Window bounds the requests outstanding on one session and matches
// responses to them by sequence number. Acquire waits for a free slot until
// its context ends; Complete finishes a request on its response; Expire
// fails the requests whose expiry passed; Drain fails everything still in
// flight when the connection drops and returns it, oldest first, so the
// caller can resubmit.
//
// Each request's done callback runs exactly once, on the goroutine that
// completed, expired or drained it; it must not block.
type Window struct {
	slots  chan struct{}
	expiry time.Duration

	// OnExpire is called (without the lock) for each expired request.
	// Set it, like OnUnexpected, before the window is used: the fields are
	// read without synchronisation. A Conn sets both from its ConnConfig
	// (OnExpire, OnLateResponse).
	OnExpire func(*Pending)
	// OnUnexpected is called for a response that matches no request in
	// flight: a late response after expiry, or a peer's mistake.
	OnUnexpected func(Header, PDU)

	mu      sync.Mutex
	pending map[uint32]Pending // guarded by mu; by value: no allocation per request
	closed  error              // guarded by mu; set by Drain
}

// NewWindow returns a window of size slots whose requests expire after
// expiry (0: never).
func NewWindow(size int, expiry time.Duration) *Window {
	if size < 1 {
		size = 1
	}
	return &Window{
		slots:   make(chan struct{}, size),
		expiry:  expiry,
		pending: make(map[uint32]Pending, size),
	}
}

// Cap returns the window size.
func (w *Window) Cap() int { return cap(w.slots) }

// Len returns the number of requests in flight.
func (w *Window) Len() int { return len(w.slots) }

// Acquire takes a slot, waiting until one is free, ctx ends or the window
// is drained. Every successful Acquire must be followed by Add or Release.
func (w *Window) Acquire(ctx context.Context) error {
	select {
	case w.slots <- struct{}{}:
	default:
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	err := w.closed
	w.mu.Unlock()
	if err != nil {
		<-w.slots
		return err
	}
	return nil
}

// TryAcquire takes a slot if one is free and reports whether it did.
func (w *Window) TryAcquire() bool {
	select {
	case w.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// Release gives back a slot taken by Acquire that was not used by Add.
func (w *Window) Release() { <-w.slots }

// Add records a request sent with seq in an acquired slot. done is called
// exactly once with its result. Add fails if the window was drained, in
// which case the slot is released and done is not called.
func (w *Window) Add(seq uint32, req PDU, now time.Time, done func(Result)) error {
	p := Pending{Seq: seq, Req: req, Sent: now, done: done}
	if w.expiry > 0 {
		p.deadline = now.Add(w.expiry)
	}
	w.mu.Lock()
	if w.closed != nil {
		err := w.closed
		w.mu.Unlock()
		<-w.slots
		return err
	}
	w.pending[seq] = p
	w.mu.Unlock()
	return nil
}

// Remove forgets a request without calling done (used when its frame could
// not be queued) and releases its slot. It reports false when the request
// was no longer in flight (already completed, expired or drained, so its
// done callback has run or is running).
func (w *Window) Remove(seq uint32) bool {
	w.mu.Lock()
	_, ok := w.pending[seq]
	delete(w.pending, seq)
	w.mu.Unlock()
	if ok {
		<-w.slots
	}
	return ok
}

// request returns the request in flight with seq.
func (w *Window) request(seq uint32) (PDU, bool) {
	w.mu.Lock()
	p, ok := w.pending[seq]
	w.mu.Unlock()
	return p.Req, ok
}

// Complete finishes the request with the header's sequence number. It
// reports false, and calls OnUnexpected, when no such request is in flight.
func (w *Window) Complete(h Header, resp PDU) bool {
	w.mu.Lock()
	p, ok := w.pending[h.Sequence]
	if ok {
		delete(w.pending, h.Sequence)
	}
	w.mu.Unlock()
	if !ok {
		if w.OnUnexpected != nil {
			w.OnUnexpected(h, resp)
		}
		return false
	}
	<-w.slots
	r := Result{Header: h, Resp: resp}
	if h.Status != StatusOK {
		r.Err = &StatusError{Status: h.Status, Op: p.Req.CommandID().String()}
	}
	p.done(r)
	return true
}

// Expire fails every request whose expiry is before now with ErrTimeout and
// returns how many it expired.
func (w *Window) Expire(now time.Time) int {
	if w.expiry <= 0 {
		return 0
	}
	var expired []*Pending
	w.mu.Lock()
	for seq, p := range w.pending {
		if now.After(p.deadline) {
			expired = append(expired, &p)
			delete(w.pending, seq)
		}
	}
	w.mu.Unlock()
	for _, p := range expired {
		<-w.slots
		if w.OnExpire != nil {
			w.OnExpire(p)
		}
		p.done(Result{Err: ErrTimeout})
	}
	return len(expired)
}

// Snapshot returns the requests in flight, oldest first, without removing them.
func (w *Window) Snapshot() []*Pending {
	w.mu.Lock()
	out := make([]*Pending, 0, len(w.pending))
	for _, p := range w.pending {
		out = append(out, &p)
	}
	w.mu.Unlock()
	sortPending(out)
	return out
}

// Drain fails every request in flight with err, refuses new ones from then
// on, and returns what was in flight, oldest first.
func (w *Window) Drain(err error) []*Pending {
	return w.drain(err, func(*Pending) error { return err })
}

// drainClosed is Drain for a connection that closed: the requests whose
// sequence numbers are in unsent never reached the wire and fail with
// ErrNotWritten, the others with ErrUnknownOutcome; both wrap ErrClosed.
// Requests refused from then on get ErrNotWritten.
func (w *Window) drainClosed(reason CloseReason, unsent map[uint32]struct{}) []*Pending {
	notWritten := fmt.Errorf("%w (%s): %w", ErrClosed, reason, ErrNotWritten)
	unknown := fmt.Errorf("%w (%s): %w", ErrClosed, reason, ErrUnknownOutcome)
	return w.drain(notWritten, func(p *Pending) error {
		_, never := unsent[p.Seq]
		p.Written = !never
		if never {
			return notWritten
		}
		return unknown
	})
}

// drain empties the window, refuses new requests with closed (unless it was
// closed already), and fails each request, oldest first, with fail's error.
func (w *Window) drain(closed error, fail func(*Pending) error) []*Pending {
	w.mu.Lock()
	if w.closed == nil {
		w.closed = closed
	}
	out := make([]*Pending, 0, len(w.pending))
	for seq, p := range w.pending {
		out = append(out, &p)
		delete(w.pending, seq)
	}
	w.mu.Unlock()
	sortPending(out)
	for _, p := range out {
		<-w.slots
		p.done(Result{Err: fail(p)})
	}
	return out
}

func sortPending(ps []*Pending) {
	sort.Slice(ps, func(i, j int) bool {
		if !ps[i].Sent.Equal(ps[j].Sent) {
			return ps[i].Sent.Before(ps[j].Sent)
		}
		return ps[i].Seq < ps[j].Seq
	})
}
