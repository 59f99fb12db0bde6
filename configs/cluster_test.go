package configs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/optgate/optgate/cluster"
	"github.com/optgate/optgate/gateway"
)

// noEnv makes the examples' ${NAME:-default} take their defaults, whatever
// the environment of the test.
func noEnv(string) (string, bool) { return "", false }

// splitCluster splits a configuration file in two of the same lines: rest
// with the top-level `cluster:` section blanked out, and section with only
// that section kept (nil when the file has none), so that both parsers
// report the file's own line numbers.
func splitCluster(t *testing.T, file string, data []byte) (rest, section []byte) {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("%s: not a YAML mapping", file)
	}
	root := doc.Content[0]
	for i := 0; i < len(root.Content); i += 2 {
		if root.Content[i].Value != "cluster" {
			continue
		}
		lines := bytes.Split(data, []byte("\n"))
		from, to := root.Content[i].Line-1, len(lines) // 0-based, to exclusive
		if i+2 < len(root.Content) {
			to = root.Content[i+2].Line - 1
		}
		restLines := make([][]byte, len(lines))
		sectionLines := make([][]byte, len(lines))
		for j, ln := range lines {
			if j >= from && j < to {
				sectionLines[j] = ln
			} else {
				restLines[j] = ln
			}
		}
		return bytes.Join(restLines, []byte("\n")), bytes.Join(sectionLines, []byte("\n"))
	}
	return data, nil
}

// gatewayKnowsCluster reports whether gateway.Config has its `cluster:`
// field yet (issue 16's gateway wiring).
func gatewayKnowsCluster() bool {
	f, ok := reflect.TypeOf(gateway.Config{}).FieldByName("Cluster")
	return ok && f.Tag.Get("yaml") == "cluster"
}

// exampleNode is one parsed example configuration.
type exampleNode struct {
	file    string
	gw      *gateway.Config
	cluster *cluster.Config // nil without a cluster: section
}

