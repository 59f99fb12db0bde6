package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/optgate/optgate/gateway"
)

const consentHelp = `Admin commands over a running gateway's HTTP API:

  get RECIPIENT                       show a recipient's consent
  history RECIPIENT [-limit N]        show the evidence log, newest first
  opt-out RECIPIENT                   record an opt-out on the recipient's behalf
  opt-in RECIPIENT -source S -proof REF   record express consent with its evidence
  import FILE.csv -source S [-proof REF]  import suppression entries (exit 1 if any row failed)
  export [-evidence]                  export suppression entries (or the evidence) as CSV

The server is -url (scheme optional: 127.0.0.1:8080 works), else $OPTGATE_URL,
else http.listen of the -config file, else http://127.0.0.1:8080. The token is
-token, else $OPTGATE_TOKEN, else $OPTGATE_ADMIN_TOKEN, else http.admin_token
of the -config file. An admin token acts on any tenant with -tenant.
Run 'optgate consent COMMAND -h' for a command's flags.`

// consentSub is one consent subcommand: its arguments and its own flags.
type consentSub struct {
	args, summary string
	nargs         int // positional arguments
	flags         func(fs *flag.FlagSet, o *consentOpts)
}

// consentOpts are the flag values of a consent subcommand.
type consentOpts struct {
	base, token, config, tenant, channel  string
	source, proof, operator, sender, note string
	marketing, evidence, strict           bool
	limit                                 int
}

func changeFlags(fs *flag.FlagSet, o *consentOpts) {
	fs.StringVar(&o.operator, "operator", os.Getenv("USER"), "who makes the change (recorded with the evidence)")
	fs.StringVar(&o.sender, "sender", "", "our number the change is about (sender scope)")
	fs.StringVar(&o.note, "note", "", "free note recorded with the evidence")
}

var consentSubs = map[string]*consentSub{
	"get": {args: "RECIPIENT", summary: "Shows a recipient's consent state (tenant-wide and per sender).", nargs: 1},
	"history": {args: "RECIPIENT", summary: "Shows the recipient's evidence log, newest first.", nargs: 1,
		flags: func(fs *flag.FlagSet, o *consentOpts) { fs.IntVar(&o.limit, "limit", 100, "entries to show, 1–1000") }},
	"opt-out": {args: "RECIPIENT", summary: "Records an opt-out on the recipient's behalf (stored durably before it answers).", nargs: 1,
		flags: func(fs *flag.FlagSet, o *consentOpts) {
			changeFlags(fs, o)
			fs.BoolVar(&o.marketing, "marketing", false, "opt out of marketing messages only")
		}},
	"opt-in": {args: "RECIPIENT -source S -proof REF", summary: "Records express consent, with the evidence of how it was given.", nargs: 1,
		flags: func(fs *flag.FlagSet, o *consentOpts) {
			changeFlags(fs, o)
			fs.StringVar(&o.source, "source", "", "how consent was given (required), e.g. signed_form")
			fs.StringVar(&o.proof, "proof", "", "reference of the proof of express consent (required)")
		}},
	"import": {args: "FILE.csv -source S", summary: "Imports suppression entries (opt-outs) from a CSV file. Exits 1 when any row was refused.", nargs: 1,
		flags: func(fs *flag.FlagSet, o *consentOpts) {
			fs.StringVar(&o.source, "source", "", "where the list comes from (required), e.g. previous_provider")
			fs.StringVar(&o.proof, "proof", "", "reference of the list's provenance")
			fs.StringVar(&o.operator, "operator", os.Getenv("USER"), "who imports")
			fs.BoolVar(&o.strict, "strict", false, "apply nothing if any row is malformed")
		}},
	"export": {args: "", summary: "Exports the suppression list (or the evidence log) as CSV.",
		flags: func(fs *flag.FlagSet, o *consentOpts) {
			fs.BoolVar(&o.evidence, "evidence", false, "the evidence log instead of the suppression list")
		}},
}

