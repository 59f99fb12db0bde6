package consent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/ristretto/v2/z"
)

// The Check benchmarks run against 10,000,000 suppressed recipients
// (+12020000000 … +12029999999, tenant "bench", tenant-wide opt-outs). The
// index is built once with Badger's StreamWriter under os.TempDir() and
// reused by later runs while its marker file is present. Opening it loads
// the memory index (several seconds); benchmarks share one open store.
const (
	benchEntries = 10_000_000
	benchDirName = "optgate-bench-consent-10m"
	benchMarker  = "COMPLETE-v1"
)

var (
	benchOnce  sync.Once
	benchStore *Store
	benchErr   error
)

func benchIndex(b *testing.B) *Store {
	b.Helper()
	benchOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), benchDirName)
		if _, err := os.Stat(filepath.Join(dir, benchMarker)); err != nil {
			start := time.Now()
			if benchErr = buildBenchIndex(dir); benchErr != nil {
				return
			}
			b.Logf("built %d-entry index in %v", benchEntries, time.Since(start).Round(time.Millisecond))
		}
		start := time.Now()
		benchStore, benchErr = Open(Config{Dir: dir, Tenants: []TenantConfig{testTenant("bench")},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if benchErr == nil {
			b.Logf("opened index: %d slots in %v", benchStore.idx.len(), time.Since(start).Round(time.Millisecond))
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchStore
}

func buildBenchIndex(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(false))
	if err != nil {
		return err
	}
	sw := db.NewStreamWriter()
	if err := sw.Prepare(); err != nil {
		db.Close()
		return err
	}
	r := rec{state: StateOptedOut, flags: fAll, lang: "en", updated: 1, optedOutAt: 1}
	val := r.marshal()
	buf := z.NewBuffer(64<<20, "bench")
	for i := 0; i < benchEntries; i++ {
		key := recordKey("bench", ChannelSMS, "+1202"+fmt.Sprintf("%07d", i), "")
		badger.KVToBuffer(&pb.KV{Key: key, Value: val, Version: 1}, buf)
		if buf.LenNoPadding() > 32<<20 {
			if err := sw.Write(buf); err != nil {
				db.Close()
				return err
			}
			buf.Reset()
		}
	}
	err = sw.Write(buf)
	buf.Release()
	if err == nil {
		err = sw.Flush()
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, benchMarker), []byte(strconv.Itoa(benchEntries)), 0o644)
}

func benchNumbers(base string, n int, step int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = base + fmt.Sprintf("%07d", (i*step)%benchEntries)
	}
	return out
}

func BenchmarkCheckSuppressed(b *testing.B) {
	s := benchIndex(b)
	nums := benchNumbers("+1202", 1<<16, 7919)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := s.Check("bench", ChannelSMS, senderA, nums[i&(1<<16-1)], CategoryTransactional)
		if err != nil || d.Allow {
			b.Fatalf("want blocked: %+v %v", d, err)
		}
	}
}

func BenchmarkCheckNotSuppressed(b *testing.B) {
	s := benchIndex(b)
	nums := benchNumbers("+1303", 1<<16, 7919) // +1303…: not in the index
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := s.Check("bench", ChannelSMS, senderA, nums[i&(1<<16-1)], CategoryTransactional)
		if err != nil || !d.Allow {
			b.Fatalf("want allowed: %+v %v", d, err)
		}
	}
}

// BenchmarkOptOutDurable measures concurrent STOPs through Inbound, each
// acknowledged only after its group-commit batch was fsynced.
func BenchmarkOptOutDurable(b *testing.B) {
	s, err := Open(Config{Dir: b.TempDir(), Tenants: []TenantConfig{testTenant("acme")},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(128) // GOMAXPROCS × 128 concurrent senders of STOP
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.Add(1)
			_, err := s.Inbound(ctx, InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA,
				Recipient: "+1202" + fmt.Sprintf("%07d", i%benchEntries), Text: "STOP", MessageID: strconv.FormatInt(i, 10)})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "optouts/s")
}
