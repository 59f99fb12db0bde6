package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Unknown keys and type errors name the YAML key path, the form expected
// and a close known key, not Go types.
func TestConfigErrorsSpeakYAML(t *testing.T) {
	_, err := ParseConfig([]byte(`http:
  listen_port: 8080
  admin_tokn: abcdefghij
smpp:
  enquire_link: soon
tenants:
  - id: acme
    brand: Acme
    help_contact: help@acme.example
    held_ttl: [1, 2]
    colour: blue
simulator: {enabled: true}
`), "c.yaml", nil)
	var ces ConfigErrors
	if !errors.As(err, &ces) {
		t.Fatalf("want ConfigErrors, got %v", err)
	}
	for _, want := range []string{
		"c.yaml:2: http.listen_port: unknown key listen_port; did you mean listen?",
		"c.yaml:3: http.admin_tokn: unknown key admin_tokn; did you mean admin_token?",
		`c.yaml:5: smpp.enquire_link: got "soon", want a duration such as 30s`,
		"c.yaml:10: tenants[0].held_ttl: got a list, want a duration such as 30s",
		"c.yaml:11: tenants[0].colour: unknown key colour; known keys here: id, brand,",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "gateway.") || strings.Contains(err.Error(), "time.Duration") {
		t.Errorf("errors name Go types:\n%v", err)
	}
}

// The consent engine's checks (run by consent.Open in serve) are made by
// ParseConfig, so check-config finds them, at the tenant's YAML key.
func TestParseConfigRunsConsentChecks(t *testing.T) {
	_, err := ParseConfig([]byte(`tenants:
  - id: acme
    help_contact: help@acme.example
    default_region: ZZ
    held_ttl: 10s
    max_length: 100
    keywords_add:
      - {word: HALT, class: opt_outt}
  - id: beta
    brand: Beta
    help_contact: help@beta.example
    templates:
      en:
        help: "`+strings.Repeat("A long help text. ", 12)+`"
simulator: {enabled: true}
store: {lock_wait: -1s}
`), "c.yaml", nil)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"c.yaml:2: tenants[0].brand: required",
		`c.yaml:4: tenants[0].default_region: must be a known two-letter region code (such as US or FR), not "ZZ"`,
		"c.yaml:5: tenants[0].held_ttl: 10s must be at least 1m",
		"c.yaml:6: tenants[0].max_length: 100 must be 160–10000",
		"c.yaml:8: tenants[0].keywords_add[0].class",
		"c.yaml:14: tenants[1].templates.en.help: ",
		"c.yaml:16: store.lock_wait: must not be negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "default_region"); n != 1 {
		t.Errorf("default_region reported %d times:\n%v", n, err)
	}
}

// Relative paths in a config resolve against the config file's folder.
func TestConfigRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "c.yaml")
	os.MkdirAll(filepath.Dir(path), 0o755)
	cfg, err := ParseConfig([]byte("store: {dir: ./state}\ntenants: [{id: a, brand: A, help_contact: h}]\nsimulator: {enabled: true}\n"), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "sub", "state"); cfg.Store.Dir != want {
		t.Fatalf("store.dir %q, want %q", cfg.Store.Dir, want)
	}
	abs := filepath.Join(dir, "abs")
	cfg, err = ParseConfig([]byte("store: {dir: "+abs+"}\ntenants: [{id: a, brand: A, help_contact: h}]\nsimulator: {enabled: true}\n"), path, nil)
	if err != nil || cfg.Store.Dir != abs {
		t.Fatalf("absolute store.dir: %v %q", err, cfg.Store.Dir)
	}
}

func TestClosestKey(t *testing.T) {
	known := []string{"listen", "admin_token", "max_body_bytes"}
	for name, want := range map[string]string{"listen_port": "listen", "lisen": "listen", "admintoken": "admin_token", "colour": "", "ab": ""} {
		if got := closest(name, known); got != want {
			t.Errorf("closest(%q) = %q, want %q", name, got, want)
		}
	}
}
