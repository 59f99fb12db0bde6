package smpp

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func benchSubmit() *SubmitSM {
	sm := &SubmitSM{SM{
		Source:             Address{TON: 1, NPI: 1, Addr: []byte("15145550100")},
		Dest:               Address{TON: 1, NPI: 1, Addr: []byte("33612345678")},
		RegisteredDelivery: 1,
		ShortMessage:       []byte("Your interview is confirmed for Tuesday at 10:00. Reply STOP to opt out"),
	}}
	_ = sm.TLVs.SetUint16(TagUserMessageReference, 42)
	return sm
}

func BenchmarkSubmitSMEncode(b *testing.B) {
	sm := benchSubmit()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = AppendPDU(buf[:0], StatusOK, 12345, sm)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkSubmitSMDecode(b *testing.B) {
	raw, _ := AppendPDU(nil, StatusOK, 12345, benchSubmit())
	var sm SubmitSM
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := sm.UnmarshalBinary(raw[HeaderLen:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubmitSMDecodeSession is the session's own decode path: Decode
// of a whole frame, which takes a fresh PDU from New per frame (the handler
// may keep it), so unlike BenchmarkSubmitSMDecode it allocates.
func BenchmarkSubmitSMDecodeSession(b *testing.B) {
	raw, _ := AppendPDU(nil, StatusOK, 12345, benchSubmit())
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeliverSMDecode(b *testing.B) {
	d := &DeliverSM{SM{
		Source:       Address{TON: 1, NPI: 1, Addr: []byte("33612345678")},
		Dest:         Address{TON: 1, NPI: 1, Addr: []byte("15145550100")},
		ESMClass:     ESMClassReceipt,
		ShortMessage: []byte("id:1234567890 sub:001 dlvrd:001 submit date:2411221030 done date:2411221031 stat:DELIVRD err:000 text:Your interview is c"),
	}}
	_ = d.TLVs.SetCString(TagReceiptedMessageID, "499602d2")
	_ = d.TLVs.SetUint8(TagMessageState, 2)
	raw, _ := AppendPDU(nil, StatusOK, 7, d)
	var p DeliverSM
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		h, err := ParseHeader(raw)
		if err != nil || h.ID != DeliverSMID {
			b.Fatal(err)
		}
		if err := p.UnmarshalBinary(raw[HeaderLen:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoopbackSubmit measures our client against our server over
// 127.0.0.1 TCP: one bind, window 256, async submits.
func BenchmarkLoopbackSubmit(b *testing.B) {
	const window = 256
	srv := &Server{
		Authenticate: func(context.Context, BindInfo) (*Account, CommandStatus) { return &Account{ID: "bench"}, StatusOK },
		Handler: HandlerFunc(func(r *Request) {
			r.Respond(StatusOK, &SubmitSMResp{MessageID: []byte("1")})
		}),
		Conn: ConnConfig{MaxInflight: 4 * window},
	}
	ln := listenLocal(b)
	go srv.Serve(ln)
	defer srv.Close()
	c := NewClient(ClientConfig{Addr: ln.Addr().String(), SystemID: "bench", Password: "x", Conn: ConnConfig{Window: window}})
	c.Start()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitBound(ctx, 1); err != nil {
		b.Fatal(err)
	}
	cn := c.Conns()[0]
	sm := benchSubmit()
	var wg sync.WaitGroup
	var failed atomic.Int64
	done := func(r Result) {
		if r.Err != nil {
			failed.Add(1)
		}
		wg.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		if err := cn.SendAsync(ctx, sm, done); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d submits failed", failed.Load())
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
}
