package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/optgate/optgate/smpp"
)

// loadBind is one lean ESME session of a load run. It is deliberately not
// a smpp.Client: the harness shares two cores with what it measures, so
// the session encodes submits straight into one write buffer, reads only
// headers of submit_sm_resp, and keeps its window as a free list of slots
// whose index is the low 16 bits of the sequence number (the high bits are
// a generation, so a late answer to an old use of the slot is caught).
type loadBind struct {
	l      *Load
	i      int
	nc     net.Conn
	br     *bufio.Reader
	window int

	wmu   sync.Mutex   // serializes writes of the writer and the reader (responses)
	free  chan uint16  // free window slots
	slots []windowSlot // indexed by slot
	lat   *latencyRecorder

	dead       atomic.Bool // the connection failed; its slots are lost
	writerDone chan struct{}
	readerDone chan struct{}
}

type windowSlot struct {
	seq  atomic.Uint32 // 0: free
	sent atomic.Int64  // unix nanos
}

const unbindSeq = 0x0000FFFF // never a submit's sequence: generations start at 1

func dialBind(ctx context.Context, l *Load, i int) (*loadBind, error) {
	cfg := &l.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.BindTimeout)
	defer cancel()
	var d net.Dialer
	addr := cfg.addr(i)
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: cannot connect to %s: %w", addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	b := &loadBind{l: l, i: i, nc: nc, br: bufio.NewReaderSize(nc, 64<<10), window: cfg.Window,
		free: make(chan uint16, cfg.Window), slots: make([]windowSlot, cfg.Window), lat: newRecorder(),
		writerDone: make(chan struct{}), readerDone: make(chan struct{})}
	for s := 0; s < cfg.Window; s++ {
		b.free <- uint16(s)
	}
	bind := &smpp.Bind{Mode: smpp.BindTransceiver, SystemID: []byte(cfg.SystemID), Password: []byte(cfg.Password),
		InterfaceVersion: smpp.InterfaceVersion}
	buf, err := smpp.AppendPDU(nil, smpp.StatusOK, 1, bind)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: bind PDU: %w", err)
	}
	deadline := time.Now().Add(cfg.BindTimeout)
	if dl, ok := dctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	nc.SetDeadline(deadline)
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(buf); err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: bind to %s: %w", addr, err)
	}
	for {
		h, _, err := readFrame(b.br, nil)
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("bench: bind to %s: no bind response: %w", addr, err)
		}
		if h.ID == smpp.GenericNackID || h.ID == smpp.BindTransceiverRespID {
			if h.Status != smpp.StatusOK {
				nc.Close()
				return nil, fmt.Errorf("bench: bind to %s as %q refused: 0x%08X %s", addr, cfg.SystemID, uint32(h.Status), h.Status)
			}
			return b, nil
		}
	}
}

// readFrame reads one frame into body (reused) and returns the header and
// the body after the header.
func readFrame(br *bufio.Reader, body []byte) (smpp.Header, []byte, error) {
	var hdr [smpp.HeaderLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return smpp.Header{}, body, err
	}
	h, err := smpp.ParseHeader(hdr[:])
	if err != nil {
		return h, body, err
	}
	if h.Length < smpp.HeaderLen || h.Length > 64<<10 {
		return h, body, fmt.Errorf("bench: command_length %d out of range", h.Length)
	}
	n := int(h.Length) - smpp.HeaderLen
	if cap(body) < n {
		body = make([]byte, n, max(n, 4096))
	}
	body = body[:n]
	if _, err := io.ReadFull(br, body); err != nil {
		return h, body, err
	}
	return h, body, nil
}

func (b *loadBind) run() {
	go b.readLoop()
	go b.writeLoop()
}

// fail marks the connection dead and counts what was in flight as errors.
func (b *loadBind) fail(err error) {
	if b.dead.Swap(true) {
		return
	}
	select {
	case <-b.l.stop:
	default:
		b.l.cfg.Logger.Warn("bench: load bind failed", "bind", b.i, "err", err)
	}
	b.l.counters.Errors.Add(int64(b.window - len(b.free)))
	b.nc.Close()
}

