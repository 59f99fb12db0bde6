package consent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/optgate/optgate/internal/testutil"
)

// The constant-memory test streams memRows generated rows through Import
// and Export and takes the live heap (after a GC) at points along the way.
const (
	memRows  = 200_000
	memBound = 64 << 20 // growth over the baseline, bytes
)

// heapProbe records the largest live heap (HeapInuse after a full GC)
// seen at its sample points.
type heapProbe struct {
	base, max uint64
	samples   int
}

func (p *heapProbe) sample() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.max = max(p.max, ms.HeapInuse)
	p.samples++
}

func (p *heapProbe) growth() int64 { return int64(p.max) - int64(p.base) }

// rowSource generates an import CSV on the fly (never the whole file in
// memory) and samples the heap every quarter of the rows.
type rowSource struct {
	n, next int
	buf     []byte
	probe   *heapProbe
}

func (r *rowSource) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) && r.next <= r.n {
		if r.next == 0 {
			r.buf = append(r.buf, "tenant,channel,recipient,scope,class\n"...)
		} else {
			r.buf = fmt.Appendf(r.buf, "acme,sms,+1202%07d,tenant,all\n", r.next)
			if r.next%(r.n/4) == 0 {
				r.probe.sample()
			}
		}
		r.next++
	}
	if len(r.buf) == 0 {
		return 0, io.EOF
	}
	c := copy(p, r.buf)
	r.buf = r.buf[:copy(r.buf, r.buf[c:])]
	return c, nil
}

// lineCounter counts CSV lines written to it, keeping nothing, and samples
// the heap every quarter of the expected lines.
type lineCounter struct {
	lines, every int
	probe        *heapProbe
}

func (w *lineCounter) Write(p []byte) (int, error) {
	for n := bytes.Count(p, []byte{'\n'}); n > 0; n-- {
		w.lines++
		if w.lines%w.every == 0 {
			w.probe.sample()
		}
	}
	return len(p), nil
}

// TestImportExportConstantMemory imports memRows rows from a streaming
// reader and exports them (suppressions, and evidence except under -race)
// through a counting writer: the live heap, sampled along the way, stays
// within memBound of what it was after Open. The growth that remains is
// Badger's (memtables, flush buffers, block cache: bounded by its options)
// and the memory suppression index (by design about 45 bytes per entry, 9
// MiB here); the 200,000 evidence entries alone are over 40 MiB of JSON,
// so an import or export that held them would fail.
func TestImportExportConstantMemory(t *testing.T) {
	h := &harness{t: t, clock: newClock(), dir: t.TempDir()}
	h.cfg = Config{Dir: h.dir, Tenants: []TenantConfig{testTenant("acme")}, Clock: h.clock.Now, BadgerLowMemory: true,
		badgerOptions: func(o badger.Options) badger.Options {
			// No compaction: Badger's compaction buffers (pooled, tens of
			// MiB) would mask our own memory, and its CPU slows the test.
			// L0 may hold every flushed memtable without stalling writes.
			return o.WithNumCompactors(0).WithNumLevelZeroTables(200).WithNumLevelZeroTablesStall(400)
		}}
	h.open()
	t.Cleanup(func() { h.s.Close() })
	ctx := context.Background()
	probe := &heapProbe{}
	probe.sample()
	probe.base, probe.max = probe.max, 0

	rep, err := h.s.Import(ctx, &rowSource{n: memRows, probe: probe}, ImportOptions{Tenant: "acme", Source: "memory-test", Operator: "ops"})
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep.Applied, memRows, "applied")
	testutil.RequireEqual(t, rep.ErrorCount, 0, "errors")

	w := &lineCounter{every: memRows / 4, probe: probe}
	n, err := h.s.Export(ctx, w, ExportOptions{Tenant: "acme"})
	requireNoErr(t, err)
	testutil.RequireEqual(t, n, memRows, "exported")
	testutil.RequireEqual(t, w.lines, memRows+1, "export lines (with the header)")

	if !raceEnabled { // the JSON decoding of 200,000 entries takes ~15 s under -race
		w = &lineCounter{every: memRows / 4, probe: probe}
		n, err = h.s.ExportEvidence(ctx, w, ExportOptions{Tenant: "acme"})
		requireNoErr(t, err)
		testutil.RequireEqual(t, n, memRows, "evidence exported")
	}
	probe.sample()
	t.Logf("heap: base %d MiB, max %d MiB over %d samples (growth %d MiB)",
		probe.base>>20, probe.max>>20, probe.samples, probe.growth()>>20)
	if probe.samples < 9 {
		t.Fatalf("only %d heap samples", probe.samples)
	}
	if g := probe.growth(); g > memBound {
		t.Fatalf("live heap grew by %d MiB (bound %d MiB): import/export is not streaming", g>>20, memBound>>20)
	}
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, "+1202"+strconv.Itoa(10000000 + memRows/2)[1:], 0).Reason, ReasonOptedOut)
}
