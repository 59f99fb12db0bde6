// Command optgate runs the consent-first messaging gateway.
//
//	optgate serve [CONFIG]                run the gateway
//	optgate check-config [CONFIG]         report every configuration problem, with file:line
//	optgate version                       print the version and VCS revision
//	optgate consent <get|history|opt-out|opt-in|import|export> ...   admin commands over the HTTP API
//	optgate help [COMMAND]                what a command does
//
// Exit status: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/optgate/optgate/cmd/optgate/simulators"
	"github.com/optgate/optgate/gateway"
)

// version is set with -ldflags "-X main.version=..."; else the module's.
var version = ""

// defaultConfig is the configuration serve and check-config use without
// -config or a path: the first configs/optgate.yaml found in the working
// directory or one of its parents (so the repository's config is found from
// anywhere inside the checkout).
const defaultConfig = "configs/optgate.yaml"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one top-level command.
type command struct {
	name, synopsis, summary string
	// help is the long description printed by -h, before the flags.
	help string
	run  func(args []string, stdout, stderr io.Writer) int
}

var commands []*command

func init() {
	commands = []*command{
		{name: "serve", synopsis: "optgate serve [-config] [CONFIG]", summary: "run the gateway",
			help: `Runs the gateway: the SMPP server platforms bind to, the HTTP API, the binds to
the SMSCs and the consent store, until SIGINT or SIGTERM. CONFIG (or -config)
is the configuration file; without one, configs/optgate.yaml in the working
directory or its nearest parent that has one. Relative paths in a config
resolve against the config file's folder. A data directory still held by an
exiting optgate is waited for (store.lock_wait, default 10s).`, run: serve},
		{name: "check-config", synopsis: "optgate check-config [-config] [CONFIG]", summary: "check a configuration and print a digest",
			help: `Runs every check serve runs on a configuration (the consent engine's included,
and the TLS files it names) without opening stores or listeners, and prints
every problem at once as FILE:LINE: KEY.PATH: what is wrong. Exit status 1 when
there is any.`, run: checkConfig},
		{name: "version", synopsis: "optgate version", summary: "print the version and VCS revision",
			help: `Prints the module version, the VCS revision the binary was built from and the Go
version. Also: optgate --version.`, run: versionCmd},
		{name: "consent", synopsis: "optgate consent COMMAND [flags] ...", summary: "consent admin commands over the HTTP API",
			help: consentHelp, run: consentCmd},
		{name: "backup", synopsis: "optgate backup -to FILE|DIR [-incremental]", summary: "back up every store (online through a running gateway); backup verify ARCHIVE...",
			help: backupUsage, run: backupCmd},
		{name: "restore", synopsis: "optgate restore -from ARCHIVE|DIR -to DATADIR", summary: "rebuild a data folder from backup archives",
			help: restoreUsage, run: restoreCmd},
		{name: "help", synopsis: "optgate help [COMMAND]", summary: "what a command does", run: helpCmd},
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, "optgate is a consent-first SMS and WhatsApp gateway.\n\nusage:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-42s %s\n", c.synopsis, c.summary)
	}
	fmt.Fprint(w, `
Run 'optgate help COMMAND' or 'optgate COMMAND -h' for a command's flags.
Exit status: 0 success, 1 failure, 2 usage error.
`)
}

// usageError prints a one-line usage error with a hint, and returns 2.
func usageError(stderr io.Writer, cmd, format string, a ...any) int {
	hint := "optgate help"
	if cmd != "" {
		hint = cmd + " -h"
	} else {
		cmd = "optgate"
	}
	fmt.Fprintf(stderr, "%s: %s (see '%s')\n", cmd, fmt.Sprintf(format, a...), hint)
	return 2
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "--version", "-version":
		return versionCmd(nil, stdout, stderr)
	}
	c := lookup(args[0])
	if c == nil {
		return usageError(stderr, "", "unknown command %q", args[0])
	}
	return c.run(args[1:], stdout, stderr)
}

func helpCmd(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		usage(stdout)
		return 0
	case 1:
		c := lookup(args[0])
		if c == nil {
			return usageError(stderr, "optgate help", "unknown command %q", args[0])
		}
		return c.run([]string{"-h"}, stdout, stderr)
	}
	return usageError(stderr, "optgate help", "one command at most")
}

