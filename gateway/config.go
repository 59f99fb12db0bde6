package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/optgate/optgate/cluster"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the gateway's configuration, as read from YAML by cmd/optgate.
// Zero values take the defaults documented on each field.
type Config struct {
	Log               LogConfig       `yaml:"log"`
	Store             StoreConfig     `yaml:"store"`
	SMPP              SMPPConfig      `yaml:"smpp"`
	HTTP              HTTPConfig      `yaml:"http"`
	Simulator         SimulatorConfig `yaml:"simulator"`
	WhatsAppSimulator WASimConfig     `yaml:"whatsapp_simulator"`
	WhatsApp          WhatsAppConfig  `yaml:"whatsapp"`
	Tenants           []TenantConfig  `yaml:"tenants"`
	Accounts          []AccountConfig `yaml:"accounts"`
	SMSCs             []SMSCConfig    `yaml:"smscs"`
	Routes            []RouteConfig   `yaml:"routes"`
	Queue             QueueConfig     `yaml:"queue"`
	Webhooks          WebhookDefaults `yaml:"webhooks"`
	Receipts          ReceiptsConfig  `yaml:"receipts"`
	// Cluster, when set, makes this process one node of several sharing
	// one replicated consent log (cluster.go); nil: a single node, no NATS.
	Cluster *cluster.Config `yaml:"cluster"`
	// AllowInsecureDefaults lets a listener that is not loopback run with
	// a well-known dev secret, the SMSC simulator (and its
	// /v1/simulator/mo route) or the WhatsApp mock. Default false: such a
	// configuration is refused (see checkExposure).
	AllowInsecureDefaults bool          `yaml:"allow_insecure_defaults"`
	Metrics               MetricsConfig `yaml:"metrics"`
	// ShutdownTimeout bounds a graceful stop (default 30s): after it,
	// serve gives up on draining and on closing the stores and exits 1
	// (see Gateway.Shutdown).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	// lines maps a field path ("tenants[0].id") to its line in the file,
	// for errors. Filled by ParseConfig.
	lines map[string]int
	file  string
}

// LogConfig configures log/slog.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
	// File, when set, receives the logs (appended) instead of stderr;
	// serve reopens it on SIGHUP, so logrotate can move it away.
	File string `yaml:"file"`
}

// MetricsConfig is the optional separate listener for /metrics and
// /debug/pprof (metrics_listener.go).
type MetricsConfig struct {
	// Listen, when set, serves /metrics (and /debug/pprof with Pprof) on
	// this address, without a token, and takes /metrics off the API port.
	Listen string `yaml:"listen"`
	Pprof  bool   `yaml:"pprof"` // serve /debug/pprof on Listen; default off
}

// StoreConfig places the embedded Badger stores.
type StoreConfig struct {
	Dir string `yaml:"dir"` // default ./data; relative to the config file's folder
	// LockWait is how long serve waits for a data directory another
	// process holds (an instance still exiting) before failing. Default 10s.
	LockWait time.Duration `yaml:"lock_wait"`
	// LowMemory gives the consent store small memtables (8 MiB instead of
	// 64 MiB), so its preallocated write-ahead log takes 16 MiB of disk.
	LowMemory bool `yaml:"low_memory"`
	// ProbeInterval is how often the store health probe runs (default 1s);
	// MinFreeBytes the free space below which the stores count as full
	// (default 256 MiB: room for the next write-ahead logs and a memtable
	// flush); SlowFsync the probe fsync time above which they count as
	// unhealthy (default 5s). See diskfault.go.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	MinFreeBytes  int64         `yaml:"min_free_bytes"`
	SlowFsync     time.Duration `yaml:"slow_fsync"`
}

