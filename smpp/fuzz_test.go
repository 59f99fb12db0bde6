package smpp

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// FuzzDecode: decode, encode, decode again must agree, and nothing panics.
func FuzzDecode(f *testing.F) {
	for _, p := range samplePDUs() {
		b, err := AppendPDU(nil, StatusOK, 1, p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0, 0, 0, 16, 0x80, 0, 0, 4, 0, 0, 0, 0x58, 0, 0, 0, 1})
	// Responses with TLVs after their fixed fields, well-formed and not.
	f.Add([]byte{0, 0, 0, 0x1b, 0x80, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 2, 'i', 'd', 0, 0x00, 0x1d, 0, 3, 'o', 'k', 0, 0x14})
	f.Add([]byte{0, 0, 0, 0x16, 0x80, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0x04, 0x25, 0, 1, 2})
	f.Add([]byte{0, 0, 0, 0x11, 0x80, 0, 0, 4, 0, 0, 0, 0x0b, 0, 0, 0, 3, 0}) // error with a NUL body
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := Decode(b)
		if err != nil || p == nil {
			return
		}
		b1, err := AppendPDU(nil, h.Status, h.Sequence, p)
		if err != nil {
			// A decoded PDU may hold values the encoder refuses (for
			// example both short_message and message_payload are refused
			// on decode too), never the other way round for lengths.
			if StatusOf(err) == StatusInvMsgLen || StatusOf(err) == StatusInvNumDests {
				t.Fatalf("decoded PDU does not encode: %v\n%s", err, p)
			}
			return
		}
		h2, p2, err := Decode(b1)
		if err != nil {
			t.Fatalf("re-decode: %v\n%x", err, b1)
		}
		if h2.ID != h.ID || h2.Sequence != h.Sequence {
			t.Fatalf("header changed: %v vs %v", h, h2)
		}
		b2, err := AppendPDU(nil, h2.Status, h2.Sequence, p2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("re-encode differs: %v\n%x\n%x", err, b1, b2)
		}
		_ = p2.String()
	})
}

// chunkConn is a net.Conn whose reads return data in chunks whose sizes
// come from splits, then EOF; writes are counted and discarded.
type chunkConn struct {
	data, splits []byte
	i            int
	closed       atomic.Bool
	written      atomic.Int64
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.splits) > 0 {
		n = int(c.splits[c.i%len(c.splits)])%64 + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	c.written.Add(int64(len(p)))
	return len(p), nil
}
func (c *chunkConn) Close() error                     { c.closed.Store(true); return nil }
func (c *chunkConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *chunkConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *chunkConn) SetDeadline(time.Time) error      { return nil }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }

// feedConn gives data to a bound server-side session in reads split by
// splits and returns how many requests reached the handler. The session
// must end by itself at EOF: no hang, no panic.
func feedConn(t testing.TB, data []byte, splits []byte) int {
	var served atomic.Int32
	cc := &chunkConn{data: data, splits: splits}
	c := newConn(cc, RoleSMSC, ConnConfig{EnquireLink: -1, MaxPDUSize: 1024}, HandlerFunc(func(r *Request) {
		served.Add(1)
		r.Respond(StatusOK, nil)
	}))
	c.setBound("fuzz", BindTransceiver, nil)
	c.start()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session did not end")
	}
	return int(served.Load())
}

// FuzzFramer feeds arbitrary bytes with random read splits to a session.
func FuzzFramer(f *testing.F) {
	var stream []byte
	for i, p := range samplePDUs() {
		stream, _ = AppendPDU(stream, StatusOK, uint32(i+1), p)
	}
	f.Add(stream, []byte{1, 7, 3, 200})
	f.Add([]byte{0, 0, 0, 5, 0, 0, 0, 4}, []byte{1})
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		feedConn(t, data, splits)
	})
}

func TestFramerByteByByte(t *testing.T) {
	var stream []byte
	n := 0
	for i := 0; i < 20; i++ {
		stream, _ = AppendPDU(stream, StatusOK, uint32(i+1), benchSubmit())
		n++
	}
	testutil.RequireEqual(t, feedConn(t, stream, nil), n)
	testutil.RequireEqual(t, feedConn(t, stream, []byte{13, 200, 7, 1, 99}), n)
}

func TestFramerOversizeClosesWithoutReadingBody(t *testing.T) {
	var hdr [16]byte
	binary.BigEndian.PutUint32(hdr[:], 1<<31)
	binary.BigEndian.PutUint32(hdr[4:], uint32(SubmitSMID))
	testutil.RequireEqual(t, feedConn(t, hdr[:], nil), 0)
}

func TestSendAfterCloseFails(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := NewConn(a, RoleESME, ConnConfig{}, nil)
	c.Close()
	if _, _, err := c.Send(context.Background(), &EnquireLink{}); err == nil {
		t.Fatal("send on closed session succeeded")
	}
}