func (b *loadBind) write(buf []byte) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := b.nc.Write(buf)
	return err
}

func (b *loadBind) writeLoop() {
	defer close(b.writerDone)
	l := b.l
	cfg := &l.cfg
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(b.i)))
	from := []byte(trimPlus(cfg.From))
	sm := &smpp.SubmitSM{SM: smpp.SM{
		Source:       smpp.Address{TON: 1, NPI: 1, Addr: from},
		Dest:         smpp.Address{TON: 1, NPI: 1},
		ShortMessage: []byte(cfg.Text),
	}}
	if cfg.Receipts {
		sm.RegisteredDelivery = 1
	}
	perBind := cfg.Rate / float64(cfg.Binds)
	var interval time.Duration
	if perBind > 0 {
		interval = min(max(time.Duration(float64(time.Second)/perBind), 200*time.Microsecond), 5*time.Millisecond)
	}
	buf := make([]byte, 0, 64<<10)
	dest := make([]byte, 0, 16)
	batch := make([]uint16, 0, 64)
	gen := uint32(1)
	var sent int64
	start := l.start
	for {
		limit := int64(cap(batch))
		if perBind > 0 {
			due := int64(time.Since(start).Seconds()*perBind) - sent
			if due <= 0 {
				select {
				case <-l.stop:
					return
				case <-b.readerDone:
					return
				case <-time.After(interval):
				}
				continue
			}
			limit = min(limit, due)
		}
		select {
		case s := <-b.free:
			batch = append(batch[:0], s)
		case <-l.stop:
			return
		case <-b.readerDone:
			return
		}
	more:
		for int64(len(batch)) < limit {
			select {
			case s := <-b.free:
				batch = append(batch, s)
			default:
				break more
			}
		}
		buf = buf[:0]
		now := time.Now().UnixNano()
		n := 0
		last := false
		for k, s := range batch {
			if l.budget.Add(-1) < 0 {
				for _, r := range batch[k:] {
					b.free <- r
				}
				last = true
				break
			}
			gen++
			if gen&0x7FFF == 0 {
				gen = 1
			}
			seq := (gen&0x7FFF)<<16 | uint32(s)
			dest = dest[:0]
			if cfg.SuppressedFraction > 0 && rng.Float64() < cfg.SuppressedFraction {
				dest = appendNANP(dest, suppressedAreas, rng.IntN(cfg.Suppressed))
			} else {
				dest = appendNANP(dest, allowedAreas, rng.IntN(perArea*len(allowedAreas)))
			}
			sm.Dest.Addr = dest
			var err error
			buf, err = smpp.AppendPDU(buf, smpp.StatusOK, seq, sm)
			if err != nil {
				cfg.Logger.Error("bench: cannot encode submit_sm", "err", err)
				b.free <- s
				continue
			}
			b.slots[s].sent.Store(now)
			b.slots[s].seq.Store(seq)
			n++
		}
		if n > 0 {
			if err := b.write(buf); err != nil {
				b.fail(err)
				return
			}
			sent += int64(n)
			l.counters.Sent.Add(int64(n))
		}
		if last {
			return
		}
	}
}