// SMPPConfig is the SMPP server upstream platforms bind to.
type SMPPConfig struct {
	Listen             string        `yaml:"listen"`                // default 127.0.0.1:2775
	MaxBindsPerAccount int           `yaml:"max_binds_per_account"` // default 8
	MaxFailedBinds     int           `yaml:"max_failed_binds"`      // per remote IP a minute, default 5
	MaxConnections     int           `yaml:"max_connections"`       // open at once, bound or not; default 4096
	EnquireLink        time.Duration `yaml:"enquire_link"`          // default 30s
	MaxPDUSize         int           `yaml:"max_pdu_size"`          // default 4096
	TLS                TLSConfig     `yaml:"tls"`
	// Bind protection (SECURITY.md, "SMPP binds"). MaxConnectionsPerIP
	// caps one remote IP's connections, bound or not, loopback included
	// (default 64; negative: no cap). BindTimeout closes a connection not
	// bound in time (default 10s). AccountLockAfter failed binds in a row,
	// from any address, lock a system_id (default 10; negative: never)
	// for AccountLockMin (default 1m), doubling per further lock up to
	// AccountLockMax (default 1h). DistinctBindErrors answers an unknown
	// system_id ESME_RINVSYSID and a wrong password ESME_RINVPASWD, as
	// the spec says; by default both get ESME_RBINDFAIL, so a guesser
	// cannot tell which system_ids exist.
	MaxConnectionsPerIP int           `yaml:"max_connections_per_ip"`
	BindTimeout         time.Duration `yaml:"bind_timeout"`
	AccountLockAfter    int           `yaml:"account_lock_after"`
	AccountLockMin      time.Duration `yaml:"account_lock_min"`
	AccountLockMax      time.Duration `yaml:"account_lock_max"`
	DistinctBindErrors  bool          `yaml:"distinct_bind_errors"`
}

// TLSConfig names a certificate and key (PEM files).
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"` // client side: CA to verify the SMSC (default system roots)
	// InsecureSkipVerify is for lab SMSCs only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	Enabled            bool `yaml:"enabled"` // client side: use TLS
}

