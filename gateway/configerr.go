package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/optgate/optgate/cluster"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/consent/keyword"
)

// This file holds the configuration checks that speak YAML rather than Go:
// decode errors rewritten with the key path, the expected form and a "did
// you mean"; the consent engine's checks mapped back to the YAML keys; and
// the relative paths resolved against the config file's folder.

// yamlKey is one mapping key or sequence item of the parsed document.
type yamlKey struct {
	path    string
	keyLine int
	valLine int
	val     *yaml.Node
}

func indexKeys(n *yaml.Node, path string, out *[]yamlKey) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			indexKeys(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			*out = append(*out, yamlKey{path: p, keyLine: k.Line, valLine: v.Line, val: v})
			indexKeys(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			*out = append(*out, yamlKey{path: p, keyLine: c.Line, valLine: c.Line, val: c})
			indexKeys(c, p, out)
		}
	}
}

var (
	yamlUnknownField = regexp.MustCompile("^field (\\S+) not found in type (\\S+)$")
	yamlBadType      = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
)

// explainDecodeErrors rewrites yaml.v3's decode errors (which name Go
// types) to name the YAML key path, the expected form and, for an unknown
// key, the closest known key.
func explainDecodeErrors(root *yaml.Node, es ConfigErrors) ConfigErrors {
	var keys []yamlKey
	indexKeys(root, "", &keys)
	byKeyLine, byValLine := map[int][]yamlKey{}, map[int][]yamlKey{}
	for _, k := range keys {
		byKeyLine[k.keyLine] = append(byKeyLine[k.keyLine], k)
		byValLine[k.valLine] = append(byValLine[k.valLine], k)
	}
	for _, e := range es {
		if m := yamlUnknownField.FindStringSubmatch(e.Msg); m != nil {
			name, typ := m[1], m[2]
			for _, k := range byKeyLine[e.Line] {
				if k.path == name || strings.HasSuffix(k.path, "."+name) {
					e.Path = k.path
					break
				}
			}
			known := yamlFieldsOf(typ)
			e.Msg = "unknown key " + name
			if s := closest(name, known); s != "" {
				e.Msg += "; did you mean " + s + "?"
			} else if len(known) > 0 {
				e.Msg += "; known keys here: " + strings.Join(known, ", ")
			}
			continue
		}
		if m := yamlBadType.FindStringSubmatch(e.Msg); m != nil {
			tag, val, typ := m[1], m[2], m[3]
			for _, k := range byValLine[e.Line] {
				if (tag == "map" && k.val.Kind == yaml.MappingNode) || (tag == "seq" && k.val.Kind == yaml.SequenceNode) ||
					(k.val.Kind == yaml.ScalarNode && (k.val.Value == val || strings.HasSuffix(val, "...") && strings.HasPrefix(k.val.Value, strings.TrimSuffix(val, "...")))) {
					e.Path = k.path
					break
				}
			}
			got := map[string]string{"map": "a mapping", "seq": "a list", "null": "nothing"}[tag]
			if got == "" {
				got = fmt.Sprintf("%q", val)
			}
			e.Msg = fmt.Sprintf("got %s, want %s", got, expectedForm(typ))
		}
	}
	return es
}

// expectedForm describes, for an operator, the YAML a Go type takes.
func expectedForm(typ string) string {
	switch strings.TrimPrefix(typ, "*") {
	case "time.Duration":
		return "a duration such as 30s, 5m or 24h"
	case "int", "int64", "int32", "uint32", "uint64", "uint":
		return "a whole number"
	case "uint8":
		return "a whole number 0–255"
	case "float64", "float32":
		return "a number such as 10 or 2.5"
	case "bool":
		return "true or false"
	case "string":
		return "a single value (text)"
	case "[]string":
		return "a list such as [a, b]"
	}
	switch {
	case strings.HasPrefix(typ, "[]"):
		return "a list of mappings (- key: value)"
	case strings.HasPrefix(typ, "map["):
		return "a mapping (key: value)"
	}
	return "a mapping (key: value)"
}

// yamlTypes maps each config struct's Go type name to its YAML keys.
var yamlTypes = sync.OnceValue(func() map[string][]string {
	m := map[string][]string{}
	collectYAMLTypes(reflect.TypeOf(Config{}), m)
	return m
})

// yamlFieldsOf lists the YAML keys of a config struct by its Go type name
// ("gateway.HTTPConfig"), in declaration order.
func yamlFieldsOf(typ string) []string { return yamlTypes()[typ] }

func collectYAMLTypes(t reflect.Type, out map[string][]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() == "time" {
		return
	}
	if _, done := out[t.String()]; done {
		return
	}
	var names []string
	out[t.String()] = names
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		collectYAMLTypes(f.Type, out)
	}
	out[t.String()] = names
}

