package gateway

import (
	"time"
)

// Window sizes (requests in flight per session), set here once.
const (
	// defaultWindow is the window of each platform's bind to our SMPP
	// server, an upstream account's default window across its binds, and
	// the window of the built-in simulator's link.
	defaultWindow = 256
	// defaultSMSCWindow is an SMSC link's default window per bind.
	defaultSMSCWindow = 64
)

// applyDefaults fills every field left zero with its documented default.
func (c *Config) applyDefaults() {
	c.applyServerDefaults()
	c.applyTenantDefaults()
	c.applySMSCDefaults()
	c.applyQueueDefaults()
}

// applyServerDefaults fills the log, store, SMPP, HTTP, simulator and
// WhatsApp sections.
func (c *Config) applyServerDefaults() {
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
}

// applyTenantDefaults fills the tenants and the upstream accounts.
func (c *Config) applyTenantDefaults() {
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
			a.Window = defaultWindow
		}
	}
}

// applySMSCDefaults fills the SMSC binds.
func (c *Config) applySMSCDefaults() {
	for i := range c.SMSCs {
		s := &c.SMSCs[i]
		if s.Mode == "" {
			s.Mode = "transceiver"
		}
		if s.Binds == 0 {
			s.Binds = 1
		}
		if s.Window == 0 {
			s.Window = defaultSMSCWindow
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
}

// applyQueueDefaults fills the queue, webhook and receipt sections.
func (c *Config) applyQueueDefaults() {
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
