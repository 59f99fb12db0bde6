package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func loadConfig(t *testing.T, doc, dataDir string) *Config {
	t.Helper()
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	c.SetDefaults(dataDir)
	return &c
}

// configKeys is the list of keys Validate complains about.
func configKeys(err error) []string {
	var keys []string
	if err == nil {
		return nil
	}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if !errors.As(e, &ce) {
			return []string{"not a ConfigError: " + e.Error()}
		}
		keys = append(keys, ce.Key)
	}
	return keys
}

func TestConfigDefaults(t *testing.T) {
	c := loadConfig(t, `
node: n1
embedded:
  cluster_listen: 127.0.0.1:6222
  routes: [127.0.0.1:6222, "nats-route://127.0.0.1:6223", 127.0.0.1:6224]
`, "/var/lib/optgate")
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.Servers() != 3 || c.Replicas != 3 {
		t.Errorf("servers %d replicas %d, want 3 and 3 (the node's own route is not a peer)", c.Servers(), c.Replicas)
	}
	if c.MaxLag != 100*time.Millisecond || c.Heartbeat != 50*time.Millisecond {
		t.Errorf("max_lag %v heartbeat %v, want 100ms and 50ms", c.MaxLag, c.Heartbeat)
	}
	if c.Embedded.StoreDir != filepath.Join("/var/lib/optgate", "nats") || c.Embedded.Listen != "127.0.0.1:4222" {
		t.Errorf("store_dir %q listen %q", c.Embedded.StoreDir, c.Embedded.Listen)
	}

	two := loadConfig(t, "node: a\nembedded: {cluster_listen: '127.0.0.1:6222', routes: ['127.0.0.1:6223']}\n", "d")
	if two.Replicas != 2 || two.Nodes != 2 {
		t.Errorf("two servers: replicas %d, nodes %d, want 2 and 2", two.Replicas, two.Nodes)
	}
	ext := loadConfig(t, "node: a\nnats: {urls: ['nats://10.0.0.1:4222']}\nmax_lag: 250ms\n", "")
	if err := ext.Validate(); err != nil || ext.Replicas != 3 || ext.Nodes != 3 || ext.MaxLag != 250*time.Millisecond {
		t.Errorf("external: err %v replicas %d max_lag %v", err, ext.Replicas, ext.MaxLag)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "c.pem")
	if err := os.WriteFile(pem, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, doc string
		want      []string // keys, in order
	}{
		{"neither", "node: a\n", []string{"embedded"}},
		{"both", "node: a\nembedded: {cluster_listen: '127.0.0.1:6222'}\nnats: {urls: ['nats://h:4222']}\n", []string{"nats"}},
		{"bad names", "node: 'a.b'\nstream: 'x y'\nembedded: {cluster_listen: '127.0.0.1:6222', cluster_name: 'c*'}\n",
			[]string{"node", "embedded.cluster_name", "stream"}},
		{"peers", `node: a
embedded:
  cluster_listen: 127.0.0.1:6222
  routes: [127.0.0.1:6223, "127.0.0.1:6223", nonsense, "h:0", ":x"]
`, []string{"embedded.routes[1]", "embedded.routes[2]", "embedded.routes[3]", "embedded.routes[4]"}},
		{"no cluster listen", "node: a\nembedded: {routes: ['127.0.0.1:6223']}\n", []string{"embedded.cluster_listen"}},
		{"same listen", "node: a\nembedded: {listen: '127.0.0.1:6222', cluster_listen: '127.0.0.1:6222'}\n", []string{"embedded.cluster_listen"}},
		{"replicas over servers", "node: a\nreplicas: 3\nembedded: {cluster_listen: '127.0.0.1:6222', routes: ['127.0.0.1:6223']}\n",
			[]string{"replicas"}},
		{"replicas over 5", "node: a\nreplicas: 7\nnats: {urls: ['nats://h:4222'], servers: 9}\n", []string{"replicas"}},
		{"durations", "node: a\nmax_lag: -1s\nheartbeat: 80ms\nack_timeout: -2s\nembedded: {cluster_listen: '127.0.0.1:6222'}\n",
			[]string{"max_lag", "ack_timeout"}},
		{"heartbeat over half max_lag", "node: a\nheartbeat: 80ms\nembedded: {cluster_listen: '127.0.0.1:6222'}\n", []string{"heartbeat"}},
		{"limits", "node: a\nshards: 70000\nmax_pending: -1\nembedded: {cluster_listen: '127.0.0.1:6222'}\n", []string{"max_pending", "shards"}},
		{"tls and auth", `node: a
embedded:
  cluster_listen: 127.0.0.1:6222
  tls: {cert: ` + pem + `, ca: /nonexistent/ca.pem}
  auth: {user: u}
`, []string{"embedded.tls", "embedded.tls.ca", "embedded.auth"}},
		{"urls", "node: a\nnats: {urls: ['http://h:80', 'nats://'], credentials: /nonexistent.creds}\n",
			[]string{"nats.urls[0]", "nats.urls[1]", "nats.credentials"}},
		{"no urls", "node: a\nnats: {urls: []}\n", []string{"nats.urls"}},
		{"nodes", "node: a\nnodes: 99\nnats: {urls: ['nats://h:4222']}\n", []string{"nodes"}},
		{"valid tls", "node: a\nembedded: {cluster_listen: '127.0.0.1:6222', tls: {cert: " + pem + ", key: " + pem + ", ca: " + pem + "}, auth: {user: u, password: p}}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := loadConfig(t, tt.doc, dir)
			err := c.Validate()
			got := configKeys(err)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("keys %q, want %q; error:\n%v", got, tt.want, err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "cluster.") {
				t.Errorf("error %q does not name the cluster key", err)
			}
		})
	}
}
