package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults of the cluster section. A field left at its zero value takes
// these in SetDefaults.
const (
	DefaultMaxLag     = 100 * time.Millisecond
	DefaultHeartbeat  = 50 * time.Millisecond
	DefaultAckTimeout = 2 * time.Second
	DefaultStartWait  = 30 * time.Second
	// DefaultSharedTTL keeps a shared fact (Shared) 30 days after its last
	// put: well past the WhatsApp window's 24 hours.
	DefaultSharedTTL   = 30 * 24 * time.Hour
	DefaultMaxPending  = 1024
	DefaultShards      = 256
	DefaultStream      = "OPTGATE_CONSENT"
	DefaultClusterName = "optgate"
	// DefaultSubjectKey keys the subject hash when subject_key is unset: no
	// phone number is ever in a subject, but anyone who knows this key and
	// can read subjects could compute which shard a number falls in.
	DefaultSubjectKey = "optgate-consent-subject-v1"
)

// Config is the `cluster:` section of the optgate configuration. Without it
// (a nil *Config in the gateway) optgate runs as a single node with no NATS.
// Exactly one of Embedded and NATS is set.
type Config struct {
	// Node is this node's name, unique in the cluster: letters, digits, '-'
	// and '_', at most 64. With an embedded server it is also the NATS
	// server name, so it must stay the same across restarts (JetStream
	// identifies a peer by it).
	Node string `yaml:"node"`

	// Embedded runs a NATS server with JetStream inside this process.
	Embedded *EmbeddedConfig `yaml:"embedded"`
	// NATS uses an existing NATS cluster instead.
	NATS *NATSConfig `yaml:"nats"`

	// Replicas of the consent stream. Default 3 when the cluster has three
	// or more servers, else the number of servers. At most the number of
	// servers; an even number tolerates no more failures than the odd number
	// below it.
	Replicas int `yaml:"replicas"`
	// MaxLag is the staleness budget: past it, or out of quorum, the node
	// fails closed (refuses MT, /readyz false). Default 100ms.
	MaxLag time.Duration `yaml:"max_lag"`
	// Heartbeat is how often the follower probes the stream's last sequence
	// so that lag is meaningful when nothing changes. Default 50ms; at most
	// half of MaxLag.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// AckTimeout bounds one Append: past it, the change is refused (the
	// source gets ESME_RX_T_APPN or 503 and retries). Default 2s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// StartWait bounds the wait at start for JetStream's meta leader and the
	// stream, and for the follower's catch-up. Default 30s.
	StartWait time.Duration `yaml:"start_wait"`
	// MaxPending bounds the asynchronous publishes in flight on this node's
	// connection. Default 1024.
	MaxPending int `yaml:"max_pending"`
	// Stream is the consent stream's name. Default OPTGATE_CONSENT.
	Stream string `yaml:"stream"`
	// Shards is the number of subjects per tenant. Default 256.
	Shards int `yaml:"shards"`
	// SubjectKey keys the hash that picks a record's shard; the same on
	// every node. Default DefaultSubjectKey.
	SubjectKey string `yaml:"subject_key"`
	// SharedTTL is how long the shared bucket (Shared: WhatsApp windows,
	// last channels) keeps a fact after its last put. Default 720h; at
	// least 48h, the WhatsApp window's records' own lifetime.
	SharedTTL time.Duration `yaml:"shared_ttl"`
	// WorkAckWait is how long a node may hold a work queue item (queued
	// MT, spooled deliver_sm; queue.go) without a sign of life before the
	// servers hand it to another node: how long a node's death delays its
	// items. Default 30s; at least 1s.
	WorkAckWait time.Duration `yaml:"work_ack_wait"`
	// Nodes is the number of optgate nodes in the cluster, this one
	// included: a receipt this node cannot correlate is asked of the
	// Nodes-1 others (claim.go), and only an answer from every one of
	// them ends it as uncorrelated. Default: Servers() (one embedded
	// server per node); with nats.urls set it when optgate nodes and
	// NATS servers differ in number.
	Nodes int `yaml:"nodes"`
}

// EmbeddedConfig is the NATS server run inside optgate. Its JetStream file
// store syncs every write before acknowledging it (sync_interval: always).
type EmbeddedConfig struct {
	// Listen is the client address (host:port). Default 127.0.0.1:4222;
	// port 0 picks a free port.
	Listen string `yaml:"listen"`
	// ClusterName is the NATS cluster's name, the same on every node.
	// Default "optgate".
	ClusterName string `yaml:"cluster_name"`
	// ClusterListen is the route address the peers connect to (host:port).
	ClusterListen string `yaml:"cluster_listen"`
	// Routes are the peers' route addresses (host:port or
	// nats-route://host:port). A node may list itself, spelled exactly as
	// its cluster_listen (else it counts as one more server).
	Routes []string `yaml:"routes"`
	// StoreDir is JetStream's store. Default <data dir>/nats.
	StoreDir string `yaml:"store_dir"`
	// TLS, when Cert is set, protects the client and route listeners; routes
	// verify their peers against CA.
	TLS TLSConfig `yaml:"tls"`
	// Auth, when User is set, is required of clients and routes.
	Auth AuthConfig `yaml:"auth"`
}