func (b *loadBind) readLoop() {
	defer close(b.readerDone)
	l := b.l
	c := &l.counters
	body := make([]byte, 0, 4096)
	out := make([]byte, 0, 4096)
	var dsm smpp.DeliverSM
	for {
		h, bd, err := readFrame(b.br, body)
		body = bd
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				b.fail(err)
			} else {
				b.dead.Store(true)
			}
			return
		}
		switch h.ID {
		case smpp.SubmitSMRespID, smpp.GenericNackID:
			s := h.Sequence & 0xFFFF
			if int(s) >= b.window || h.Sequence == unbindSeq || b.slots[s].seq.Load() != h.Sequence {
				if h.Sequence != unbindSeq {
					c.Errors.Add(1) // answer to nothing we sent
				}
				continue
			}
			now := time.Now()
			b.lat.record(time.Duration(now.UnixNano() - b.slots[s].sent.Load()))
			b.slots[s].seq.Store(0)
			l.lastAns.Store(now.UnixNano())
			switch {
			case h.ID == smpp.GenericNackID:
				c.Errors.Add(1)
			case h.Status == smpp.StatusOK:
				c.Accepted.Add(1)
				if l.corr != nil {
					if i := bytes.IndexByte(body, 0); i > 0 && l.corr.see(body[:i], 1) {
						c.ReceiptsMatched.Add(1)
					}
				}
			default:
				c.refuse(uint32(h.Status))
			}
			b.free <- uint16(s)
		case smpp.DeliverSMID, smpp.DataSMID:
			st := smpp.StatusOK
			if h.ID == smpp.DeliverSMID {
				if err := dsm.UnmarshalBinary(body); err != nil {
					st = smpp.StatusOf(err)
				} else if dsm.ESMClass&0x24 != 0 {
					c.Receipts.Add(1)
					if l.corr != nil {
						if id := receiptID(&dsm); len(id) > 0 && l.corr.see(id, 2) {
							c.ReceiptsMatched.Add(1)
						}
					}
				} else {
					c.MOs.Add(1)
				}
				out = appendResp(out, smpp.DeliverSMRespID, st, h.Sequence, true)
			} else {
				c.MOs.Add(1)
				out = appendResp(out, smpp.DataSMRespID, st, h.Sequence, true)
			}
		case smpp.EnquireLinkID:
			out = appendResp(out, smpp.EnquireLinkRespID, smpp.StatusOK, h.Sequence, false)
		case smpp.UnbindID:
			out = appendResp(out, smpp.UnbindRespID, smpp.StatusOK, h.Sequence, false)
			b.write(out)
			b.dead.Store(true)
			return
		case smpp.UnbindRespID:
			b.dead.Store(true)
			return
		default:
			if !h.ID.IsResponse() {
				out = appendResp(out, smpp.GenericNackID, smpp.StatusInvCmdID, h.Sequence, false)
			}
		}
		if len(out) > 0 && !frameBuffered(b.br) {
			if err := b.write(out); err != nil {
				b.fail(err)
				return
			}
			out = out[:0]
		}
	}
}

// receiptID returns the receipted message id of a receipt: the TLV when
// present, else the "id:" field of the text.
func receiptID(d *smpp.DeliverSM) []byte {
	if id, ok := d.TLVs.ReceiptedMessageID(); ok && len(id) > 0 {
		return id
	}
	t := d.ShortMessage
	i := bytes.Index(t, []byte("id:"))
	if i < 0 {
		return nil
	}
	t = t[i+3:]
	if j := bytes.IndexByte(t, ' '); j >= 0 {
		t = t[:j]
	}
	return t
}

// appendResp appends a response PDU with no body, or with an empty
// message_id when withID.
func appendResp(dst []byte, id smpp.CommandID, st smpp.CommandStatus, seq uint32, withID bool) []byte {
	n := uint32(smpp.HeaderLen)
	if withID {
		n++
	}
	dst = binary.BigEndian.AppendUint32(dst, n)
	dst = binary.BigEndian.AppendUint32(dst, uint32(id))
	dst = binary.BigEndian.AppendUint32(dst, uint32(st))
	dst = binary.BigEndian.AppendUint32(dst, seq)
	if withID {
		dst = append(dst, 0)
	}
	return dst
}

// unbind sends unbind and waits briefly for the reader to see the
// answer, then closes the connection.
func (b *loadBind) unbind() {
	if !b.dead.Load() {
		var p [smpp.HeaderLen]byte
		binary.BigEndian.PutUint32(p[0:], smpp.HeaderLen)
		binary.BigEndian.PutUint32(p[4:], uint32(smpp.UnbindID))
		binary.BigEndian.PutUint32(p[12:], unbindSeq)
		if b.write(p[:]) == nil {
			select {
			case <-b.readerDone:
			case <-time.After(time.Second):
			}
		}
	}
	b.dead.Store(true)
	b.nc.Close()
	<-b.readerDone
}

func trimPlus(s string) string {
	if len(s) > 0 && s[0] == '+' {
		return s[1:]
	}
	return s
}
