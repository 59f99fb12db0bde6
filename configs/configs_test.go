// Package configs_test checks the shipped operations files: the Prometheus
// alert rules, the Grafana dashboard and the production example config. The
// metric names they use are checked against the collectors declared in the
// code, so renaming a metric without updating them fails here.
package configs_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/optgate/optgate/consent/keyword"
	"github.com/optgate/optgate/gateway"
)

// metricSources are the packages whose non-test files declare the optgate
// collectors (namespace optgate): metrics.go mostly, and a few subsystems'
// own files (smppguard.go, diskfault.go, gateway/api's sec.go, the receipt
// and status stores).
var metricSources = []string{"../gateway", "../gateway/api", "../gateway/receipt", "../gateway/status",
	"../consent", "../whatsapp", "../cluster"}

// runtimeMetrics are the client_golang Go and process collectors' series the
// files use (registered by cmd/optgate), and Prometheus's own "up".
var runtimeMetrics = []string{
	"up", "go_goroutines", "go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes",
	"go_gc_duration_seconds", "go_gc_duration_seconds_count", "process_resident_memory_bytes",
	"process_cpu_seconds_total", "process_open_fds", "process_max_fds",
}

var (
	optsRe     = regexp.MustCompile(`(?s)(Counter|Gauge|Histogram|Summary)Opts\{([^}]*?)\bName:\s*"(\w+)"`)
	subRe      = regexp.MustCompile(`Subsystem:\s*(?:"(\w*)"|(sub))`)
	constSubRe = regexp.MustCompile(`const ns, sub = "optgate", "(\w+)"`)
	// localGaugeRe finds the gauges cluster/metrics.go declares through its
	// local g(name, help, value) helper (BuildFQName(ns, sub, name)).
	localGaugeRe = regexp.MustCompile(`\bg\("(\w+)",\s*"`)
	// metricRe finds metric names in PromQL; label names never start so.
	metricRe = regexp.MustCompile(`\b(?:optgate|go|process)_[A-Za-z0-9_]+\b|\bup\b`)
)

// knownMetrics returns every series name the code exposes: counters and
// gauges by name, histograms with _bucket, _sum and _count.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	var files []string
	for _, dir := range metricSources {
		fs, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(fs) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, f := range fs {
			if !strings.HasSuffix(f, "_test.go") {
				files = append(files, f)
			}
		}
	}
	perDir := map[string]int{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sub := ""
		if m := constSubRe.FindSubmatch(src); m != nil {
			sub = string(m[1])
		}
		for _, m := range optsRe.FindAllSubmatch(src, -1) {
			kind, body, name := string(m[1]), m[2], string(m[3])
			full := "optgate_"
			if sm := subRe.FindSubmatch(body); sm != nil {
				s := string(sm[1])
				if sm[2] != nil {
					s = sub
				}
				if s != "" {
					full += s + "_"
				}
			}
			full += name
			known[full] = true
			if kind == "Histogram" || kind == "Summary" {
				known[full+"_sum"] = true
				known[full+"_count"] = true
			}
			if kind == "Histogram" {
				known[full+"_bucket"] = true
			}
			perDir[filepath.Dir(f)]++
		}
		if sub == "" {
			continue
		}
		for _, m := range localGaugeRe.FindAllSubmatch(src, -1) {
			known["optgate_"+sub+"_"+string(m[1])] = true
			perDir[filepath.Dir(f)]++
		}
	}
	for _, dir := range metricSources {
		root := filepath.Clean(dir)
		if strings.Count(root, "/") > 1 {
			continue // a subpackage counts with its parent below
		}
		n := 0
		for d, c := range perDir {
			if d == root || strings.HasPrefix(d, root+"/") {
				n += c
			}
		}
		if n < 5 {
			t.Fatalf("%s: found only %d metric declarations; has the declaration style changed?", dir, n)
		}
	}
	for _, m := range runtimeMetrics {
		known[m] = true
	}
	// Spot checks that the parsing above is right.
	for _, m := range []string{"optgate_gateway_messages_total", "optgate_smpp_submit_seconds_bucket",
		"optgate_consent_store_sync_seconds_bucket", "optgate_whatsapp_token_errors_total", "optgate_panics_total",
		"optgate_cluster_replication_lag_seconds_bucket", "optgate_cluster_feed_connected", "optgate_cluster_append_records_total"} {
		if !known[m] {
			t.Fatalf("metric %s not found in %v", m, metricSources)
		}
	}
	return known
}

