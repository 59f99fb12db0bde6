package whatsapp

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// BenchmarkWebhookInbound measures signed inbound-message webhooks through a real fasthttp
// server (on an in-memory listener): signature check, parse, durable spool with group commit
// (synced), the worker pool, dedup and window bookkeeping, into the real consent engine
// (consent.Store in a temporary directory, its own group-committed Badger). One body in ten
// carries a keyword (STOP and START in turn, which change consent durably and store a pending
// confirmation), the others a plain text, each from one of 50,000 senders. msgs/s counts
// messages the consent engine answered, measured until the last one.
func BenchmarkWebhookInbound(b *testing.B) {
	db := openDB(b, b.TempDir())
	store, err := consent.Open(consent.Config{Dir: b.TempDir(), // Badger options as the gateway opens it
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Tenants: []consent.TenantConfig{{ID: "bench", Brand: "Bench Co", HelpContact: "help@bench.example"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	var handled, keywords atomic.Int64
	h := HandlerFunc(func(ctx context.Context, ev Event) error {
		if ev.Kind != KindMessage || ev.Message.KeywordText() == "" {
			return nil
		}
		res, err := store.Inbound(ctx, consent.InboundMessage{Tenant: "bench", Channel: consent.ChannelWhatsApp,
			Sender: "+15550783881", Recipient: ev.Message.From, Text: ev.Message.KeywordText(), MessageID: ev.Message.ID,
			ReceivedAt: ev.Message.Timestamp})
		if err != nil {
			return err // retried by the receiver, as the gateway does
		}
		if res.Matched {
			keywords.Add(1)
		}
		handled.Add(1)
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

	// Ten body templates (one keyword in ten); the wamid and the sender are patched per request.
	const idPlaceholder, fromPlaceholder = "wamid.BENCH0000000000000000", "16509990000"
	var tmpls [10][]byte
	for i := range tmpls {
		text := "Hi, is the interview still on for Tuesday?"
		switch i {
		case 0:
			text = "STOP"
		case 5:
			text = "START"
		}
		tmpls[i] = whatsapptest.InboundText(whatsapptest.Meta{PhoneNumberID: testPID}, fromPlaceholder, idPlaceholder, text, time.Now())
	}
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
		mac := hmac.New(sha256.New, []byte(testSecret))
		var body, id, from, sig, sum []byte
		for pb.Next() {
			n := seq.Add(1)
			id = strconv.AppendInt(append(id[:0], prefix...), n, 10)
			from = strconv.AppendInt(append(from[:0], "165099"...), 10000+n%50000, 10) // 11 digits, as the placeholder
			body = patch(body[:0], tmpls[n%10], idPlaceholder, id, fromPlaceholder, from)
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
		b.Fatalf("consent engine answered %d of %d", got, b.N)
	}
	if k := keywords.Load(); b.N >= 10 && k == 0 {
		b.Fatalf("no keyword matched in %d messages", b.N)
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

// patch appends tmpl to dst with every occurrence of the placeholders a and b replaced by va
// and vb.
func patch(dst, tmpl []byte, a string, va []byte, b string, vb []byte) []byte {
	for len(tmpl) > 0 {
		i, j := bytes.Index(tmpl, []byte(a)), bytes.Index(tmpl, []byte(b))
		switch {
		case i < 0 && j < 0:
			return append(dst, tmpl...)
		case j < 0 || (i >= 0 && i < j):
			dst = append(append(dst, tmpl[:i]...), va...)
			tmpl = tmpl[i+len(a):]
		default:
			dst = append(append(dst, tmpl[:j]...), vb...)
			tmpl = tmpl[j+len(b):]
		}
	}
	return dst
}

// cpuTime is the user+system CPU time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
