package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/optgate/optgate/internal/testutil"
)

// owners serves claims on every node of tc: a node answers AnswerTaken for
// the payloads it owns (after after), AnswerNotMine for the others, and
// records what it was asked.
type owners struct {
	mu    sync.Mutex
	asked map[string][]string // node -> payloads
	owns  map[string]string   // payload -> node
	fail  map[string]bool     // payloads their owner cannot forward
	after time.Duration
}

func serveOwners(t testing.TB, tc *testCluster, o *owners) {
	t.Helper()
	o.asked = map[string][]string{}
	for i, c := range tc.conns {
		node := tc.cfgs[i].Node
		err := c.ServeClaims(func(data []byte, reply func(Answer)) {
			p := string(data)
			o.mu.Lock()
			o.asked[node] = append(o.asked[node], p)
			mine, fail := o.owns[p] == node, o.fail[p]
			o.mu.Unlock()
			switch {
			case !mine:
				reply(AnswerNotMine)
			case fail:
				reply(AnswerFailed)
			default:
				time.AfterFunc(o.after, func() { reply(AnswerTaken) })
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func (o *owners) askedOf(node string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, p := range o.asked[node] {
		if p != "warm-up" {
			out = append(out, p)
		}
	}
	return out
}

// warmUp waits until every other node's claim subscription reached c's
// server (interest travels the routes asynchronously): a claim nobody
// owns is answered by all of them.
func warmUp(t testing.TB, c *Conn) {
	t.Helper()
	testutil.CheckFor(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if r, err := c.Claim(ctx, []byte("warm-up")); r != ClaimNobody {
			return fmt.Errorf("warm-up claim: %v, %v", r, err)
		}
		return nil
	})
}

// TestClaimFindsTheOwner: a claim from n1 is answered by the node that
// owns it (taken), by nobody when no node does, and failed when the owner
// cannot forward; n1 is never asked its own claims.
func TestClaimFindsTheOwner(t *testing.T) {
	tc := newTestCluster(t, nil)
	o := &owners{owns: map[string]string{"r-on-n3": "n3", "r-on-n2": "n2", "r-stuck": "n2"},
		fail: map[string]bool{"r-stuck": true}, after: 50 * time.Millisecond}
	serveOwners(t, tc, o)
	warmUp(t, tc.conns[0])
	cases := []struct {
		payload string
		want    ClaimResult
	}{{"r-on-n3", ClaimTaken}, {"r-on-n2", ClaimTaken}, {"r-nobody", ClaimNobody}, {"r-stuck", ClaimFailed}}
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := tc.conns[0].Claim(ctx, []byte(c.payload))
		cancel()
		if got != c.want {
			t.Errorf("claim %s: %v (err %v), want %v", c.payload, got, err, c.want)
		}
		if c.want != ClaimFailed && err != nil {
			t.Errorf("claim %s: %v", c.payload, err)
		}
	}
	if a := o.askedOf("n1"); len(a) != 0 {
		t.Errorf("n1 was asked its own claims: %q", a)
	}
	if a := o.askedOf("n2"); len(a) != len(cases) {
		t.Errorf("n2 was asked %q, want every claim", a)
	}
}

// TestClaimWithANodeDownFails: with n3's connection gone nobody can say a
// receipt is nobody's, so a claim that n2 does not take fails with an
// error when its context ends (the SMSC will send the receipt again); one
// that n2 takes still succeeds.
func TestClaimWithANodeDownFails(t *testing.T) {
	tc := newTestCluster(t, nil)
	o := &owners{owns: map[string]string{"r-on-n2": "n2"}}
	serveOwners(t, tc, o)
	warmUp(t, tc.conns[0])
	tc.conns[2].Close()
	tc.conns[2] = nil
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	got, err := tc.conns[0].Claim(ctx, []byte("r-nobody"))
	if got != ClaimFailed || !errors.Is(err, errNoAnswer) {
		t.Fatalf("claim with n3 down: %v, %v; want failed, %v", got, err, errNoAnswer)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := tc.conns[0].Claim(ctx, []byte("r-on-n2")); got != ClaimTaken || err != nil {
		t.Fatalf("claim owned by n2 with n3 down: %v, %v; want taken", got, err)
	}
}

// TestClaimOnOneNode: a cluster of one node has nobody to ask.
func TestClaimOnOneNode(t *testing.T) {
	c := &Conn{cfg: &Config{Nodes: 1}}
	if got, err := c.Claim(context.Background(), []byte("x")); got != ClaimNobody || err != nil {
		t.Fatalf("claim on one node: %v, %v", got, err)
	}
}

// BenchmarkReceiptClaim is the round trip of one claim across three
// clustered embedded servers in this process: n1 asks, n2 answers
// not-mine, n3 answers taken at once (its forward is not included). It is
// what a receipt costs that arrives on a node other than its message's:
// the alternative, a KV put per MT part, is BenchmarkReceiptMapKVPut.
func BenchmarkReceiptClaim(b *testing.B) {
	tc := newTestCluster(b, nil)
	var n atomic.Int64
	for i, c := range tc.conns {
		node := tc.cfgs[i].Node
		if err := c.ServeClaims(func(data []byte, reply func(Answer)) {
			if node == "n3" && string(data) != "warm-up" {
				reply(AnswerTaken)
				return
			}
			reply(AnswerNotMine)
		}); err != nil {
			b.Fatal(err)
		}
	}
	warmUp(b, tc.conns[0])
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				data := make([]byte, 0, 64)
				for pb.Next() {
					data = fmt.Appendf(data[:0], "smsc-a\x00%d\x00DELIVRD", n.Add(1))
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					if r, err := tc.conns[0].Claim(ctx, data); r != ClaimTaken {
						b.Errorf("claim: %v, %v", r, err)
					}
					cancel()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
		})
	}
}

// BenchmarkReceiptMapKVPut is the design not taken: every part an SMSC
// accepts puts its mapping (about 100 bytes, keyed by a hash of SMSC and
// id) in an R3 KV bucket with a TTL, synced on a quorum of the three
// servers, before or beside the MT's answer. Compare its ns/op with
// BenchmarkReceiptClaim's, and its puts/s with the MT rate.
func BenchmarkReceiptMapKVPut(b *testing.B) {
	tc := newTestCluster(b, nil)
	ctx := context.Background()
	kv, err := tc.conns[0].js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "BENCH_RECEIPTS", History: 1,
		TTL: 72 * time.Hour, Storage: jetstream.FileStorage, Replicas: 3})
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	var n atomic.Int64
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := kv.Put(ctx, fmt.Sprintf("m%016x", n.Add(1)), value); err != nil {
						b.Error(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
