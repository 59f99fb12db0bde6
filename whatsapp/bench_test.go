package whatsapp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/optgate/optgate/whatsapp/whatsapptest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// BenchmarkWebhookInbound measures signed inbound-message webhooks through a real fasthttp
// server on loopback: signature check, parse, durable spool with group commit (synced), the
// worker pool, dedup and window bookkeeping, into a trivial Handler standing in for the
// consent engine. msgs/s counts messages handed to the Handler, measured until the last one.
func BenchmarkWebhookInbound(b *testing.B) {
	db := openDB(b, b.TempDir())
	defer db.Close()
	var handled atomic.Int64
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		if ev.Kind == KindMessage && ev.Message.KeywordText() != "" {
			handled.Add(1)
		}
		return nil
	})
	m := NewMetrics(nil)
	r, err := NewReceiver(db, ReceiverConfig{AppSecret: testSecret, VerifyToken: testVerify,
		PhoneNumberIDs: []string{testPID}, Handler: h, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	// In-memory listener: the client and the server share the benchmark's two cores, and
	// kernel loopback TCP would measure the kernel rather than the receiver.
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- r.Serve(ln) }()
	defer func() {
		_ = r.Shutdown(context.Background())
		<-served
	}()

	const placeholder = "wamid.BENCH0000000000000000"
	tmpl := whatsapptest.InboundText(whatsapptest.Meta{PhoneNumberID: testPID}, "16505551234", placeholder, "Hello, please STOP", time.Now())
	at := bytes.Index(tmpl, []byte(placeholder))
	hc := &fasthttp.HostClient{Addr: "webhook.test", MaxConns: 512, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	var seq atomic.Int64
	prefix := fmt.Sprintf("wamid.B%x.", time.Now().UnixNano()) // unique across runs of the same DB
	var failures atomic.Int64

	b.ReportAllocs()
	b.SetParallelism(128) // Meta delivers concurrently; 128 × GOMAXPROCS clients
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		req := fasthttp.AcquireRequest()
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		body := append([]byte(nil), tmpl...)
		mac := hmac.New(sha256.New, []byte(testSecret))
		var id, sig, sum []byte
		for pb.Next() {
			id = strconv.AppendInt(append(id[:0], prefix...), seq.Add(1), 10)
			body = append(append(append(body[:0], tmpl[:at]...), id...), tmpl[at+len(placeholder):]...)
			mac.Reset()
			mac.Write(body)
			sum = mac.Sum(sum[:0])
			sig = hex.AppendEncode(append(sig[:0], "sha256="...), sum)
			req.Reset()
			req.SetRequestURI("http://" + hc.Addr + "/webhooks/whatsapp")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			req.Header.SetBytesV("X-Hub-Signature-256", sig)
			req.SetBodyRaw(body)
			if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				failures.Add(1)
			}
		}
	})
	acked := time.Since(start)
	want := int64(b.N) - failures.Load()
	for deadline := time.Now().Add(60 * time.Second); handled.Load() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d requests failed", f)
	}
	if got := handled.Load(); got != int64(b.N) {
		b.Fatalf("handled %d of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/acked.Seconds(), "acks/s")
	// Process CPU per message, clients included: independent of other load on the machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	var hm dto.Metric
	if err := m.commitGroups.(prometheus.Metric).Write(&hm); err == nil && hm.Histogram.GetSampleCount() > 0 {
		b.ReportMetric(hm.Histogram.GetSampleSum()/float64(hm.Histogram.GetSampleCount()), "bodies/commit")
	}
}

// cpuTime is the user+system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
