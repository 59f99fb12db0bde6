package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

// TestSmokeCluster runs `optgate-bench run cluster` at a tiny size: one
// optgate, then three clustered over embedded NATS, each phase for a
// couple of seconds, 40 timed STOPs idle and 40 under MT load. Every STOP
// acknowledged on one node must be refused 0x401 on another, and every
// figure the issue asks for must be there and sane.
func TestSmokeCluster(t *testing.T) {
	const stops = 40
	rep := runScenario(t, "cluster", "-duration", "2s", "-suppressed", "2000", "-stops", "40", "-binds", "2",
		"-mo-window", "64")
	for _, name := range []string{"mt 1 node", "mt 3 nodes"} {
		ph := rep.Phase(name)
		if ph == nil || ph.Load == nil {
			t.Fatalf("no %q phase: %+v", name, rep.Phases)
		}
		if ph.Load.Accepted == 0 || ph.Figures["screened_per_s"] <= 0 || ph.Load.Errors != 0 || ph.Load.Timeouts != 0 {
			t.Fatalf("%s: accepted %d, screened/s %v, errors %d, timeouts %d", name, ph.Load.Accepted,
				ph.Figures["screened_per_s"], ph.Load.Errors, ph.Load.Timeouts)
		}
		if ph.Load.Statuses[statusName(0x401)] == 0 {
			t.Fatalf("%s: nothing refused as opted out although 10%% went to the preloaded pool: %v", name, ph.Load.Statuses)
		}
	}
	if r := rep.Phase("mt 3 nodes").Figures["ratio_to_1_node"]; r <= 0 {
		t.Fatalf("no MT ratio 3 nodes to 1: %v", r)
	}
	for _, name := range []string{"opt-outs 1 node", "opt-outs R3"} {
		ph := rep.Phase(name)
		if ph == nil || ph.MO == nil {
			t.Fatalf("no %q phase: %+v", name, rep.Phases)
		}
		if ph.MO.Acked == 0 || ph.MO.Errors != 0 || ph.Figures["durable_optouts_per_s"] <= 0 {
			t.Fatalf("%s: acked %d, errors %d, figures %v", name, ph.MO.Acked, ph.MO.Errors, ph.Figures)
		}
	}
	if r := rep.Phase("opt-outs R3").Figures["ratio_to_1_node"]; r <= 0 {
		t.Fatalf("no opt-outs ratio R3 to 1 node: %v", r)
	}
	for _, name := range []string{"STOPs idle", "STOPs + MT"} {
		ph := rep.Phase(name)
		if ph == nil {
			t.Fatalf("no %q phase: %+v", name, rep.Phases)
		}
		f := ph.Figures
		if f["stops_acked"] != stops || f["stops_refused_on_other_node"] != stops || f["stops_not_refused_in_10s"] != 0 {
			t.Fatalf("%s: of %d STOPs %v acked, %v refused on another node, %v not refused", name, stops,
				f["stops_acked"], f["stops_refused_on_other_node"], f["stops_not_refused_in_10s"])
		}
		if !(f["stop_to_refused_p50_ms"] > 0 && f["stop_to_refused_p99_ms"] >= f["stop_to_refused_p50_ms"]) {
			t.Fatalf("%s: STOP→refused p50 %v p99 %v", name, f["stop_to_refused_p50_ms"], f["stop_to_refused_p99_ms"])
		}
		if f["replication_lag_samples"] <= 0 || math.IsNaN(f["replication_lag_p99_ms"]) {
			t.Fatalf("%s: no replication lag scraped: %v", name, f)
		}
	}
	if rep.Phase("STOPs + MT").Figures["mt_per_s"] <= 0 {
		t.Fatal("no MT load during the loaded STOPs")
	}
	if len(rep.Goals) != 3 {
		t.Fatalf("goals %+v, want the issue's three", rep.Goals)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "correctness and overhead, not scale-out") {
		t.Fatalf("the report does not say what three nodes on one machine measure: %q", rep.Notes)
	}
}

