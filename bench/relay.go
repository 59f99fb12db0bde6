package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Relay is a null SMPP relay: every connection accepted is paired with one
// new connection to Upstream, and PDUs are copied both ways without being
// decoded. The only work per PDU is reading its 16-byte header to find the
// frame (command_length) and checking the length is sane; nothing is
// rewritten, so sequence numbers pass through untouched (one downstream
// connection ↔ one upstream connection, no multiplexing). It measures the
// ceiling of the machine for an SMPP hop: optgate's figure is read as a
// ratio to it.
type Relay struct {
	Upstream   string        // address frames are forwarded to
	MaxPDUSize int           // frames longer than this close the pair (default 64 KiB)
	DialTime   time.Duration // upstream dial timeout (default 5s)
	Logger     *slog.Logger

	ln     net.Listener
	frames [2]atomic.Int64 // 0: downstream → upstream, 1: upstream → downstream

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // guarded by mu
	closed bool                  // guarded by mu
	wg     sync.WaitGroup
}

// ErrRelayFrame is returned when a frame's command_length is out of range.
var ErrRelayFrame = errors.New("bench: relay: command_length out of range")

// StartRelay listens on listen (use "127.0.0.1:0" for a free port) and
// relays to upstream.
func StartRelay(listen, upstream string, log *slog.Logger) (*Relay, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("bench: relay listen %s: %w", listen, err)
	}
	r := &Relay{Upstream: upstream, Logger: log, ln: ln, conns: make(map[net.Conn]struct{})}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

// Addr returns the relay's listening address.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Frames returns how many PDUs went downstream → upstream (requests from
// the ESME side, their responses to SMSC requests) and back.
func (r *Relay) Frames() (up, down int64) { return r.frames[0].Load(), r.frames[1].Load() }

// Close stops accepting, closes every connection and waits for the
// relay's goroutines.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.ln.Close()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

func (r *Relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return // closed
		}
		if !r.track(c) {
			return
		}
		r.wg.Add(1)
		go r.pair(c)
	}
}

func (r *Relay) pair(down net.Conn) {
	defer r.wg.Done()
	defer r.untrack(down)
	dt := r.DialTime
	if dt <= 0 {
		dt = 5 * time.Second
	}
	up, err := net.DialTimeout("tcp", r.Upstream, dt)
	if err != nil {
		r.Logger.Warn("bench: relay cannot reach upstream", "upstream", r.Upstream, "err", err)
		return
	}
	if !r.track(up) {
		return
	}
	defer r.untrack(up)
	max := r.MaxPDUSize
	if max <= 0 {
		max = 64 << 10
	}
	errc := make(chan error, 2)
	go func() { errc <- copyFrames(up, down, max, &r.frames[0]) }()
	go func() { errc <- copyFrames(down, up, max, &r.frames[1]) }()
	err = <-errc
	// Closing both ends stops the other copier.
	down.Close()
	up.Close()
	<-errc
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		r.Logger.Debug("bench: relay pair ended", "err", err)
	}
}

// copyFrames copies SMPP frames from src to dst. Frames are read whole
// and written in batches: the writer is flushed whenever the next frame
// is not fully buffered yet, so a burst of PDUs costs one write and no
// frame waits for a later one.
func copyFrames(dst io.Writer, src io.Reader, max int, n *atomic.Int64) error {
	br := bufio.NewReaderSize(src, 64<<10)
	bw := bufio.NewWriterSize(dst, 64<<10)
	body := make([]byte, 0, 4096)
	var hdr [16]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			bw.Flush()
			return err
		}
		l := binary.BigEndian.Uint32(hdr[:4])
		if l < 16 || l > uint32(max) {
			bw.Flush()
			return fmt.Errorf("%w: %d", ErrRelayFrame, l)
		}
		if cap(body) < int(l-16) {
			body = make([]byte, l-16)
		}
		body = body[:l-16]
		if _, err := io.ReadFull(br, body); err != nil {
			bw.Flush()
			return err
		}
		bw.Write(hdr[:])
		bw.Write(body)
		n.Add(1)
		if !frameBuffered(br) {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
	}
}

// frameBuffered reports whether the next whole frame is already buffered,
// so reading it will not block.
func frameBuffered(br *bufio.Reader) bool {
	if br.Buffered() < 16 {
		return false
	}
	h, err := br.Peek(4)
	if err != nil {
		return false
	}
	return uint64(br.Buffered()) >= uint64(binary.BigEndian.Uint32(h))
}

// StartRelayProcess runs the null relay in a process of its own (`bin relay
// -listen ADDR -upstream UPSTREAM`, bin being optgate-bench), laid out as
// optgate is: load and simulator in the harness, the hop in a child. The
// ceiling is then measured with the same processes, sockets and scheduler
// hand-offs as the gateway it is compared with. It waits until the relay
// accepts connections; on error nothing is left running.
func StartRelayProcess(ctx context.Context, bin, dir, upstream string, timeout time.Duration) (*Process, string, error) {
	addr, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	p, err := StartProcess("relay", bin, []string{"relay", "-listen", addr, "-upstream", upstream}, dir,
		filepath.Join(dir, "relay.log"), nil)
	if err != nil {
		return nil, "", err
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		if ex, err := p.Exited(); ex {
			return nil, "", fmt.Errorf("bench: relay exited before it was ready (%v); last output:\n%s", err, p.LogTail(2000))
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return p, addr, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			p.Stop(2 * time.Second)
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			return nil, "", fmt.Errorf("bench: relay not listening on %s after %s (%v); last output:\n%s", addr, timeout, err, p.LogTail(2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