// closest returns the known key nearest to name: within two edits, or one
// being the start of the other ("listen_port" for "listen"); "" if none.
func closest(name string, known []string) string {
	if len(name) > 64 {
		return "" // no key is that long
	}
	best, bestD := "", 3
	for _, k := range known {
		if len(k) > len(name)+2 || len(name) > len(k)+2 {
			continue // more than two edits apart
		}
		d := levenshtein(name, k)
		if d < bestD && d < len(name) {
			best, bestD = k, d
		}
	}
	if best != "" {
		return best
	}
	for _, k := range known {
		if len(k) >= 4 && len(name) >= 4 && (strings.HasPrefix(name, k) || strings.HasPrefix(k, name)) {
			return k
		}
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// validateBuild runs the checks that building the gateway would otherwise
// meet only in New, after the stores are open: the consent engine's tenant
// checks (brand, help_contact, default_region, held_ttl, max_length,
// keywords, reply templates that must fit one segment...), keyword
// classes and the WhatsApp webhook settings. It opens no file: CheckFiles
// does. A path already in
// reported is not reported twice.
func (c *Config) validateBuild(reported ConfigErrors) ConfigErrors {
	seen := map[string]bool{}
	for _, e := range reported {
		seen[e.Path] = true
	}
	var errs ConfigErrors
	add := func(path, f string, a ...any) {
		if !seen[path] {
			seen[path] = true
			errs = append(errs, c.errAt(path, f, a...))
		}
	}
	for i, t := range c.Tenants {
		p := fmt.Sprintf("tenants[%d]", i)
		for j, k := range t.KeywordsAdd {
			if _, err := keyword.ParseClass(k.Class); err != nil {
				add(fmt.Sprintf("%s.keywords_add[%d].class", p, j), "%v", err)
			}
		}
	}
	for i, t := range c.Tenants {
		// Keyword classes, keyword_mode and repeat_confirm_window are
		// reported above or by validate; convert what is left.
		kept := t.KeywordsAdd[:0:0]
		for _, k := range t.KeywordsAdd {
			if _, err := keyword.ParseClass(k.Class); err == nil {
				kept = append(kept, k)
			}
		}
		t.KeywordsAdd = kept
		cts, err := ConsentTenants(&Config{Tenants: []TenantConfig{t}})
		if err != nil {
			continue
		}
		for _, ct := range cts {
			for _, err := range ct.Validate() {
				fe, ok := err.(*consent.FieldError)
				if !ok {
					add(fmt.Sprintf("tenants[%d]", i), "%v", err)
					continue
				}
				add(fmt.Sprintf("tenants[%d]", i)+consentFieldPath(fe.Field), "%s", fe.Msg)
			}
		}
	}
	if c.Store.LockWait < 0 {
		add("store.lock_wait", "must not be negative")
	}
	if len(c.WhatsApp.Numbers) > 0 && !c.WhatsAppSimulator.Enabled && c.WhatsApp.VerifyToken == "" {
		add("whatsapp.verify_token", "required for the webhook when WhatsApp numbers are configured")
	}
	return errs
}

// consentFieldPath maps a consent.TenantConfig field name to the tenant's
// YAML key (".brand", ".templates.en.help"); "" for fields with no key.
func consentFieldPath(field string) string {
	if rest, ok := strings.CutPrefix(field, "Templates["); ok {
		lang, f, _ := strings.Cut(rest, "].")
		return ".templates." + lang + "." + snake(f)
	}
	switch field {
	case "Keywords":
		return ".keywords_add"
	case "MaxHeld":
		return ""
	case "RepeatConfirmWindow":
		return ".repeat_confirm_window"
	}
	return "." + snake(field)
}

// snake turns a Go field name into its YAML key: HeldTTL -> held_ttl.
func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 && unicode.IsLower(rs[i-1]) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// resolvePaths makes the relative file and directory paths of the
// configuration relative to the folder of the config file (dir), so a
// config means the same whatever the working directory of optgate.
func (c *Config) resolvePaths(dir string) {
	if dir == "" || dir == "." {
		return
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Store.Dir)
	for _, t := range []*TLSConfig{&c.SMPP.TLS} {
		abs(&t.Cert)
		abs(&t.Key)
		abs(&t.CA)
	}
	for i := range c.SMSCs {
		t := &c.SMSCs[i].TLS
		abs(&t.Cert)
		abs(&t.Key)
		abs(&t.CA)
	}
	if cl := c.Cluster; cl != nil {
		var tls []*cluster.TLSConfig
		if e := cl.Embedded; e != nil {
			abs(&e.StoreDir)
			tls = append(tls, &e.TLS)
		}
		if n := cl.NATS; n != nil {
			abs(&n.Credentials)
			tls = append(tls, &n.TLS)
		}
		for _, t := range tls {
			abs(&t.Cert)
			abs(&t.Key)
			abs(&t.CA)
		}
	}
}

// CheckFiles opens the files a configuration names (TLS certificates, keys
// and CAs) as serve will, and reports each that cannot be used. ParseConfig
// leaves files alone so a config can be parsed where they do not exist;
// check-config and serve call both.
func (c *Config) CheckFiles() ConfigErrors {
	var errs ConfigErrors
	if c.SMPP.TLS.Cert != "" && c.SMPP.TLS.Key != "" {
		if _, err := tls.LoadX509KeyPair(c.SMPP.TLS.Cert, c.SMPP.TLS.Key); err != nil {
			errs = append(errs, c.errAt("smpp.tls", "%v", err))
		}
	}
	for i, s := range c.SMSCs {
		if _, err := clientTLS(s.TLS); err != nil {
			errs = append(errs, c.errAt(fmt.Sprintf("smscs[%d].tls", i), "%v", err))
		}
	}
	return errs
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