// HTTPConfig is the HTTP API and webhook server.
type HTTPConfig struct {
	Listen       string `yaml:"listen"`         // default 127.0.0.1:8080
	AdminToken   string `yaml:"admin_token"`    // operators' bearer token
	MaxBodyBytes int    `yaml:"max_body_bytes"` // default 1 MiB; larger bodies get 413 body_too_large
	// MaxImportBytes bounds a POST /v1/consent/import body, which is
	// streamed into the store rather than held in memory. Default 256 MiB.
	MaxImportBytes int64 `yaml:"max_import_bytes"`
	Pprof          bool  `yaml:"pprof"` // expose /debug/pprof on the admin token
	// MaxImports is how many imports run at once, all tenants together
	// (default 4); MaxImportsPerTenant how many per tenant (default 1).
	// An import past either limit gets 429 import_busy.
	MaxImports          int `yaml:"max_imports"`
	MaxImportsPerTenant int `yaml:"max_imports_per_tenant"`
	// MaxConnections is how many connections are open at once (default
	// 16384); MaxConnsPerIP how many of them one address may hold
	// (default 256). Past the per-address cap a new connection gets 429
	// and is closed; the others' connections are not affected.
	MaxConnections int `yaml:"max_connections"`
	MaxConnsPerIP  int `yaml:"max_conns_per_ip"`
	// ReadTimeout bounds the wait for a new connection's first request and
	// the reading of a request's headers and body (default 10s; an import
	// extends it for its body).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// AuthFailures is how many failed authentications (401) an address
	// may make before it is locked out (default 10); each further failure
	// doubles the lock, from AuthLockout (default 1s) up to 15 minutes.
	// A locked address gets 429 with Retry-After, even with a right token.
	AuthFailures int           `yaml:"auth_failures"`
	AuthLockout  time.Duration `yaml:"auth_lockout"`
	// TLS serves the API over TLS 1.2 or later when cert and key are set.
	TLS TLSConfig `yaml:"tls"`
	// TrustedProxies are the load balancers (IPs or CIDRs) in front of the
	// API: for a request from one of them, the client's address (for the
	// authentication lockout and the logs) is the last X-Forwarded-For
	// entry. Connection caps count TCP peers: raise max_conns_per_ip for
	// a proxy. Default none (X-Forwarded-For is ignored).
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// SimulatorConfig runs the built-in SMSC simulator in-process.
type SimulatorConfig struct {
	Enabled  bool          `yaml:"enabled"`
	Listen   string        `yaml:"listen"` // default 127.0.0.1:2776
	SystemID string        `yaml:"system_id"`
	Password string        `yaml:"password"`
	Receipts bool          `yaml:"receipts"`
	Latency  time.Duration `yaml:"latency"`
}

// WASimConfig runs the built-in WhatsApp Cloud API mock in-process.
type WASimConfig struct {
	Enabled bool   `yaml:"enabled"`
	Listen  string `yaml:"listen"` // default 127.0.0.1:0
}

// WhatsAppConfig configures the WhatsApp Cloud API channel.
type WhatsAppConfig struct {
	GraphURL    string           `yaml:"graph_url"` // default: the built-in mock when whatsapp_simulator is enabled
	Version     string           `yaml:"version"`   // default v21.0
	Token       string           `yaml:"token"`
	AppSecret   string           `yaml:"app_secret"`
	VerifyToken string           `yaml:"verify_token"`
	Numbers     []WANumberConfig `yaml:"numbers"`
	// Timeout bounds one Graph API request (the client retries after it). Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// DedupTTL is how long webhook events are remembered to drop Meta's
	// redeliveries: at least 7 days (Meta retries for up to 7 days).
	// Default 8 days (192h).
	DedupTTL time.Duration `yaml:"dedup_ttl"`
}

// WANumberConfig is one WhatsApp business phone number.
type WANumberConfig struct {
	PhoneNumberID string  `yaml:"phone_number_id"`
	Number        string  `yaml:"number"` // E.164 display number
	Tenant        string  `yaml:"tenant"`
	Rate          float64 `yaml:"rate"` // messages a second, default 80
}

// TenantConfig is one customer of the gateway.
type TenantConfig struct {
	ID            string                    `yaml:"id"`
	Brand         string                    `yaml:"brand"`
	HelpContact   string                    `yaml:"help_contact"`
	DefaultLang   string                    `yaml:"default_lang"`   // default en
	DefaultRegion string                    `yaml:"default_region"` // for national numbers, default US
	Scope         string                    `yaml:"scope"`          // sender | tenant (default tenant)
	CrossChannel  bool                      `yaml:"cross_channel"`  // an opt-out applies to every channel
	Attestation   string                    `yaml:"attestation"`    // implicit (default) | attestation | disclaimer
	MaxPrompts    int                       `yaml:"max_prompts"`
	HeldTTL       time.Duration             `yaml:"held_ttl"`
	KeywordMode   string                    `yaml:"keyword_mode"` // exact (default) | first-word | reasonable-means
	KeywordsAdd   []KeywordConfig           `yaml:"keywords_add"`
	KeywordsDel   []string                  `yaml:"keywords_remove"`
	KeywordsOn    []string                  `yaml:"keywords_enable"`
	Templates     map[string]TemplateConfig `yaml:"templates"`     // by language
	MaxLength     int                       `yaml:"max_length"`    // default 480
	ArchiveAfter  time.Duration             `yaml:"archive_after"` // default 168h
	// RepeatConfirm is how long a repeated STOP (or START) gets no second
	// confirmation: default 24h; "off" confirms every repeat.
	RepeatConfirm string        `yaml:"repeat_confirm_window"`
	APIToken      string        `yaml:"api_token"`
	Numbers       []string      `yaml:"numbers"` // our SMS numbers owned by the tenant (E.164)
	Webhook       WebhookConfig `yaml:"webhook"`
	// SenderIDs are the alphanumeric sender ids (TON 5, at most 11
	// characters) the tenant may send from besides its numbers. A tenant
	// that lists some may use no other alphanumeric id; a tenant with no
	// numbers and no sender_ids cannot send SMS at all.
	SenderIDs []string `yaml:"sender_ids"`
	// WhatsAppTemplates are the tenant's approved WhatsApp templates by name, with their
	// category: marketing, utility or authentication. A marketing template is screened as
	// marketing whatever the request says; a template not listed takes the request's category.
	WhatsAppTemplates map[string]string `yaml:"whatsapp_templates"`
}

// KeywordConfig adds a keyword for a tenant.
type KeywordConfig struct {
	Word  string `yaml:"word"`
	Class string `yaml:"class"` // opt_out, opt_out_all, opt_in, help, yes, marketing_opt_out
	Lang  string `yaml:"lang"`
}

// TemplateConfig overrides reply texts for one language.
type TemplateConfig struct {
	OptOut             string `yaml:"opt_out"`
	MarketingOptOut    string `yaml:"marketing_opt_out"`
	OptIn              string `yaml:"opt_in"`
	Help               string `yaml:"help"`
	AttestationPrompt  string `yaml:"attestation_prompt"`
	Reprompt           string `yaml:"reprompt"`
	AttestationConfirm string `yaml:"attestation_confirm"`
	Disclaimer         string `yaml:"disclaimer"`
}

// WebhookConfig is where a tenant's events are POSTed.
type WebhookConfig struct {
	URL    string `yaml:"url"`
	Secret string `yaml:"secret"` // HMAC-SHA256 key for the X-Optgate-Signature header
}

// WebhookDefaults tunes webhook delivery.
type WebhookDefaults struct {
	Timeout    time.Duration `yaml:"timeout"`     // per attempt, default 5s
	MaxAge     time.Duration `yaml:"max_age"`     // give up after, default 24h
	MaxBackoff time.Duration `yaml:"max_backoff"` // default 5m
	Workers    int           `yaml:"workers"`     // default 4
}

// AccountConfig is an upstream ESME account binding to our SMPP server.
type AccountConfig struct {
	SystemID string `yaml:"system_id"`
	Password string `yaml:"password"`
	Tenant   string `yaml:"tenant"`
	Ack      string `yaml:"ack"`    // relay (default) | store
	Reject   string `yaml:"reject"` // status (default) | receipt
	// Channel: auto (default) sends a submit over WhatsApp when the tenant
	// has WhatsApp and the recipient last wrote to it there; sms keeps
	// every submit of the account on SMS.
	Channel  string  `yaml:"channel"`
	Window   int     `yaml:"window"` // requests in flight, default 256
	Rate     float64 `yaml:"rate"`   // messages a second, 0 unlimited
	MaxBinds int     `yaml:"max_binds"`
	// Status codes for blocked submits (default 0x401..0x404).
	Statuses StatusOverrides `yaml:"statuses"`
	// Marketing marks every message of the account as marketing.
	Marketing bool `yaml:"marketing"`
	// Bulk appends the opt-out footer to every message of the account.
	Bulk bool `yaml:"bulk"`
}

// StatusOverrides replaces the command_status used for a block reason.
type StatusOverrides struct {
	OptedOut        uint32 `yaml:"opted_out"`
	MarketingOptOut uint32 `yaml:"marketing_opt_out"`
	NoConsent       uint32 `yaml:"no_consent"`
	WhatsAppWindow  uint32 `yaml:"whatsapp_window_closed"`
}

// SMSCConfig is an operator SMSC we bind to.
type SMSCConfig struct {
	Name       string        `yaml:"name"`
	Address    string        `yaml:"address"`
	SystemID   string        `yaml:"system_id"`
	Password   string        `yaml:"password"`
	SystemType string        `yaml:"system_type"`
	Mode       string        `yaml:"mode"`   // transceiver (default) | transmitter | receiver
	Binds      int           `yaml:"binds"`  // default 1
	Window     int           `yaml:"window"` // default 64
	Rate       float64       `yaml:"rate"`   // per bind, messages a second
	Timeout    time.Duration `yaml:"timeout"`
	SourceTON  *uint8        `yaml:"source_ton"`
	SourceNPI  *uint8        `yaml:"source_npi"`
	IDBase     string        `yaml:"id_base"` // same (default) | resp_hex_dlr_dec | resp_dec_dlr_hex
	TLS        TLSConfig     `yaml:"tls"`
	// Region is where this SMSC's national address forms (TON 2 and 4, and
	// TON 0 digits that are not a valid international number) are read, for
	// the sources and destinations of its MOs: a region code such as US or
	// FR. Default US.
	Region string `yaml:"region"`

	// DataCoding0 and DataCoding1 say what this SMSC means by data_coding 0
	// and 1, like Kannel's alt-charset: gsm7, ia5 or latin1 (defaults gsm7
	// and ia5). MOs are decoded with them, and an MT we encode for
	// data_coding 0 is written in DataCoding0's alphabet.
	DataCoding0 string `yaml:"data_coding_0"`
	DataCoding1 string `yaml:"data_coding_1"`
	// MORetryWindow is how long an MO whose answer may not have reached
	// this SMSC (answered with an error, or its connection closed first) is
	// remembered, so that the SMSC's retry of it is not taken for a new
	// message (default 10m, at most 24h).
	MORetryWindow time.Duration `yaml:"mo_retry_window"`
}

// RouteConfig sends destinations with a prefix to SMSCs, in failover order.
type RouteConfig struct {
	Prefix string   `yaml:"prefix"`
	SMSCs  []string `yaml:"smscs"`
}

// QueueConfig tunes the durable MT queue used by ack: store.
type QueueConfig struct {
	MaxAge     time.Duration `yaml:"max_age"`     // give up and fail after, default 24h
	MaxBackoff time.Duration `yaml:"max_backoff"` // default 1m
}

// ReceiptsConfig tunes delivery receipt correlation.
type ReceiptsConfig struct {
	TTL   time.Duration `yaml:"ttl"`   // keep mappings this long, default 72h
	Grace time.Duration `yaml:"grace"` // park receipts that beat their submit_sm_resp, default 10s
}

// splitComment splits a YAML line before a comment: a # at the start of
// the line or after a blank, outside quotes.
func splitComment(line []byte) (code, comment []byte) {
	var quote byte
	for i, c := range line {
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case (c == '"' || c == '\'') && (i == 0 || bytes.IndexByte([]byte(" \t:[{,-"), line[i-1]) >= 0):
			quote = c // a quoted scalar starts (an apostrophe inside a word does not)
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i:i], line[i:]
		}
	}
	return line, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// ParseConfig parses YAML (named file in errors), expanding ${NAME} and
