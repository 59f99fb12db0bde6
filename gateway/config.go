package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
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

// ConfigError is one problem in a configuration, with its place.
type ConfigError struct {
	File string
	Line int
	Path string
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ConfigErrors is every problem found in a configuration.
type ConfigErrors []*ConfigError

func (es ConfigErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
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

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func yamlErrors(file string, err error) ConfigErrors {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var out ConfigErrors
	for _, m := range msgs {
		e := &ConfigError{File: file, Msg: m}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			e.Msg = sm[2]
		}
		out = append(out, e)
	}
	return out
}

// collectLines records the line of every mapping key and sequence item.
func collectLines(n *yaml.Node, path string, out map[string]int) {
	var keys []yamlKey
	indexKeys(n, path, &keys)
	for _, k := range keys {
		out[k.path] = k.keyLine
	}
}

func (c *Config) errAt(path, format string, args ...any) *ConfigError {
	line := 0
	for p := path; p != ""; {
		if l, ok := c.lines[p]; ok {
			line = l
			break
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return &ConfigError{File: c.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) applyDefaults() {
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Store.Dir == "" {
		c.Store.Dir = "./data"
	}
	if c.Store.LockWait == 0 {
		c.Store.LockWait = 10 * time.Second
	}
	if c.Store.ProbeInterval == 0 {
		c.Store.ProbeInterval = time.Second
	}
	if c.Store.MinFreeBytes == 0 {
		c.Store.MinFreeBytes = 256 << 20
	}
	if c.Store.SlowFsync == 0 {
		c.Store.SlowFsync = 5 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.SMPP.Listen == "" {
		c.SMPP.Listen = "127.0.0.1:2775"
	}
	if c.SMPP.MaxBindsPerAccount == 0 {
		c.SMPP.MaxBindsPerAccount = 8
	}
	if c.SMPP.MaxConnections == 0 {
		c.SMPP.MaxConnections = 4096
	}
	if c.SMPP.EnquireLink == 0 {
		c.SMPP.EnquireLink = 30 * time.Second
	}
	c.SMPP.applyGuardDefaults()
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = "127.0.0.1:8080"
	}
	if c.HTTP.MaxBodyBytes == 0 {
		c.HTTP.MaxBodyBytes = 1 << 20
	}
	if c.HTTP.MaxImportBytes == 0 {
		c.HTTP.MaxImportBytes = 256 << 20
	}
	if c.HTTP.MaxImports == 0 {
		c.HTTP.MaxImports = 4
	}
	if c.HTTP.MaxImportsPerTenant == 0 {
		c.HTTP.MaxImportsPerTenant = 1
	}
	if c.HTTP.MaxConnections == 0 {
		c.HTTP.MaxConnections = 16384
	}
	if c.HTTP.MaxConnsPerIP == 0 {
		c.HTTP.MaxConnsPerIP = 256
	}
	if c.HTTP.ReadTimeout == 0 {
		c.HTTP.ReadTimeout = 10 * time.Second
	}
	if c.HTTP.AuthFailures == 0 {
		c.HTTP.AuthFailures = 10
	}
	if c.HTTP.AuthLockout == 0 {
		c.HTTP.AuthLockout = time.Second
	}
	if c.Simulator.Listen == "" {
		c.Simulator.Listen = "127.0.0.1:2776"
	}
	if c.WhatsApp.Version == "" {
		c.WhatsApp.Version = "v21.0"
	}
	for i := range c.Tenants {
		t := &c.Tenants[i]
		if t.DefaultLang == "" {
			t.DefaultLang = "en"
		}
		if t.DefaultRegion == "" {
			t.DefaultRegion = "US"
		}
		if t.Scope == "" {
			t.Scope = "tenant"
		}
		if t.Attestation == "" {
			t.Attestation = "implicit"
		}
		if t.KeywordMode == "" {
			t.KeywordMode = "exact"
		}
		if t.MaxLength == 0 {
			t.MaxLength = 480
		}
	}
	for i := range c.Accounts {
		a := &c.Accounts[i]
		if a.Ack == "" {
			a.Ack = "relay"
		}
		if a.Reject == "" {
			a.Reject = "status"
		}
		if a.Channel == "" {
			a.Channel = "auto"
		}
		if a.Window == 0 {
			a.Window = 256
		}
	}
	for i := range c.SMSCs {
		s := &c.SMSCs[i]
		if s.Mode == "" {
			s.Mode = "transceiver"
		}
		if s.Binds == 0 {
			s.Binds = 1
		}
		if s.Window == 0 {
			s.Window = 64
		}
		if s.Timeout == 0 {
			s.Timeout = 30 * time.Second
		}
		if s.IDBase == "" {
			s.IDBase = "same"
		}
		if s.Region == "" {
			s.Region = "US"
		}
		if s.DataCoding0 == "" {
			s.DataCoding0 = "gsm7"
		}
		if s.DataCoding1 == "" {
			s.DataCoding1 = "ia5"
		}
		if s.MORetryWindow == 0 {
			s.MORetryWindow = 10 * time.Minute
		}
	}
	if c.Queue.MaxAge == 0 {
		c.Queue.MaxAge = 24 * time.Hour
	}
	if c.Queue.MaxBackoff == 0 {
		c.Queue.MaxBackoff = time.Minute
	}
	if c.Webhooks.Timeout == 0 {
		c.Webhooks.Timeout = 5 * time.Second
	}
	if c.Webhooks.MaxAge == 0 {
		c.Webhooks.MaxAge = 24 * time.Hour
	}
	if c.Webhooks.MaxBackoff == 0 {
		c.Webhooks.MaxBackoff = 5 * time.Minute
	}
	if c.Webhooks.Workers == 0 {
		c.Webhooks.Workers = 4
	}
	if c.Receipts.TTL == 0 {
		c.Receipts.TTL = 72 * time.Hour
	}
	if c.Receipts.Grace == 0 {
		c.Receipts.Grace = 10 * time.Second
	}
}

func validAddr(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	_, err = strconv.ParseUint(port, 10, 16)
	return err == nil
}

func oneOf(v string, opts ...string) bool {
	for _, o := range opts {
		if v == o {
			return true
		}
	}
	return false
}

func (c *Config) validate() ConfigErrors {
	var errs ConfigErrors
	add := func(path, f string, a ...any) { errs = append(errs, c.errAt(path, f, a...)) }
	if !oneOf(c.Log.Level, "debug", "info", "warn", "error") {
		add("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	if !oneOf(c.Log.Format, "text", "json") {
		add("log.format", "must be text or json, not %q", c.Log.Format)
	}
	if !validAddr(c.SMPP.Listen) {
		add("smpp.listen", "not a host:port: %q", c.SMPP.Listen)
	}
	if (c.SMPP.TLS.Cert == "") != (c.SMPP.TLS.Key == "") {
		add("smpp.tls", "cert and key go together")
	}
	if c.ShutdownTimeout < 0 {
		add("shutdown_timeout", "must not be negative")
	}
	if c.Store.ProbeInterval < 0 || c.Store.SlowFsync < 0 || c.Store.MinFreeBytes < 0 {
		add("store", "probe_interval, slow_fsync and min_free_bytes must not be negative")
	}
	if c.SMPP.MaxConnections < 0 {
		add("smpp.max_connections", "must not be negative")
	}
	c.SMPP.validateGuard(add)
	if !validAddr(c.HTTP.Listen) {
		add("http.listen", "not a host:port: %q", c.HTTP.Listen)
	}
	if c.Metrics.Listen != "" && !validAddr(c.Metrics.Listen) {
		add("metrics.listen", "not a host:port: %q", c.Metrics.Listen)
	}
	if c.Metrics.Pprof && c.Metrics.Listen == "" {
		add("metrics.pprof", "needs metrics.listen (pprof is served only on the metrics listener; http.pprof serves it on the API port behind the admin token)")
	}
	if c.HTTP.AdminToken != "" && len(c.HTTP.AdminToken) < 8 {
		add("http.admin_token", "too short (at least 8 characters)")
	}
	if (c.HTTP.TLS.Cert == "") != (c.HTTP.TLS.Key == "") {
		add("http.tls", "cert and key go together")
	}
	for i, p := range c.HTTP.TrustedProxies {
		if _, err := parseCIDR(p); err != nil {
			add(fmt.Sprintf("http.trusted_proxies[%d]", i), "not an IP address or CIDR: %q", p)
		}
	}
	if c.HTTP.MaxImports < 0 || c.HTTP.MaxImportsPerTenant < 0 || c.HTTP.MaxConnections < 0 || c.HTTP.MaxConnsPerIP < 0 ||
		c.HTTP.AuthFailures < 0 || c.HTTP.ReadTimeout < 0 || c.HTTP.AuthLockout < 0 {
		add("http", "limits and timeouts must not be negative")
	}
	if c.Simulator.Enabled && !validAddr(c.Simulator.Listen) {
		add("simulator.listen", "not a host:port: %q", c.Simulator.Listen)
	}
	tenants := map[string]bool{}
	tokens := map[string]string{}
	numbers := map[string]string{}
	if len(c.Tenants) == 0 {
		add("tenants", "at least one tenant is required")
	}
	for i, t := range c.Tenants {
		p := fmt.Sprintf("tenants[%d]", i)
		switch {
		case t.ID == "":
			add(p+".id", "required")
		case tenants[t.ID]:
			add(p+".id", "duplicate tenant %q", t.ID)
		}
		tenants[t.ID] = true
		if !oneOf(t.Scope, "sender", "tenant") {
			add(p+".scope", "must be sender or tenant, not %q", t.Scope)
		}
		if !oneOf(t.Attestation, "implicit", "attestation", "disclaimer") {
			add(p+".attestation", "must be implicit, attestation or disclaimer, not %q", t.Attestation)
		}
		if !oneOf(t.KeywordMode, "exact", "first-word", "reasonable-means") {
			add(p+".keyword_mode", "must be exact, first-word or reasonable-means, not %q", t.KeywordMode)
		}
		if t.RepeatConfirm != "" && t.RepeatConfirm != "off" {
			if d, err := time.ParseDuration(t.RepeatConfirm); err != nil || d <= 0 {
				add(p+".repeat_confirm_window", "must be a duration such as 24h, or off, not %q", t.RepeatConfirm)
			}
		}
		if len(t.DefaultRegion) != 2 || !consent.KnownRegion(t.DefaultRegion) {
			add(p+".default_region", "must be a known two-letter region code (such as US or FR), not %q", t.DefaultRegion)
		}
		for j, id := range t.SenderIDs {
			if !validSenderID(id) {
				add(fmt.Sprintf("%s.sender_ids[%d]", p, j), "must be 1–11 letters, digits, spaces or . - _ & with at least one letter, not %q", id)
			}
		}
		if t.APIToken != "" {
			if other, dup := tokens[t.APIToken]; dup {
				add(p+".api_token", "same token as tenant %q", other)
			}
			tokens[t.APIToken] = t.ID
			if len(t.APIToken) < minAPIToken {
				add(p+".api_token", "too short (at least %d characters)", minAPIToken)
			}
			if t.APIToken == c.HTTP.AdminToken {
				add(p+".api_token", "same token as http.admin_token (a tenant token must not act as the admin)")
			}
		}
		for j, n := range t.Numbers {
			np := fmt.Sprintf("%s.numbers[%d]", p, j)
			if !consent.ValidE164(n) {
				add(np, "not an E.164 number: %q", n)
			} else if other, dup := numbers[n]; dup {
				add(np, "%s already belongs to tenant %q", n, other)
			}
			numbers[n] = t.ID
		}
		if t.Webhook.URL != "" && !strings.HasPrefix(t.Webhook.URL, "http://") && !strings.HasPrefix(t.Webhook.URL, "https://") {
			add(p+".webhook.url", "must be an http(s) URL: %q", t.Webhook.URL)
		}
		if t.Webhook.URL != "" && t.Webhook.Secret == "" {
			add(p+".webhook.secret", "required with a webhook url (events are signed)")
		}
		if t.MaxLength < 0 {
			add(p+".max_length", "must be positive")
		}
	}
	systems := map[string]bool{}
	for i, a := range c.Accounts {
		p := fmt.Sprintf("accounts[%d]", i)
		switch {
		case a.SystemID == "":
			add(p+".system_id", "required")
		case len(a.SystemID) > 15:
			add(p+".system_id", "longer than 15 characters (SMPP limit)")
		case systems[a.SystemID]:
			add(p+".system_id", "duplicate account %q", a.SystemID)
		}
		systems[a.SystemID] = true
		if len(a.Password) > 8 {
			add(p+".password", "longer than 8 characters (SMPP limit)")
		}
		if a.Password == "" {
			add(p+".password", "required")
		}
		if !tenants[a.Tenant] {
			add(p+".tenant", "unknown tenant %q", a.Tenant)
		}
		if !oneOf(a.Ack, "relay", "store") {
			add(p+".ack", "must be relay or store, not %q", a.Ack)
		}
		if !oneOf(a.Reject, "status", "receipt") {
			add(p+".reject", "must be status or receipt, not %q", a.Reject)
		}
		if !oneOf(a.Channel, "auto", "sms") {
			add(p+".channel", "must be auto or sms, not %q", a.Channel)
		}
		if a.Window < 0 || a.Rate < 0 {
			add(p, "window and rate must not be negative")
		}
	}
	smscs := map[string]bool{}
	for i, s := range c.SMSCs {
		p := fmt.Sprintf("smscs[%d]", i)
		switch {
		case s.Name == "":
			add(p+".name", "required")
		case smscs[s.Name]:
			add(p+".name", "duplicate SMSC %q", s.Name)
		}
		smscs[s.Name] = true
		if !validAddr(s.Address) {
			add(p+".address", "not a host:port: %q", s.Address)
		}
		if _, err := smpp.ParseBindMode(s.Mode); err != nil {
			add(p+".mode", "%v", err)
		}
		if len(s.SystemID) > 15 || s.SystemID == "" {
			add(p+".system_id", "required, at most 15 characters")
		}
		if len(s.Password) > 8 {
			add(p+".password", "longer than 8 characters (SMPP limit)")
		}
		if s.Binds < 1 || s.Binds > 64 {
			add(p+".binds", "must be 1–64")
		}
		if s.Window < 1 || s.Window > 4096 {
			add(p+".window", "must be 1–4096")
		}
		if s.Rate < 0 {
			add(p+".rate", "must not be negative")
		}
		if !oneOf(s.IDBase, "same", "resp_hex_dlr_dec", "resp_dec_dlr_hex") {
			add(p+".id_base", "must be same, resp_hex_dlr_dec or resp_dec_dlr_hex")
		}
		if !consent.KnownRegion(s.Region) {
			add(p+".region", "must be a known two-letter region code (such as US or FR), not %q", s.Region)
		}
		for j, v := range []string{s.DataCoding0, s.DataCoding1} {
			if _, err := coding.ParseCharset(v); err != nil {
				add(fmt.Sprintf("%s.data_coding_%d", p, j), "must be gsm7, ia5 or latin1, not %q", v)
			}
		}
		if s.MORetryWindow < 0 || s.MORetryWindow > 24*time.Hour {
			add(p+".mo_retry_window", "must be between 0 and 24h")
		}
	}
	if len(c.SMSCs) == 0 && !c.Simulator.Enabled {
		add("smscs", "at least one SMSC (or simulator.enabled) is required")
	}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r.Prefix == "" || r.Prefix[0] != '+' {
			add(p+".prefix", "must start with + (E.164), not %q", r.Prefix)
		}
		if len(r.SMSCs) == 0 {
			add(p+".smscs", "at least one SMSC")
		}
		for j, n := range r.SMSCs {
			if !smscs[n] {
				add(fmt.Sprintf("%s.smscs[%d]", p, j), "unknown SMSC %q", n)
			}
		}
	}
	if len(c.SMSCs) > 0 && len(c.Routes) == 0 {
		add("routes", "at least one route is required")
	}
	for i, t := range c.Tenants {
		for name, cat := range t.WhatsAppTemplates {
			if cat != "marketing" && cat != "utility" && cat != "authentication" {
				add(fmt.Sprintf("tenants[%d].whatsapp_templates.%s", i, name), "category must be marketing, utility or authentication, not %q", cat)
			}
		}
	}
	for i, n := range c.WhatsApp.Numbers {
		p := fmt.Sprintf("whatsapp.numbers[%d]", i)
		if n.PhoneNumberID == "" {
			add(p+".phone_number_id", "required")
		}
		if !tenants[n.Tenant] {
			add(p+".tenant", "unknown tenant %q", n.Tenant)
		}
		if !consent.ValidE164(n.Number) {
			add(p+".number", "not an E.164 number: %q", n.Number)
		}
	}
	if d := c.WhatsApp.DedupTTL; d != 0 && (d < 7*24*time.Hour || d > 90*24*time.Hour) {
		add("whatsapp.dedup_ttl", "must be between 168h (Meta retries for 7 days) and 2160h, not %s", d)
	}
	if len(c.WhatsApp.Numbers) > 0 && !c.WhatsAppSimulator.Enabled && (c.WhatsApp.Token == "" || c.WhatsApp.AppSecret == "") {
		add("whatsapp", "token and app_secret are required for WhatsApp numbers")
	}
	errs = append(errs, c.checkExposure()...)
	return errs
}

// minAPIToken is the shortest tenant api_token accepted.
const minAPIToken = 16

// devSecrets are the secrets of the default configuration and of the
// built-in mocks: anyone who read the repository knows them.
var devSecrets = map[string]bool{
	"dev-admin-token": true, "acme-dev-token": true, "acme-dev-api-token": true, "acmepw": true,
	"acme-webhook-secret": true, "simpw": true, mockAppSecret: true, mockVerifyToken: true,
}

// loopback reports whether a listen address accepts connections from this
// machine only: a loopback IP or localhost (an empty host or 0.0.0.0 is
// every interface).
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkExposure refuses a listener that is not loopback while a dev
// secret, the SMSC simulator (and /v1/simulator/mo) or the WhatsApp mock
// is on, unless allow_insecure_defaults: anyone reaching the port could
// use them (forge signed WhatsApp STOP/START, fake handset MOs, act as a
// tenant).
func (c *Config) checkExposure() ConfigErrors {
	if c.AllowInsecureDefaults {
		return nil
	}
	var public []string
	for _, l := range []struct {
		name, addr string
		on         bool
	}{{"http.listen", c.HTTP.Listen, true}, {"smpp.listen", c.SMPP.Listen, true}, {"simulator.listen", c.Simulator.Listen, c.Simulator.Enabled},
		{"whatsapp_simulator.listen", c.WhatsAppSimulator.Listen, c.WhatsAppSimulator.Enabled && c.WhatsAppSimulator.Listen != ""}} {
		if l.on && validAddr(l.addr) && !loopback(l.addr) { // a bad address has its own error
			public = append(public, l.name+" "+l.addr)
		}
	}
	if len(public) == 0 {
		return nil
	}
	var errs ConfigErrors
	why := fmt.Sprintf("not allowed with a listener that is not loopback (%s) unless allow_insecure_defaults: true", strings.Join(public, ", "))
	add := func(path, what string) { errs = append(errs, c.errAt(path, "%s: %s", what, why)) }
	if devSecrets[c.HTTP.AdminToken] {
		add("http.admin_token", "a well-known dev token")
	}
	for i, t := range c.Tenants {
		if devSecrets[t.APIToken] {
			add(fmt.Sprintf("tenants[%d].api_token", i), "a well-known dev token")
		}
		if devSecrets[t.Webhook.Secret] {
			add(fmt.Sprintf("tenants[%d].webhook.secret", i), "a well-known dev secret")
		}
	}
	for i, a := range c.Accounts {
		if devSecrets[a.Password] {
			add(fmt.Sprintf("accounts[%d].password", i), "a well-known dev password")
		}
	}
	if devSecrets[c.WhatsApp.AppSecret] {
		add("whatsapp.app_secret", "the WhatsApp mock's well-known app secret")
	}
	if devSecrets[c.WhatsApp.VerifyToken] {
		add("whatsapp.verify_token", "the WhatsApp mock's well-known verify token")
	}
	if c.Simulator.Enabled {
		add("simulator.enabled", "the SMSC simulator and POST /v1/simulator/mo (anyone could fake a handset's STOP or START)")
	}
	if c.WhatsAppSimulator.Enabled {
		add("whatsapp_simulator.enabled", "the WhatsApp mock (its app secret is public: anyone could sign a webhook)")
	}
	return errs
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
	return b.String()
}