// parseFlags parses flags and positional arguments in any order. It
// answers -h/--help with the help (synopsis, text, flags) on stdout and
// code 0, a bad flag with a one-line error and code 2; ok is false then.
func parseFlags(fs *flag.FlagSet, synopsis, help string, args []string, stdout, stderr io.Writer) (positional []string, code int, ok bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: %s\n\n%s\n", synopsis, help)
			n := 0
			fs.VisitAll(func(*flag.Flag) { n++ })
			if n > 0 {
				fmt.Fprintln(stdout, "\nflags:")
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				fs.SetOutput(io.Discard)
			}
			return nil, 0, false
		}
		if err != nil {
			return nil, usageError(stderr, "optgate "+fs.Name(), "%v", err), false
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, 0, true
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func versionCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	pos, code, ok := parseFlags(fs, lookup("version").synopsis, lookup("version").help, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "optgate version", "no arguments expected, got %q", pos[0])
	}
	fmt.Fprintln(stdout, "optgate", versionString())
	return 0
}

// versionString is the version (ldflags, else the module's), the VCS
// revision and the Go version, from the build info.
func versionString() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" {
		v = "devel"
		if ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	rev, modified := buildRevision(bi)
	if rev != "" {
		v += " (revision " + rev
		if modified {
			v += ", modified"
		}
		v += ")"
	}
	return v + " " + runtime.Version()
}

// buildRevision is the VCS revision and dirty flag recorded by go build.
func buildRevision(bi *debug.BuildInfo) (rev string, modified bool) {
	if bi == nil {
		return "", false
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return rev, modified
}

// findDefaultConfig looks for configs/optgate.yaml in the working
// directory and its parents.
func findDefaultConfig() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		p := filepath.Join(dir, defaultConfig)
		if _, err := os.Stat(p); err == nil {
			if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
				return rel, nil
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no configuration: pass -config FILE or a path (%s was not found in %s or its parents)", defaultConfig, wd)
		}
		dir = parent
	}
}

// configArg decides the config file from -config and the positional
// arguments (at most one; not both), else the default.
func configArg(cmd, flagPath string, pos []string, stderr io.Writer) (string, int, bool) {
	switch {
	case len(pos) > 1:
		return "", usageError(stderr, "optgate "+cmd, "one configuration file, got %d: %s", len(pos), strings.Join(pos, " ")), false
	case len(pos) == 1 && flagPath != "":
		return "", usageError(stderr, "optgate "+cmd, "configuration given twice (-config %s and %s)", flagPath, pos[0]), false
	case len(pos) == 1:
		return pos[0], 0, true
	case flagPath != "":
		return flagPath, 0, true
	}
	p, err := findDefaultConfig()
	if err != nil {
		fmt.Fprintf(stderr, "optgate %s: %v\n", cmd, err)
		return "", 1, false
	}
	return p, 0, true
}

// loadConfig reads and checks a configuration as serve and check-config
// both do: ParseConfig (every check short of opening files, stores and
// listeners) then the files it names.
func loadConfig(path string) (*gateway.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := gateway.ParseConfig(data, path, nil)
	if err != nil {
		return nil, err
	}
	if errs := cfg.CheckFiles(); len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// configFlag parses the command line of serve or check-config and loads
// the configuration, printing every problem (after prefix) and returning
// the exit code when it cannot.
func configFlag(name string, args []string, stdout, stderr io.Writer, prefix string) (*gateway.Config, string, int) {
	c := lookup(name)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	flagPath := fs.String("config", "", "configuration file (default: "+defaultConfig+" in the working directory or a parent)")
	pos, code, ok := parseFlags(fs, c.synopsis, c.help, args, stdout, stderr)
	if !ok {
		return nil, "", code
	}
	path, code, ok := configArg(name, *flagPath, pos, stderr)
	if !ok {
		return nil, "", code
	}
	cfg, err := loadConfig(path)
	if err == nil {
		return cfg, path, 0
	}
	var ces gateway.ConfigErrors
	if errors.As(err, &ces) {
		for _, e := range ces {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stderr, "%s%d problem(s) in %s\n", prefix, len(ces), path)
		return nil, "", 1
	}
	fmt.Fprintf(stderr, "optgate %s: %v\n", name, err)
	return nil, "", 1
}

func checkConfig(args []string, stdout, stderr io.Writer) int {
	cfg, path, code := configFlag("check-config", args, stdout, stderr, "")
	if cfg == nil {
		return code
	}
	fmt.Fprintf(stdout, "%s: ok\n%s", path, cfg.Digest())
	return 0
}

func newLogger(cfg *gateway.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	// Durations as strings ("1.5s") in both formats: JSON would otherwise
	// carry nanosecond counts.
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			return slog.String(a.Key, a.Value.Duration().String())
		}
		return a
	}}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// simulatorBanner is what serve prints when the built-in SMSC simulator
