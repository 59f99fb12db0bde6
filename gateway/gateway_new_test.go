package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// New fails with the cause, never a panic, whenever setup fails after the
// stores opened, and closes what it opened: the next New on the same
// directory starts.
func TestNewFailsCleanlyAfterStoresOpen(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	parse := func() *Config {
		cfg, err := ParseConfig([]byte(fmt.Sprintf(`
store: {dir: %q, lock_wait: 200ms}
simulator: {enabled: true, listen: "127.0.0.1:0"}
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: acme-newfail-token}
`, dir)), "t.yaml", nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for name, breakIt := range map[string]func(*Config){
		// checks ParseConfig makes, skipped here to reach New's own
		"tenant without brand": func(c *Config) { c.Tenants[0].Brand = "" },
		"template over 160": func(c *Config) {
			c.Tenants[0].Templates = map[string]TemplateConfig{"en": {Help: strings.Repeat("x", 200)}}
		},
		"unreadable smpp cert": func(c *Config) { c.SMPP.TLS.Cert, c.SMPP.TLS.Key = dir+"/none.crt", dir+"/none.key" },
		"whatsapp verify token": func(c *Config) {
			c.WhatsApp.Numbers = []WANumberConfig{{PhoneNumberID: "1", Number: "+15145550199", Tenant: "acme"}}
			c.WhatsApp.AppSecret = "s"
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := parse()
			breakIt(cfg)
			var g *Gateway
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("New panicked: %v", p)
					}
				}()
				g, err = New(cfg, Options{Logger: quiet})
			}()
			if err == nil || g != nil {
				t.Fatalf("New accepted it: %v", err)
			}
		})
	}
	// everything closed: a healthy New takes the directory at once
	sl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	g, err := New(parse(), Options{Logger: quiet, SMPPListener: sl, HTTPListener: hl})
	if err != nil {
		t.Fatalf("after the failures: %v", err)
	}
	// and a second one on the same directory is refused, naming it
	if _, err := New(parse(), Options{Logger: quiet}); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second New on a held directory: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.Shutdown(ctx)
}