// NATSConfig points at an existing NATS cluster with JetStream. Its servers
// should run with sync_interval: always, or a PubAck proves quorum, not disk.
type NATSConfig struct {
	URLs        []string  `yaml:"urls"`
	Credentials string    `yaml:"credentials"` // a .creds file
	TLS         TLSConfig `yaml:"tls"`
	// Servers is the number of JetStream servers in that cluster, used for
	// the replicas default and check. Default 3.
	Servers int `yaml:"servers"`
}

// TLSConfig names PEM files.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
}

// AuthConfig is a user and password.
type AuthConfig struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// ConfigError is one problem in the cluster section; Key is its YAML path
// below `cluster.` (e.g. "embedded.routes[1]").
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string { return "cluster." + e.Key + ": " + e.Msg }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// SetDefaults fills the zero fields; dataDir is the node's data directory
// (the embedded store goes under it).
func (c *Config) SetDefaults(dataDir string) {
	if c.MaxLag == 0 {
		c.MaxLag = DefaultMaxLag
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.StartWait == 0 {
		c.StartWait = DefaultStartWait
	}
	if c.SharedTTL == 0 {
		c.SharedTTL = DefaultSharedTTL
	}
	if c.WorkAckWait == 0 {
		c.WorkAckWait = DefaultWorkAckWait
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	if c.SubjectKey == "" {
		c.SubjectKey = DefaultSubjectKey
	}
	if e := c.Embedded; e != nil {
		if e.Listen == "" {
			e.Listen = "127.0.0.1:4222"
		}
		if e.ClusterName == "" {
			e.ClusterName = DefaultClusterName
		}
		if e.StoreDir == "" && dataDir != "" {
			e.StoreDir = filepath.Join(dataDir, "nats")
		}
	}
	if n := c.NATS; n != nil && n.Servers == 0 {
		n.Servers = 3
	}
	if c.Replicas == 0 {
		c.Replicas = min(c.Servers(), 3)
	}
	if c.Nodes == 0 {
		c.Nodes = c.Servers()
	}
}

// Servers is the number of JetStream servers the stream can be placed on:
// the distinct embedded routes plus this node, or nats.servers.
func (c *Config) Servers() int {
	switch {
	case c.Embedded != nil:
		seen := map[string]bool{}
		self := hostPort(c.Embedded.ClusterListen)
		n := 1
		for _, r := range c.Embedded.Routes {
			hp := hostPort(r)
			if hp == "" || hp == self || seen[hp] {
				continue
			}
			seen[hp] = true
			n++
		}
		return n
	case c.NATS != nil:
		return max(c.NATS.Servers, 1)
	}
	return 0
}

// hostPort is a route's host:port without scheme or credentials, "" if it
// does not parse.
func hostPort(s string) string {
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "nats-route://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Host
}

// Validate reports every problem of the section at once, as one error that
// unwraps (errors.Join) to *ConfigError values; nil when valid. Call it
// after SetDefaults.
func (c *Config) Validate() error {
	var es []error
	bad := func(key, format string, args ...any) {
		es = append(es, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if !nameRE.MatchString(c.Node) {
		bad("node", "%q is not a node name (1-64 letters, digits, '-' or '_')", c.Node)
	}
	switch {
	case c.Embedded == nil && c.NATS == nil:
		bad("embedded", "set either embedded (a NATS server in this process) or nats.urls (an existing cluster)")
	case c.Embedded != nil && c.NATS != nil:
		bad("nats", "set only one of embedded and nats: an embedded server and an external cluster exclude each other")
	}
	if e := c.Embedded; e != nil {
		es = append(es, e.validate()...)
	}
	if n := c.NATS; n != nil {
		es = append(es, n.validate()...)
	}
	if s := c.Servers(); s == 0 {
		// No servers configured: reported above.
	} else if c.Replicas < 1 || c.Replicas > 5 {
		bad("replicas", "%d is out of range: 1 to 5 (JetStream's limit)", c.Replicas)
	} else if c.Replicas > s {
		bad("replicas", "%d replicas need at least %d servers, the cluster has %d", c.Replicas, c.Replicas, s)
	}
	durations := []struct {
		key string
		d   time.Duration
	}{{"max_lag", c.MaxLag}, {"heartbeat", c.Heartbeat}, {"ack_timeout", c.AckTimeout}, {"start_wait", c.StartWait}}
	for _, d := range durations {
		if d.d <= 0 {
			bad(d.key, "%v must be positive", d.d)
		}
	}
	if c.Heartbeat > 0 && c.MaxLag > 0 && c.Heartbeat > c.MaxLag/2 {
		bad("heartbeat", "%v is more than half of max_lag %v: an idle node would look stale", c.Heartbeat, c.MaxLag)
	}
	if c.WorkAckWait < time.Second {
		bad("work_ack_wait", "%v is less than 1s: items under way would be handed to another node", c.WorkAckWait)
	}
	if c.Servers() > 0 && (c.Nodes < 1 || c.Nodes > 64) { // no servers: reported above
		bad("nodes", "%d is out of range: 1 to 64 optgate nodes", c.Nodes)
	}
	if c.SharedTTL < 48*time.Hour {
		bad("shared_ttl", "%v is less than 48h: a WhatsApp window could outlive its shared record", c.SharedTTL)
	}
	if c.MaxPending < 1 || c.MaxPending > 65536 {
		bad("max_pending", "%d is out of range: 1 to 65536", c.MaxPending)
	}
	if c.Shards < 1 || c.Shards > 65536 {
		bad("shards", "%d is out of range: 1 to 65536", c.Shards)
	}
	if !nameRE.MatchString(c.Stream) {
		bad("stream", "%q is not a stream name (letters, digits, '-' or '_')", c.Stream)
	}
	return errors.Join(es...)
}

func (e *EmbeddedConfig) validate() []error {
	var es []error
	bad := func(key, format string, args ...any) {
		es = append(es, &ConfigError{Key: "embedded." + key, Msg: fmt.Sprintf(format, args...)})
	}
	if err := checkAddr(e.Listen); err != nil {
		bad("listen", "%v", err)
	}
	if e.ClusterListen == "" {
		bad("cluster_listen", "required: the address the peers' routes connect to")
	} else if err := checkAddr(e.ClusterListen); err != nil {
		bad("cluster_listen", "%v", err)
	} else if e.ClusterListen == e.Listen {
		bad("cluster_listen", "%q is also the client listen address", e.ClusterListen)
	}
	if !nameRE.MatchString(e.ClusterName) {
		bad("cluster_name", "%q is not a cluster name (letters, digits, '-' or '_')", e.ClusterName)
	}
	seen := map[string]int{}
	for i, r := range e.Routes {
		hp := hostPort(r)
		if hp == "" || checkAddr(hp) != nil {
			bad(fmt.Sprintf("routes[%d]", i), "%q is not a route (host:port or nats-route://host:port)", r)
			continue
		}
		if _, p, _ := net.SplitHostPort(hp); p == "0" {
			bad(fmt.Sprintf("routes[%d]", i), "%q has port 0: a peer's route needs its real port", r)
		}
		if j, dup := seen[hp]; dup {
			bad(fmt.Sprintf("routes[%d]", i), "%q repeats routes[%d]", r, j)
		}
		seen[hp] = i
	}
	if e.StoreDir == "" {
		bad("store_dir", "required when the node has no data directory")
	}
	es = append(es, e.TLS.validate("embedded.tls", true)...)
	if (e.Auth.User == "") != (e.Auth.Password == "") {
		bad("auth", "user and password go together")
	}
	return es
}

func (n *NATSConfig) validate() []error {
	var es []error
	if len(n.URLs) == 0 {
		es = append(es, &ConfigError{Key: "nats.urls", Msg: "at least one URL (nats://host:port or tls://host:port)"})
	}
	for i, s := range n.URLs {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls") {
			es = append(es, &ConfigError{Key: fmt.Sprintf("nats.urls[%d]", i), Msg: fmt.Sprintf("%q is not a NATS URL (nats://host:port or tls://host:port)", s)})
		}
	}
	if n.Credentials != "" {
		if err := readable(n.Credentials); err != nil {
			es = append(es, &ConfigError{Key: "nats.credentials", Msg: err.Error()})
		}
	}
	if n.Servers < 1 {
		es = append(es, &ConfigError{Key: "nats.servers", Msg: fmt.Sprintf("%d: at least 1", n.Servers)})
	}
	return append(es, n.TLS.validate("nats.tls", false)...)
}

// validate checks the files; a server side needs a cert and key together,
// a client may name only a CA.
func (t TLSConfig) validate(key string, server bool) []error {
	var es []error
	if (t.Cert == "") != (t.Key == "") {
		es = append(es, &ConfigError{Key: key, Msg: "cert and key go together"})
	}
	if server && t.CA != "" && t.Cert == "" {
		es = append(es, &ConfigError{Key: key + ".ca", Msg: "a CA without cert and key: set all three"})
	}
	for _, f := range []struct{ k, v string }{{"cert", t.Cert}, {"key", t.Key}, {"ca", t.CA}} {
		if f.v == "" {
			continue
		}
		if err := readable(f.v); err != nil {
			es = append(es, &ConfigError{Key: key + "." + f.k, Msg: err.Error()})
		}
	}
	return es
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %q: %v", path, errors.Unwrap(err))
	}
	return f.Close()
}

func checkAddr(s string) error {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has a bad port", s)
	}
	if strings.ContainsAny(h, " /") {
		return fmt.Errorf("%q has a bad host", s)
	}
	return nil
}
