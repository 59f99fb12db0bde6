package gateway

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/consent"
)

func TestParseConfigDefaultsAndEnv(t *testing.T) {
	env := map[string]string{"ACME_TOKEN": "acme-token-from-env"}
	cfg, err := ParseConfig([]byte(`
# secrets come from ${SOMETHING_UNSET} in the environment
tenants:
  - id: acme
    brand: Acme's "best" # not ${UNSET_TOO}
    help_contact: help@acme.example
    api_token: ${ACME_TOKEN} # or ${ALSO_UNSET}
    webhook: {url: "https://hooks.example/optgate", secret: "${HOOK_SECRET:-s3cret}"}
simulator: {enabled: true}
`), "t.yaml", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	tc := cfg.Tenants[0]
	if tc.APIToken != "acme-token-from-env" || tc.Webhook.Secret != "s3cret" || tc.Brand != `Acme's "best"` {
		t.Fatalf("env expansion: %+v", tc)
	}
	if tc.Scope != "tenant" || tc.Attestation != "implicit" || tc.MaxLength != 480 || cfg.SMPP.Listen != "127.0.0.1:2775" ||
		cfg.SMPP.MaxConnections != 4096 {
		t.Fatalf("defaults: %+v %+v", tc, cfg.SMPP)
	}
}

func TestParseConfigEveryProblemAtOnce(t *testing.T) {
	_, err := ParseConfig([]byte("tenants:\n  - id: a\n    scope: nope\n  - id: a\nsmscs:\n  - {name: x, address: bad}\nsmpp: {max_connections: -1}\n"), "c.yaml", nil)
	var ces ConfigErrors
	if !errors.As(err, &ces) || len(ces) < 4 {
		t.Fatalf("want several errors, got %v", err)
	}
	for _, want := range []string{"c.yaml:3: tenants[0].scope", "c.yaml:4: tenants[1].id: duplicate", "c.yaml:6: smscs[0].address", "smpp.max_connections: must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}

// FuzzParseConfig: any bytes give a config or errors, never a panic.
func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("../configs/optgate.yaml"); err == nil {
		f.Add(b)
	}
	if b, err := os.ReadFile("../configs/production.example.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("tenants: [{id: a, numbers: [\"+1\"]}]\nroutes: [{prefix: x}]\n"))
	f.Add([]byte("${A:-${B}}: [&a *a]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b, "fuzz.yaml", func(string) (string, bool) { return "", false })
		if err == nil && cfg == nil {
			t.Fatal("no config and no error")
		}
		if err == nil {
			_ = cfg.Digest()
		}
	})
}

// The repeat-confirmation window and the marketing opt-out template reach
// the consent engine; a bad window is reported with its line.
func TestConsentTenantsRepeatWindowAndMarketingTemplate(t *testing.T) {
	base := "tenants:\n  - id: a\n    brand: A\n    help_contact: h\n    default_region: US\n    repeat_confirm_window: %s\n    templates:\n      en: {marketing_opt_out: \"No more offers from A. Reply STOP to end all texts.\"}\nsimulator: {enabled: true}\n"
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"off", consent.RepeatConfirmAlways}, {"2h", 2 * time.Hour}} {
		cfg, err := ParseConfig([]byte(fmt.Sprintf(base, tc.in)), "c.yaml", nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		tcs, err := ConsentTenants(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if tcs[0].RepeatConfirmWindow != tc.want || tcs[0].Templates["en"].MarketingOptOut != "No more offers from A. Reply STOP to end all texts." {
			t.Fatalf("%s: window %v, templates %+v", tc.in, tcs[0].RepeatConfirmWindow, tcs[0].Templates)
		}
	}
	_, err := ParseConfig([]byte(fmt.Sprintf(base, "soon")), "c.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "c.yaml:6: tenants[0].repeat_confirm_window") {
		t.Fatalf("want the bad window reported at line 6, got %v", err)
	}
}

// region (per SMSC), default_region (per tenant) and sender_ids are checked
// with their place in the file.
func TestParseConfigRegionsAndSenderIDs(t *testing.T) {
	y := "tenants:\n  - id: a\n    default_region: XX\n    sender_ids: [\"Ok\", \"12345\", \"Far too long an id\"]\nsmscs:\n  - {name: x, address: \"127.0.0.1:1\", system_id: s, region: QQ}\nroutes:\n  - {prefix: \"+\", smscs: [x]}\n"
	_, err := ParseConfig([]byte(y), "c.yaml", nil)
	for _, want := range []string{"c.yaml:3: tenants[0].default_region", "tenants[0].sender_ids[1]", "tenants[0].sender_ids[2]", "c.yaml:6: smscs[0].region"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "sender_ids[0]") {
		t.Errorf("a good sender id refused:\n%v", err)
	}
	cfg, err := ParseConfig([]byte("tenants:\n  - {id: a, brand: A, help_contact: help@a.example}\nsmscs:\n  - {name: x, address: \"127.0.0.1:1\", system_id: s}\nroutes:\n  - {prefix: \"+\", smscs: [x]}\n"), "c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMSCs[0].Region != "US" || cfg.Tenants[0].DefaultRegion != "US" {
		t.Fatalf("default regions: %q %q", cfg.SMSCs[0].Region, cfg.Tenants[0].DefaultRegion)
	}
}

// whatsapp.dedup_ttl may not be shorter than Meta's 7-day retry horizon.
func TestConfigWhatsAppDedupTTL(t *testing.T) {
	base := "tenants:\n  - {id: a, brand: A, help_contact: help@a.example, default_region: US}\nwhatsapp: {dedup_ttl: %s}\nsimulator: {enabled: true}\n"
	cfg, err := ParseConfig([]byte(fmt.Sprintf(base, "240h")), "c.yaml", nil)
	if err != nil || cfg.WhatsApp.DedupTTL != 240*time.Hour {
		t.Fatalf("240h: %v", err)
	}
	_, err = ParseConfig([]byte(fmt.Sprintf(base, "24h")), "c.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), "whatsapp.dedup_ttl") {
		t.Fatalf("24h: want a whatsapp.dedup_ttl error, got %v", err)
	}
}

// An SMSC's data_coding overrides and MO retry window are checked with
// their place; defaults are gsm7, ia5 and 10 minutes.
func TestParseConfigSMSCCharsets(t *testing.T) {
	y := "tenants: [{id: a, brand: A, help_contact: help@a.example}]\nsmscs:\n  - name: x\n    address: 127.0.0.1:1\n    system_id: s\n    data_coding_0: %s\n    data_coding_1: %s\n    mo_retry_window: %s\nroutes: [{prefix: \"+\", smscs: [x]}]\n"
	cfg, err := ParseConfig([]byte(fmt.Sprintf(y, "latin1", "gsm7", "30s")), "c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.SMSCs[0]; s.DataCoding0 != "latin1" || s.DataCoding1 != "gsm7" || s.MORetryWindow != 30*time.Second {
		t.Fatalf("parsed %+v", s)
	}
	cfg, err = ParseConfig([]byte("tenants: [{id: a, brand: A, help_contact: help@a.example}]\nsmscs: [{name: x, address: \"127.0.0.1:1\", system_id: s}]\nroutes: [{prefix: \"+\", smscs: [x]}]\n"), "c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.SMSCs[0]; s.DataCoding0 != "gsm7" || s.DataCoding1 != "ia5" || s.MORetryWindow != 10*time.Minute {
		t.Fatalf("defaults %+v", s)
	}
	_, err = ParseConfig([]byte(fmt.Sprintf(y, "utf8", "ucs2", "48h")), "c.yaml", nil)
	for _, want := range []string{"c.yaml:6: smscs[0].data_coding_0: must be gsm7, ia5 or latin1", "c.yaml:7: smscs[0].data_coding_1",
		"c.yaml:8: smscs[0].mo_retry_window"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}

// A tenant's numbers are E.164 by e164.Valid, the rule the MT
// chain applies to recipients: 7 to 15 digits (the config once took 2).
func TestConfigNumberLengths(t *testing.T) {
	base := "tenants:\n  - {id: a, brand: A, help_contact: help@a.example, numbers: [%q]}\nsmscs:\n  - {name: x, address: \"127.0.0.1:1\", system_id: s}\nroutes:\n  - {prefix: \"+\", smscs: [x]}\n"
	for _, n := range []string{"+6831234", "+123456789012345"} {
		if _, err := ParseConfig([]byte(fmt.Sprintf(base, n)), "c.yaml", nil); err != nil {
			t.Errorf("%s refused: %v", n, err)
		}
	}
	for _, n := range []string{"+12", "+683123", "+1234567890123456", "+0123456789"} {
		_, err := ParseConfig([]byte(fmt.Sprintf(base, n)), "c.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), "not an E.164 number") {
			t.Errorf("%s: want a not-an-E.164-number error, got %v", n, err)
		}
	}
}

// TestParseConfigCluster: no cluster: section is a single node (nil);
// a section gets cluster.Config's defaults (the NATS store under
// store.dir, relative paths against the config's folder) and its
// problems are reported at their cluster.<key> with a line.
func TestParseConfigCluster(t *testing.T) {
	base := "tenants: [{id: acme, brand: Acme, help_contact: help@acme.example}]\nstore: {dir: data}\nsimulator: {enabled: true}\n"
	cfg, err := ParseConfig([]byte(base), "/etc/optgate/c.yaml", nil)
	if err != nil || cfg.Cluster != nil {
		t.Fatalf("no section: %v %+v", err, cfg.Cluster)
	}
	cfg, err = ParseConfig([]byte(base+`cluster:
  node: n1
  embedded: {listen: "127.0.0.1:4222", cluster_listen: "127.0.0.1:6222", routes: ["127.0.0.1:6222", "127.0.0.1:6223", "127.0.0.1:6224"]}
`), "/etc/optgate/c.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cluster
	if c.Embedded.StoreDir != "/etc/optgate/data/nats" || c.Replicas != 3 || c.MaxLag != 100*time.Millisecond {
		t.Fatalf("defaults: store_dir %q replicas %d max_lag %v", c.Embedded.StoreDir, c.Replicas, c.MaxLag)
	}
	_, err = ParseConfig([]byte(base+`cluster:
  node: "bad name"
  replicas: 5
  embedded: {cluster_listen: "127.0.0.1:6222", routes: ["127.0.0.1:6223"]}
`), "c.yaml", nil)
	for _, want := range []string{"c.yaml:5: cluster.node", "cluster.replicas"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}