// consentCmd runs the admin commands against a running gateway's HTTP API.
func consentCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "usage: %s\n\n%s\n", lookup("consent").synopsis, consentHelp)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && consentSubs[args[1]] != nil {
			return consentCmd([]string{args[1], "-h"}, stdout, stderr)
		}
		fmt.Fprintf(stdout, "usage: %s\n\n%s\n", lookup("consent").synopsis, consentHelp)
		return 0
	}
	sub := consentSubs[name]
	if sub == nil {
		return usageError(stderr, "optgate consent", "unknown command %q (get, history, opt-out, opt-in, import, export)", name)
	}
	cmdName := "optgate consent " + name
	var o consentOpts
	fs := flag.NewFlagSet("consent "+name, flag.ContinueOnError)
	fs.StringVar(&o.base, "url", "", "gateway HTTP API, scheme optional (default $OPTGATE_URL, -config's http.listen, 127.0.0.1:8080)")
	fs.StringVar(&o.token, "token", "", "bearer token, admin or tenant (default $OPTGATE_TOKEN, $OPTGATE_ADMIN_TOKEN, -config's http.admin_token)")
	fs.StringVar(&o.config, "config", "", "configuration file to take the URL and admin token from")
	fs.StringVar(&o.tenant, "tenant", "", "tenant to act on (with an admin token)")
	if name != "import" {
		fs.StringVar(&o.channel, "channel", "sms", "sms or whatsapp")
	}
	if sub.flags != nil {
		sub.flags(fs, &o)
	}
	synopsis := strings.TrimSpace("optgate consent " + name + " " + sub.args + " [flags]")
	pos, code, ok := parseFlags(fs, synopsis, sub.summary, args[1:], stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != sub.nargs {
		if sub.nargs == 0 {
			return usageError(stderr, cmdName, "no arguments expected, got %q", pos[0])
		}
		return usageError(stderr, cmdName, "expected %s, got %d argument(s)", strings.Fields(sub.args)[0], len(pos))
	}
	switch {
	case name == "history" && (o.limit < 1 || o.limit > 1000):
		return usageError(stderr, cmdName, "-limit %d: must be 1–1000", o.limit)
	case o.channel != "" && o.channel != "sms" && o.channel != "whatsapp":
		return usageError(stderr, cmdName, "-channel %q: must be sms or whatsapp", o.channel)
	case name == "opt-in" && (o.source == "" || o.proof == ""):
		return usageError(stderr, cmdName, "-source and -proof (evidence of express consent) are required")
	case name == "import" && o.source == "":
		return usageError(stderr, cmdName, "-source (where the list comes from) is required")
	}
	base, token, err := consentTarget(&o)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmdName, err)
		return 1
	}
	if base == "" {
		return usageError(stderr, cmdName, "bad -url %q: want host:port or http(s)://host:port", o.base)
	}
	if token == "" {
		return usageError(stderr, cmdName, "no token: pass -token, set OPTGATE_TOKEN or OPTGATE_ADMIN_TOKEN, or -config with http.admin_token")
	}
	q := url.Values{}
	if o.tenant != "" {
		q.Set("tenant", o.tenant)
	}
	if o.channel != "" {
		q.Set("channel", o.channel)
	}
	var method, path string
	var body io.Reader
	ctype := "application/json"
	switch name {
	case "get", "history":
		method, path = "GET", "/v1/consent/"+url.PathEscape(pos[0])
		if name == "history" {
			path += "/history"
			q.Set("limit", fmt.Sprint(o.limit))
		}
	case "opt-out", "opt-in":
		b, _ := json.Marshal(map[string]any{"sender": o.sender, "operator": o.operator, "source": o.source, "proof_ref": o.proof,
			"note": o.note, "marketing": o.marketing})
		method, path, body = "POST", "/v1/consent/"+url.PathEscape(pos[0])+"/"+name, bytes.NewReader(b)
	case "import":
		f, err := os.Open(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmdName, err)
			return 1
		}
		defer f.Close()
		q.Set("source", o.source)
		q.Set("proof_ref", o.proof)
		q.Set("operator", o.operator)
		if o.strict {
			q.Set("strict", "true")
		}
		method, path, body, ctype = "POST", "/v1/consent/import", f, "text/csv"
	case "export":
		method, path = "GET", "/v1/consent/export"
		if o.evidence {
			q.Set("what", "evidence")
		}
	}
	req, err := http.NewRequest(method, base+path+"?"+q.Encode(), body)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmdName, err)
		return 1
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	client := &http.Client{Timeout: 10 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmdName, err)
		if errors.Is(err, syscall.ECONNREFUSED) {
			fmt.Fprintf(stderr, "%s: nothing listens at %s: is optgate serve running there? Set the address with -url, $OPTGATE_URL or -config\n", cmdName, base)
		}
		return 1
	}
	defer resp.Body.Close()
	out := stdout
	if resp.StatusCode >= 300 {
		out = stderr
	}
	var kept bytes.Buffer // the import summary, read for its error_count
	w := &lastByteWriter{w: out}
	var dst io.Writer = w
	if name == "import" {
		dst = io.MultiWriter(w, &limitedBuffer{b: &kept, n: 1 << 20})
	}
	if _, err := io.Copy(dst, resp.Body); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmdName, err)
		return 1
	}
	if w.n > 0 && w.last != '\n' {
		io.WriteString(out, "\n")
	}
	if resp.StatusCode >= 300 {
		fmt.Fprintf(stderr, "%s: %s\n", cmdName, resp.Status)
		return 1
	}
	if name == "import" {
		var sum struct {
			ErrorCount int `json:"error_count"`
		}
		if json.Unmarshal(kept.Bytes(), &sum) == nil && sum.ErrorCount > 0 {
			fmt.Fprintf(stderr, "%s: %d row(s) refused (listed in \"errors\" above)\n", cmdName, sum.ErrorCount)
			return 1
		}
	}
	return 0
}