// runs: the addresses and the loop of README's quick start.
const simulatorBanner = `
optgate is running with its built-in SMSC simulator.
  SMPP (bind your ESME here): %s   (accounts in the config, e.g. acme / acmepw)
  HTTP API:                   http://%s   (GET /healthz, /readyz, /metrics)
Try the loop (tokens from the config; run it as often as you like: each run takes a new number):
%s
Stop with Ctrl-C.
`

// tryLoop is the quick-start loop against the HTTP API at addr; README.md
// shows it for 127.0.0.1:8080 (TestQuickStartLoop checks they agree and
// that it shows 202 then 403 every time it runs).
func tryLoop(addr string) string {
	return strings.ReplaceAll(`N=+1514555$(printf %04d $((RANDOM % 10000)))   # a recipient for this run
# send a message: 202 accepted
curl -s -w ' %{http_code}\n' -XPOST http://ADDR/v1/messages -H 'Authorization: Bearer acme-dev-api-token' \
     -d '{"to":"'$N'","text":"Your interview is confirmed"}'
# the handset answers STOP through the simulator: stored, confirmed in English
curl -s -w ' %{http_code}\n' -XPOST http://ADDR/v1/simulator/mo -H 'Authorization: Bearer acme-dev-api-token' \
     -d '{"from":"'$N'","to":"+15145550199","text":"STOP"}'
# send again: 403 {"error":{"code":"recipient_opted_out",...}} (over SMPP: submit_sm_resp 0x00000401)
curl -s -w ' %{http_code}\n' -XPOST http://ADDR/v1/messages -H 'Authorization: Bearer acme-dev-api-token' \
     -d '{"to":"'$N'","text":"Another offer"}'
# the evidence
curl -s http://ADDR/v1/consent/$N/history -H 'Authorization: Bearer acme-dev-api-token'; echo`, "ADDR", addr)
}

func serve(args []string, stdout, stderr io.Writer) int {
	cfg, _, code := configFlag("serve", args, stdout, stderr, "optgate: refusing to start: ")
	if cfg == nil {
		return code
	}
	sig := stopSignals()
	logw, lf, lerr := logOutput(cfg, stderr)
	if lerr != nil {
		fmt.Fprintln(stderr, "optgate: log.file:", lerr)
		return 1
	}
	if lf != nil {
		defer lf.Close()
	}
	log := newLogger(cfg, logw)
	slog.SetDefault(log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opt := gateway.Options{Logger: log, Registerer: reg, Gatherer: reg}
	simulators.Wire(&opt) // the built-in SMSC simulator and WhatsApp mock, when the config enables them
	g, err := gateway.New(cfg, opt)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := g.Start(); err != nil {
		log.Error("cannot start", "err", err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		g.Shutdown(ctx)
		cancel()
		return 1
	}
	if cfg.Simulator.Enabled {
		fmt.Fprintf(stdout, simulatorBanner, g.SMPPAddr(), g.HTTPAddr(), tryLoop(g.HTTPAddr()))
	}
	s := waitForStop(sig, log, lf)
	log.Info("signal received, shutting down", "signal", s.String())
	return shutdown(g, cfg.ShutdownTimeout, log)
}

// shutdown stops g within timeout (config shutdown_timeout) and returns the
// exit status: 1, with the reason logged, when it had to give up (a store
// that does not close, say, on a vanished disk) or left the stores open
// because their disk was failing. Giving up loses nothing
// acknowledged: every consent change was fsynced before it was confirmed
// (see gateway.Shutdown).
func shutdown(g *gateway.Gateway, timeout time.Duration, log *slog.Logger) int {
	ctx, cancel := context.WithTimeoutCause(context.Background(), timeout,
		fmt.Errorf("shutdown_timeout %s reached", timeout))
	defer cancel()
	err := g.Shutdown(ctx)
	switch {
	case errors.Is(err, gateway.ErrShutdownTimeout):
		log.Error("shutdown timed out; exiting with status 1", "err", err)
		return 1
	case errors.Is(err, gateway.ErrStoresNotClosed):
		log.Error("shutdown left the stores open on a failing disk; exiting with status 1", "err", err)
		return 1
	case err != nil:
		log.Warn("shutdown", "err", err)
	}
	log.Info("optgate stopped")
	return 0
}