// ${NAME:-default} from env, applies defaults, resolves relative paths
// against file's folder and validates. It is the one validation path:
// check-config and serve both call it, and it runs every check New would
// meet (the consent engine's included) short of opening stores and
// listeners. It reports every problem at once, each with file:line and the
// YAML key path where it can.
func ParseConfig(data []byte, file string, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	var errs ConfigErrors
	// Expand line by line so line numbers stay true.
	lines := bytes.Split(data, []byte("\n"))
	for i, full := range lines {
		ln, comment := splitComment(full) // ${…} in a comment is left alone
		lines[i] = append(envRef.ReplaceAllFunc(ln, func(m []byte) []byte {
			sm := envRef.FindSubmatch(m)
			if v, ok := env(string(sm[1])); ok {
				return []byte(v)
			}
			if sm[2] != nil {
				return sm[3]
			}
			errs = append(errs, &ConfigError{File: file, Line: i + 1, Msg: fmt.Sprintf("environment variable %s is not set", sm[1])})
			return nil
		}), comment...)
	}
	data = bytes.Join(lines, []byte("\n"))
	cfg := &Config{file: file, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, append(errs, yamlErrors(file, err)...)
	}
	collectLines(&root, "", cfg.lines)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		errs = append(errs, explainDecodeErrors(&root, yamlErrors(file, err))...)
	}
	cfg.applyDefaults()
	cfg.resolvePaths(filepath.Dir(file))
	errs = append(errs, cfg.validate()...)
	errs = append(errs, cfg.validateBuild(errs)...)
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return cfg, errs
	}
	return cfg, nil
}