func TestParseLagHistogram(t *testing.T) {
	text := `# HELP optgate_cluster_replication_lag_seconds Staleness
# TYPE optgate_cluster_replication_lag_seconds histogram
optgate_cluster_replication_lag_seconds_bucket{le="0.005"} 50
optgate_cluster_replication_lag_seconds_bucket{le="0.01"} 90
optgate_cluster_replication_lag_seconds_bucket{le="0.1"} 99
optgate_cluster_replication_lag_seconds_bucket{le="+Inf"} 100
optgate_cluster_replication_lag_seconds_sum 1.5
optgate_cluster_replication_lag_seconds_count 100
optgate_cluster_applied_sequence 1234
optgate_cluster_append_records_total{result="ok"} 7
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.gauge("optgate_cluster_applied_sequence"); got != 1234 {
		t.Fatalf("applied sequence %v", got)
	}
	if len(m.lag) != 4 || m.lag.count() != 100 {
		t.Fatalf("buckets %+v", m.lag)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 0.005}, {0.25, 0.0025}, {0.7, 0.0075}, {0.99, 0.1}, {0.999, 0.1}} {
		if got := m.lag.quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	// Two nodes summed, then an earlier scrape taken away.
	two := m.lag.add(m.lag)
	if two.count() != 200 {
		t.Fatalf("sum of two: %+v", two)
	}
	if d := two.sub(m.lag); d.count() != 100 || d.quantile(0.5) != m.lag.quantile(0.5) {
		t.Fatalf("difference: %+v", d)
	}
	if !math.IsNaN(lagHist(nil).quantile(0.5)) {
		t.Fatal("quantile of nothing is not NaN")
	}
}

func TestClusterConfigTemplate(t *testing.T) {
	dir := t.TempDir()
	g, err := LaunchOptgate(OptgateOptions{Bin: "/bin/true", Dir: dir, SimAddr: "127.0.0.1:1", SMSCSystemID: "optgate-n2",
		Cluster: &ClusterNodeOptions{Node: "n2", Listen: "127.0.0.1:4222", ClusterListen: "127.0.0.1:6222",
			Routes: []string{"127.0.0.1:6221", "127.0.0.1:6222", "127.0.0.1:6223"}}})
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	b, err := os.ReadFile(filepath.Join(dir, "optgate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"system_id: optgate-n2", "cluster:\n  node: n2\n  embedded:\n    listen: 127.0.0.1:4222\n" +
		"    cluster_listen: 127.0.0.1:6222\n    routes: [127.0.0.1:6221, 127.0.0.1:6222, 127.0.0.1:6223]\n"} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("config lacks %q:\n%s", want, b)
		}
	}
}

// TestLoadSpreadsOverAddrs: with Addrs, the binds go round robin to the
// addresses (the nodes of a cluster), and each gets its share of submits.
func TestLoadSpreadsOverAddrs(t *testing.T) {
	a, b := newMiniSMSC(t, false), newMiniSMSC(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := StartLoad(ctx, LoadConfig{Addrs: []string{a.Addr(), b.Addr()}, Binds: 4, Window: 8, Count: 2000})
	if err != nil {
		t.Fatal(err)
	}
	r := l.Wait()
	testutil.RequireEqual(t, r.Answered(), int64(2000), "answered")
	testutil.RequireEqual(t, a.submits.Load()+b.submits.Load(), int64(2000), "submits at the two SMSCs")
	if a.submits.Load() < 200 || b.submits.Load() < 200 {
		t.Fatalf("submits %d and %d: the binds were not spread over both addresses", a.submits.Load(), b.submits.Load())
	}
}

// TestMOSpreadsOverAccounts: with Accounts, MO i goes to Accounts[i mod
// len] (a node each, bound with its own system_id).
func TestMOSpreadsOverAccounts(t *testing.T) {
	sim, err := StartSim(SimConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var loads []*Load
	for _, acct := range []string{"node-a", "node-b", "node-c"} {
		l, err := StartLoad(ctx, LoadConfig{Addr: sim.Addr(), SystemID: acct, Binds: 1, Window: 4, Rate: 1, Duration: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { l.Stop(); l.Wait() }()
		loads = append(loads, l)
	}
	g, err := sim.StartMO(ctx, MOConfig{Accounts: []string{"node-a", "node-b", "node-c"}, Count: 300, Duration: 10 * time.Second, Window: 16})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	case <-ctx.Done():
		t.Fatal("MO generator did not finish")
	}
	testutil.RequireEqual(t, g.Acked.Load(), int64(300), "MOs acked")
	for i, l := range loads {
		testutil.RequireEqual(t, l.Counters().MOs.Load(), int64(100), fmt.Sprintf("MOs at account %d", i))
	}
}
