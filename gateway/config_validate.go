package gateway

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/optgate/optgate/internal/e164"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
)

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

// addFunc records one configuration problem at a path.
type addFunc = func(path, format string, args ...any)

// validate reports every problem of the configuration at once, in the
// order of its sections.
func (c *Config) validate() ConfigErrors {
	var errs ConfigErrors
	add := func(path, f string, a ...any) { errs = append(errs, c.errAt(path, f, a...)) }
	c.validateServers(add)
	tenants := c.validateTenants(add)
	c.validateAccounts(add, tenants)
	c.validateSMSCs(add)
	c.validateWhatsApp(add, tenants)
	c.validateCluster(add)
	errs = append(errs, c.checkExposure()...)
	return errs
}

// validateServers checks the log, SMPP, store, HTTP, metrics and simulator
// sections.
func (c *Config) validateServers(add addFunc) {
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
}

// validateTenants checks the tenants and returns the set of their ids.
func (c *Config) validateTenants(add addFunc) map[string]bool {
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
			if !e164.Valid(n) {
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
	return tenants
}

// validateAccounts checks the upstream accounts against the tenants.
func (c *Config) validateAccounts(add addFunc, tenants map[string]bool) {
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
}

// validateSMSCs checks the SMSC binds and the routes that name them.
func (c *Config) validateSMSCs(add addFunc) {
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
}

// validateWhatsApp checks the tenants' WhatsApp templates and the WhatsApp
// section.
func (c *Config) validateWhatsApp(add addFunc, tenants map[string]bool) {
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
		if !e164.Valid(n.Number) {
			add(p+".number", "not an E.164 number: %q", n.Number)
		}
	}
	if d := c.WhatsApp.DedupTTL; d != 0 && (d < 7*24*time.Hour || d > 90*24*time.Hour) {
		add("whatsapp.dedup_ttl", "must be between 168h (Meta retries for 7 days) and 2160h, not %s", d)
	}
	if len(c.WhatsApp.Numbers) > 0 && !c.WhatsAppSimulator.Enabled && (c.WhatsApp.Token == "" || c.WhatsApp.AppSecret == "") {
		add("whatsapp", "token and app_secret are required for WhatsApp numbers")
	}
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