// Digest is a short human summary of the configuration, for check-config.
func (c *Config) Digest() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  store: %s\n  smpp:  %s (%d accounts)\n  http:  %s\n", c.Store.Dir, c.SMPP.Listen, len(c.Accounts), c.HTTP.Listen)
	for _, t := range c.Tenants {
		fmt.Fprintf(&b, "  tenant %s: scope=%s attestation=%s keywords=%s lang=%s numbers=%d webhook=%t\n",
			t.ID, t.Scope, t.Attestation, t.KeywordMode, t.DefaultLang, len(t.Numbers), t.Webhook.URL != "")
	}
	for _, s := range c.SMSCs {
		fmt.Fprintf(&b, "  smsc %s: %s %s binds=%d window=%d\n", s.Name, s.Address, s.Mode, s.Binds, s.Window)
	}
	for _, r := range c.Routes {
		fmt.Fprintf(&b, "  route %s -> %s\n", r.Prefix, strings.Join(r.SMSCs, ", "))
	}
	if c.Simulator.Enabled {
		fmt.Fprintf(&b, "  simulator: %s\n", c.Simulator.Listen)
	}
	if cl := c.Cluster; cl != nil {
		mode := "nats.urls"
		if cl.Embedded != nil {
			mode = "embedded " + cl.Embedded.Listen
		}
		fmt.Fprintf(&b, "  cluster: node %s, %s, %d servers, replicas %d, max_lag %v\n", cl.Node, mode, cl.Servers(), cl.Replicas, cl.MaxLag)
	}
	return b.String()
}