func checkMetrics(t *testing.T, known map[string]bool, where, expr string) {
	t.Helper()
	names := metricRe.FindAllString(expr, -1)
	if len(names) == 0 {
		t.Errorf("%s: no metric in %q", where, expr)
	}
	for _, n := range names {
		if !known[n] {
			t.Errorf("%s: unknown metric %s in %q", where, n, expr)
		}
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertRules(t *testing.T) {
	known := knownMetrics(t)
	data, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatal(err)
	}
	if len(rf.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	groups, alerts := map[string]bool{}, map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q empty or duplicate", g.Name)
		}
		groups[g.Name] = true
		if len(g.Rules) == 0 {
			t.Errorf("group %s has no rules", g.Name)
		}
		for i, r := range g.Rules {
			where := fmt.Sprintf("%s[%d] %s", g.Name, i, r.Alert)
			if r.Alert == "" || r.Record != "" {
				t.Errorf("%s: want an alerting rule", where)
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("%s: duplicate alert", where)
			}
			alerts[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: no expr", where)
			}
			checkMetrics(t, known, where, r.Expr)
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", where, err)
				}
			}
			switch r.Labels["severity"] {
			case "critical", "warning":
			default:
				t.Errorf("%s: labels.severity %q, want critical or warning", where, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: annotations.%s missing", where, a)
				}
			}
		}
	}
	// The alerts the operations guide promises.
	for _, a := range []string{"OptgateSMSCNoBindsUp", "OptgateAllSMSCBindsDown", "OptgateBlockedRateSpike",
		"OptgateBlockedShareHigh", "OptgateWebhookBacklog", "OptgateWebhookFailureRatio", "OptgateConsentSyncSlow",
		"OptgateMOStoreFailed", "OptgatePanics", "OptgateWhatsAppTokenErrors",
		"OptgateClusterReplicationLagHigh", "OptgateClusterFeedDown", "OptgateClusterNoQuorum", "OptgateClusterReplicaMissing"} {
		if !alerts[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}

type panel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	Datasource json.RawMessage          `json:"datasource"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows
}

func TestGrafanaDashboard(t *testing.T) {
	known := knownMetrics(t)
	data, err := os.ReadFile("grafana/optgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		SchemaVersion int     `json:"schemaVersion"`
		UID           string  `json:"uid"`
		Title         string  `json:"title"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want >= 36", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("uid and title required")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Fatalf("want a datasource variable named datasource, have %v", vars)
	}
	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	ids := map[int]bool{}
	var rows []string
	queries := 0
	for _, p := range all {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("%s: id missing or duplicate", where)
		}
		ids[p.ID] = true
		if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
			t.Errorf("%s: bad gridPos %+v", where, p.GridPos)
		}
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if !strings.Contains(string(p.Datasource), `"${datasource}"`) {
			t.Errorf("%s: datasource %s does not use the ${datasource} variable", where, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId %q empty or duplicate", where, tg.RefID)
			}
			refs[tg.RefID] = true
			checkMetrics(t, known, where, tg.Expr)
			for _, v := range regexp.MustCompile(`\$(\w+)`).FindAllStringSubmatch(tg.Expr, -1) {
				if _, ok := vars[v[1]]; !ok && !strings.HasPrefix(v[1], "__") {
					t.Errorf("%s: undefined variable $%s", where, v[1])
				}
			}
			queries++
		}
	}
	want := []string{"Traffic", "SMPP", "Consent store", "Queues & webhooks", "WhatsApp", "Cluster", "Go runtime"}
	if strings.Join(rows, "|") != strings.Join(want, "|") {
		t.Errorf("rows %q, want %q", rows, want)
	}
	if queries < 30 {
		t.Errorf("only %d queries", queries)
	}
}

var envRefRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

func TestProductionExample(t *testing.T) {
	const file = "production.example.yaml"
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Every secret comes from the environment, without a default.
	secretKey := regexp.MustCompile(`^\s*-?\s*(password|api_token|secret|admin_token|token|app_secret|verify_token):\s*(.*)$`)
	for i, ln := range strings.Split(string(data), "\n") {
		m := secretKey.FindStringSubmatch(ln)
		if m == nil {
			continue
		}
		v := strings.TrimSpace(m[2])
		if !regexp.MustCompile(`^"\$\{[A-Za-z_][A-Za-z0-9_]*\}"(\s+#.*)?$`).MatchString(v) {
			t.Errorf("%s:%d: %s must be a quoted environment reference without default, is %s", file, i+1, m[1], v)
		}
	}
	vars := map[string]bool{}
	for _, m := range envRefRe.FindAllStringSubmatch(string(data), -1) {
		if m[2] != "" {
			t.Errorf("%s: ${%s%s}: no defaults in the production example", file, m[1], m[2])
		}
		vars[m[1]] = true
	}
	if len(vars) < 10 {
		t.Fatalf("only %d environment variables referenced", len(vars))
	}

	// Unset: each missing variable is reported by name and line.
	_, err = gateway.ParseConfig(data, file, func(string) (string, bool) { return "", false })
	if err == nil {
		t.Fatal("parsed without the environment")
	}
	for v := range vars {
		if !strings.Contains(err.Error(), "environment variable "+v+" is not set") {
			t.Errorf("missing %s not reported:\n%v", v, err)
		}
	}

	// Set, with values YAML would otherwise misread (numbers, ': ', ' #',
	// leading '*' or '&'): a clean parse. SMPP passwords are at most 8.
	names := make([]string, 0, len(vars))
	for v := range vars {
		names = append(names, v)
	}
	sort.Strings(names)
	env := map[string]string{}
	for i, v := range names {
		switch {
		case strings.HasSuffix(v, "PASSWORD"):
			env[v] = []string{"12345678", "*pw: #1", "&pw"}[i%3]
		default:
			env[v] = fmt.Sprintf("%s-value: #%d &x *y", strings.ToLower(v), i)
		}
	}
	cfg, err := gateway.ParseConfig(data, file, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("with every variable set:\n%v", err)
	}
	if cfg.Accounts[0].Password != env["OPTGATE_HIREFLOW_SMPP_PASSWORD"] || cfg.HTTP.AdminToken != env["OPTGATE_ADMIN_TOKEN"] {
		t.Errorf("secrets not read verbatim: %q %q", cfg.Accounts[0].Password, cfg.HTTP.AdminToken)
	}
	if cfg.Simulator.Enabled || cfg.WhatsAppSimulator.Enabled || cfg.Log.Format != "json" {
		t.Errorf("production example: simulators %v/%v, log format %s", cfg.Simulator.Enabled, cfg.WhatsAppSimulator.Enabled, cfg.Log.Format)
	}
	if len(cfg.Tenants) != 3 || len(cfg.SMSCs) != 2 || len(cfg.Routes) < 2 || len(cfg.WhatsApp.Numbers) == 0 {
		t.Errorf("want 3 tenants, 2 SMSCs, routes and WhatsApp numbers: %d %d %d %d",
			len(cfg.Tenants), len(cfg.SMSCs), len(cfg.Routes), len(cfg.WhatsApp.Numbers))
	}
	// What serve checks beyond ParseConfig: keyword modes and tables.
	tcs, err := gateway.ConsentTenants(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tcs {
		if _, err := keyword.New(tc.Keywords); err != nil {
			t.Errorf("tenant %s keywords: %v", tc.ID, err)
		}
	}
}
