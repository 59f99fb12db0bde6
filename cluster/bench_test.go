package cluster

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkClusterOptOut appends opt-outs of about 120 bytes to an R3
// consent stream on three clustered embedded servers, from concurrent
// appenders, each Append returning after the quorum acknowledgement of its
// records; it reports durable opt-outs per second. batch=1 is one opt-out
// per Append (eight appenders per core); batch=100 is what a group commit
// hands over under load.
//
// The three servers run inside the benchmark's process and sync every
// write (SyncAlways): cluster.md measured that this distorts the figures
// badly against one server per process, as production runs, so read the
// figure as a floor and the overhead of this package, not as the
// cluster's throughput.
func BenchmarkClusterOptOut(b *testing.B) {
	tc := newTestCluster(b, nil)
	log := tc.conns[0].Log()
	var n atomic.Int64
	pad := "consent-change v1 tenant=acme kind=opt-out source=smpp keyword=STOP evidence=pdu:0123456789abcdef msisdn="
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8)
			ctx := context.Background()
			b.RunParallel(func(pb *testing.PB) {
				recs := make([]Record, 0, batch)
				flush := func() {
					if err := log.Append(ctx, recs...); err != nil {
						b.Error(err)
					}
					recs = recs[:0]
				}
				for pb.Next() {
					msisdn := fmt.Sprintf("+1555%07d", n.Add(1))
					recs = append(recs, Record{Tenant: "acme", Key: []byte(msisdn), Data: []byte(pad + msisdn)})
					if len(recs) == batch {
						flush()
					}
				}
				if len(recs) > 0 {
					flush()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "opt-outs/s")
		})
	}
}