// parseExample parses an example configuration as serve would, with the
// environment's defaults. The gateway's own parser checks everything but
// the `cluster:` section, which cluster.Config's SetDefaults and Validate
// check, as serve's check will once the gateway has its cluster field;
// when it has, the whole file must also pass gateway.ParseConfig.
func parseExample(t *testing.T, file string) exampleNode {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rest, section := splitCluster(t, file, data)
	gw, err := gateway.ParseConfig(rest, file, noEnv)
	if err != nil {
		t.Fatalf("%s:\n%v", file, err)
	}
	n := exampleNode{file: file, gw: gw}
	if section == nil {
		return n
	}
	var only struct {
		Cluster *cluster.Config `yaml:"cluster"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(section))
	dec.KnownFields(true)
	if err := dec.Decode(&only); err != nil {
		t.Fatalf("%s: cluster: %v", file, err)
	}
	if only.Cluster == nil {
		t.Fatalf("%s: cluster: the section is empty", file)
	}
	n.cluster = only.Cluster
	n.cluster.SetDefaults(gw.Store.Dir)
	if err := n.cluster.Validate(); err != nil {
		t.Fatalf("%s:\n%v", file, err)
	}
	if gatewayKnowsCluster() {
		if _, err := gateway.ParseConfig(data, file, noEnv); err != nil {
			t.Fatalf("%s (whole file, cluster: included):\n%v", file, err)
		}
	}
	return n
}

// Every example configuration but the production one (TestProductionExample
// parses that with its environment) parses cleanly, its cluster: section
// included; a new example file is picked up by the glob.
func TestExampleConfigsParse(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob("cluster/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	parsed := 0
	for _, f := range files {
		if f == "production.example.yaml" {
			continue
		}
		parseExample(t, f)
		parsed++
	}
	if parsed < 4 {
		t.Errorf("parsed %d example configs (%v), want optgate.yaml and cluster/node{1,2,3}.yaml", parsed, files)
	}
}

// The three cluster example nodes run side by side on one machine: every
// listener on loopback and distinct, each its own data directory and
// simulator, each routing to exactly the other two, three replicas with
// the 100 ms staleness budget.
func TestClusterExampleNodes(t *testing.T) {
	var nodes []exampleNode
	for _, f := range []string{"cluster/node1.yaml", "cluster/node2.yaml", "cluster/node3.yaml"} {
		nodes = append(nodes, parseExample(t, f))
	}
	ports := map[string]string{} // host:port -> file and key
	dirs, names := map[string]bool{}, map[string]bool{}
	addr := func(file, key, hp string) {
		t.Helper()
		h, _, err := net.SplitHostPort(hp)
		if err != nil || h != "127.0.0.1" {
			t.Errorf("%s: %s %q is not a 127.0.0.1 address", file, key, hp)
		}
		if prev, dup := ports[hp]; dup {
			t.Errorf("%s: %s %s is also %s", file, key, hp, prev)
		}
		ports[hp] = file + " " + key
	}
	clusterListens := map[string]string{}
	for _, n := range nodes {
		g, c := n.gw, n.cluster
		if c == nil || c.Embedded == nil || c.NATS != nil {
			t.Fatalf("%s: want a cluster: section with an embedded server", n.file)
		}
		addr(n.file, "smpp.listen", g.SMPP.Listen)
		addr(n.file, "http.listen", g.HTTP.Listen)
		addr(n.file, "metrics.listen", g.Metrics.Listen)
		addr(n.file, "simulator.listen", g.Simulator.Listen)
		addr(n.file, "cluster.embedded.listen", c.Embedded.Listen)
		addr(n.file, "cluster.embedded.cluster_listen", c.Embedded.ClusterListen)
		clusterListens[n.file] = c.Embedded.ClusterListen
		if !g.Simulator.Enabled || len(g.SMSCs) != 1 || g.SMSCs[0].Address != g.Simulator.Listen {
			t.Errorf("%s: want the built-in simulator enabled and the one SMSC bound to it", n.file)
		}
		// Resolved against the file's folder: the repository's data/<node>.
		if want := filepath.Join("..", "data", c.Node); dirs[g.Store.Dir] || g.Store.Dir != want {
			t.Errorf("%s: store.dir %s repeated or not %s", n.file, g.Store.Dir, want)
		}
		dirs[g.Store.Dir] = true
		if want := filepath.Join(g.Store.Dir, "nats"); c.Embedded.StoreDir != want {
			t.Errorf("%s: JetStream store %s, want %s (inside the node's data directory)", n.file, c.Embedded.StoreDir, want)
		}
		if names[c.Node] {
			t.Errorf("%s: node name %s repeated", n.file, c.Node)
		}
		names[c.Node] = true
		if c.Replicas != 3 || c.Servers() != 3 || c.MaxLag != 100*time.Millisecond {
			t.Errorf("%s: replicas %d of %d servers, max_lag %v; want 3 of 3, 100ms", n.file, c.Replicas, c.Servers(), c.MaxLag)
		}
	}
	first := nodes[0].cluster
	for _, n := range nodes {
		c := n.cluster
		var want []string
		for f, l := range clusterListens {
			if f != n.file {
				want = append(want, l)
			}
		}
		got := slices.Clone(c.Embedded.Routes)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: routes %v, want the other nodes' cluster_listen %v", n.file, got, want)
		}
		if c.Embedded.ClusterName != first.Embedded.ClusterName || c.Stream != first.Stream ||
			c.SubjectKey != first.SubjectKey || c.Shards != first.Shards {
			t.Errorf("%s: cluster_name, stream, subject_key and shards must be the same on every node", n.file)
		}
		if strings.Join(tenantIDs(n.gw), ",") != strings.Join(tenantIDs(nodes[0].gw), ",") {
			t.Errorf("%s: tenants differ from %s", n.file, nodes[0].file)
		}
	}
}

func tenantIDs(c *gateway.Config) []string {
	var ids []string
	for _, t := range c.Tenants {
		ids = append(ids, t.ID)
	}
	return ids
}

// clusterPrefix starts the metrics a node exposes only with a cluster:
// section.
const clusterPrefix = "optgate_cluster_"

// Every optgate_cluster_* series the dashboard and the alert rules use
// exists once a node has connected and its follower runs, before any
// consent change: three real embedded NATS servers (in this process: an
// embedded server with no routes cannot run clustered JetStream), the
// cluster package's own collectors on a registry.
func TestClusterMetricsExist(t *testing.T) {
	// Route ports must be known before the servers start: free ones,
	// closed again for the servers.
	var routes []string
	var lns []net.Listener
	for range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		routes = append(routes, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	var cfgs []*cluster.Config
	for i, r := range routes {
		c := &cluster.Config{Node: fmt.Sprintf("m%d", i+1), StartWait: 30 * time.Second,
			Embedded: &cluster.EmbeddedConfig{Listen: "127.0.0.1:0", ClusterListen: r, Routes: routes}}
		c.SetDefaults(t.TempDir())
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, c)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srvs := make([]*cluster.Server, 3)
	defer func() {
		for _, s := range srvs {
			if s != nil {
				s.Shutdown()
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, c := range cfgs {
		wg.Go(func() { srvs[i], errs[i] = cluster.StartServer(c, quiet) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	cfg, srv := cfgs[0], srvs[0]
	reg := prometheus.NewRegistry()
	conn, err := cluster.Connect(context.Background(), cfg, srv, cluster.Options{Logger: quiet, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f, err := conn.Follow(context.Background(), 0, func(uint64, cluster.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 0 {
			continue
		}
		n := mf.GetName()
		present[n] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			present[n+"_bucket"], present[n+"_sum"], present[n+"_count"] = true, true, true
		}
	}
	used := 0
	for name, where := range referencedMetrics(t) {
		if !strings.HasPrefix(name, clusterPrefix) {
			continue
		}
		used++
		if !present[name] {
			t.Errorf("%s (used in %s) is not exposed by a connected cluster node", name, where)
		}
	}
	if used < 10 {
		t.Errorf("the dashboard and alerts use only %d cluster metrics", used)
	}
}
