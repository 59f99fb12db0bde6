package configs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/cmd/optgate/simulators"
	"github.com/optgate/optgate/gateway"
)

// referencedMetrics is every metric name the dashboard and the alert rules
// use, with where it is used.
func referencedMetrics(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range []string{"grafana/optgate.json", "prometheus/alerts.yml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range regexp.MustCompile(`\boptgate_[A-Za-z0-9_]+\b`).FindAllString(string(b), -1) {
			out[n] = f
		}
	}
	return out
}

// Every series the dashboard and the alerts use exists right after start,
// before any traffic: a panel that shows "No data" or a ratio alert that
// cannot fire until each kind of traffic has flowed is a blind spot.
func TestMetricsExistAtStart(t *testing.T) {
	data, err := os.ReadFile("optgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.ParseConfig(data, "optgate.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.Dir = t.TempDir()
	cfg.Simulator.Listen = "127.0.0.1:0"
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	reg := prometheus.NewRegistry()
	opt := gateway.Options{Logger: quiet, Registerer: reg, Gatherer: reg, SMPPListener: sl, HTTPListener: hl}
	simulators.Wire(&opt)
	g, err := gateway.New(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.Shutdown(ctx)
	}()
	resp, err := http.Get("http://" + g.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	present := map[string]bool{}
	for _, ln := range strings.Split(string(body), "\n") {
		if ln == "" || ln[0] == '#' {
			continue
		}
		name := ln[:strings.IndexAny(ln, "{ ")]
		present[name] = true
	}
	for name, where := range referencedMetrics(t) {
		if strings.HasPrefix(name, clusterPrefix) {
			continue // only nodes with a cluster: section: TestClusterMetricsExist
		}
		if !present[name] && !present[name+"_count"] { // a histogram's name alone, in a description
			t.Errorf("%s (used in %s) is not exposed right after start", name, where)
		}
	}
	for _, want := range []string{`optgate_build_info{goversion="go`, `optgate_smpp_smsc_up{smsc="sim"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("%s missing from /metrics", want)
		}
	}
}

// promtool (the prometheus package) checks the alert rules when it is
// installed; scripts/test.sh installs it.
func promtool(t *testing.T, args ...string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("OPTGATE_INTEROP") == "required" {
			t.Fatal("promtool not installed (apt package prometheus)")
		}
		t.Skip("promtool not installed")
	}
	out, err := exec.Command(promtool, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// The alert rules' syntax.
func TestPromtoolCheckRules(t *testing.T) {
	promtool(t, "check", "rules", filepath.Join("prometheus", "alerts.yml"))
}

// The alert rules' unit tests (prometheus/alerts_test.yml): which series
// make which alert fire, and when.
func TestPromtoolTestRules(t *testing.T) {
	promtool(t, "test", "rules", filepath.Join("prometheus", "alerts_test.yml"))
}

// grafanaVars stand in for Grafana's variables so that promtool can parse
// the dashboard's queries.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__interval", "15s", "$__range", "1h",
	"$job", "optgate", "$instance", ".*")

// Every dashboard query is valid PromQL: promtool checks them as recording
// rules (a typo in a panel otherwise shows only as an error in Grafana).
func TestPromtoolDashboardQueries(t *testing.T) {
	data, err := os.ReadFile("grafana/optgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct{ Panels []panel }
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range d.Panels {
		for _, p := range append([]panel{p}, p.Panels...) {
			for _, tg := range p.Targets {
				expr, err := json.Marshal(grafanaVars.Replace(tg.Expr)) // a JSON string is a YAML string
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "      - record: panel_%d_%s\n        expr: %s\n", p.ID, tg.RefID, expr)
				n++
			}
		}
	}
	if n < 30 {
		t.Fatalf("only %d queries", n)
	}
	f := filepath.Join(t.TempDir(), "dashboard_rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", f)
}
