package gateway

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/optgate/optgate/smpp/smpptest"
)

func metricsGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metrics.listen serves /metrics without a token and takes it off the API
// port; /debug/pprof is there only with metrics.pprof.
func TestMetricsListener(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	for _, pprofOn := range []bool{false, true} {
		dir := t.TempDir()
		y := configYAML(dir, smsc.Addr(), "", "") + "metrics: {listen: \"127.0.0.1:0\", pprof: " + map[bool]string{false: "false", true: "true"}[pprofOn] + "}\n"
		env := startEnv(t, y, smsc, dir)
		m := "http://" + env.g.MetricsAddr()
		if code, body := metricsGet(t, m+"/metrics", ""); code != 200 || !strings.Contains(body, "optgate_") {
			t.Fatalf("metrics listener /metrics: %d %.200s", code, body)
		}
		if code, _ := metricsGet(t, "http://"+env.g.HTTPAddr()+"/metrics", adminTok); code != 404 {
			t.Fatalf("API port /metrics with metrics.listen set: %d, want 404", code)
		}
		code, body := metricsGet(t, m+"/debug/pprof/", "")
		if pprofOn && (code != 200 || !strings.Contains(body, "goroutine")) {
			t.Fatalf("pprof on: %d %.200s", code, body)
		}
		if !pprofOn && code != 404 {
			t.Fatalf("pprof off: /debug/pprof/ answered %d", code)
		}
		env.stop()
	}
	// Without metrics.listen, /metrics stays on the API port.
	env := newEnv(t)
	if code, body := metricsGet(t, "http://"+env.g.HTTPAddr()+"/metrics", ""); code != 200 || !strings.Contains(body, "optgate_") {
		t.Fatalf("API port /metrics: %d", code)
	}
	if env.g.MetricsAddr() != "" {
		t.Fatal("metrics listener without metrics.listen")
	}
}

func TestMetricsConfigChecked(t *testing.T) {
	for y, want := range map[string]string{
		"metrics: {listen: nowhere}\n": "metrics.listen",
		"metrics: {pprof: true}\n":     "metrics.pprof",
	} {
		_, err := ParseConfig([]byte(configYAML(t.TempDir(), "127.0.0.1:1", "", "")+y), "m.yaml", func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error about %s", y, err, want)
		}
	}
}