// consentTarget resolves the API base URL and the token from the flags,
// the environment and the -config file, in that order; base is "" when
// -url cannot be made a URL.
func consentTarget(o *consentOpts) (base, token string, err error) {
	raw, token := o.base, o.token
	if raw == "" {
		raw = os.Getenv("OPTGATE_URL")
	}
	if token == "" {
		token = os.Getenv("OPTGATE_TOKEN")
	}
	if token == "" {
		token = os.Getenv("OPTGATE_ADMIN_TOKEN")
	}
	if o.config != "" && (raw == "" || token == "") {
		// only the address and the token are needed: the files the config
		// names (TLS) need not exist where the command runs
		data, err := os.ReadFile(o.config)
		var cfg *gateway.Config
		if err == nil {
			cfg, err = gateway.ParseConfig(data, o.config, nil)
		}
		if err != nil {
			return "", "", fmt.Errorf("%s: %v (run optgate check-config %[1]s)", o.config, err)
		}
		if raw == "" {
			raw = cfg.HTTP.Listen
			if host, port, err := net.SplitHostPort(raw); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
				raw = "127.0.0.1:" + port
			}
		}
		if token == "" {
			token = cfg.HTTP.AdminToken
		}
	}
	if raw == "" {
		raw = "127.0.0.1:8080"
	}
	return apiBase(raw), token, nil
}

// apiBase makes a base URL of host:port or http(s)://host:port[/prefix];
// "" if it is neither.
func apiBase(raw string) string {
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return strings.TrimRight(u.String(), "/")
}

// lastByteWriter remembers the last byte written, so output can be ended
// with a newline.
type lastByteWriter struct {
	w    io.Writer
	n    int64
	last byte
}

func (l *lastByteWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if n > 0 {
		l.n += int64(n)
		l.last = p[n-1]
	}
	return n, err
}

// limitedBuffer keeps the first n bytes written and drops the rest.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
