// Command optgate runs the consent-first messaging gateway.
//
//	optgate serve [-config FILE]          run the gateway
//	optgate check-config [-config FILE]   report every configuration problem, with file:line
//	optgate version                       print the version
//	optgate consent <get|history|opt-out|opt-in|import|export> ...   admin commands over the HTTP API
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/optgate/optgate/gateway"
)

// version is set with -ldflags "-X main.version=..."; else the module's.
var version = ""

const defaultConfig = "configs/optgate.yaml"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  optgate serve [-config FILE]          run the gateway (default config: configs/optgate.yaml)
  optgate check-config [-config FILE]   check a configuration and print a digest
  optgate version                       print the version
  optgate consent get RECIPIENT         show a recipient's consent
  optgate consent history RECIPIENT     show the evidence log, newest first
  optgate consent opt-out RECIPIENT     record an opt-out on the recipient's behalf
  optgate consent opt-in RECIPIENT -source S -proof REF   record express consent with evidence
  optgate consent import FILE.csv -source S [-proof REF]   import suppression entries
  optgate consent export [-evidence]    export suppression entries (or evidence) as CSV
consent commands take -url (default http://127.0.0.1:8080), -token (or $OPTGATE_ADMIN_TOKEN),
-tenant and -channel.
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "check-config":
		return checkConfig(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "optgate", versionString())
		return 0
	case "consent":
		return consentCmd(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "optgate: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}

func loadConfig(path string) (*gateway.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return gateway.ParseConfig(data, path, nil)
}

// configFlag parses -config and loads the file, printing every problem
// (after prefix) and returning the exit code when it cannot.
func configFlag(name string, args []string, stderr io.Writer, prefix string) (*gateway.Config, string, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	if err := fs.Parse(args); err != nil {
		return nil, "", 2
	}
	cfg, err := loadConfig(*path)
	if err == nil {
		return cfg, *path, 0
	}
	var ces gateway.ConfigErrors
	if errors.As(err, &ces) {
		for _, e := range ces {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stderr, "%s%d problem(s) in %s\n", prefix, len(ces), *path)
		return nil, "", 1
	}
	fmt.Fprintln(stderr, "optgate:", err)
	return nil, "", 1
}

func checkConfig(args []string, stdout, stderr io.Writer) int {
	cfg, path, code := configFlag("check-config", args, stderr, "")
	if cfg == nil {
		return code
	}
	fmt.Fprintf(stdout, "%s: ok\n%s", path, cfg.Digest())
	return 0
}

func newLogger(cfg *gateway.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(args []string, stdout, stderr io.Writer) int {
	cfg, _, code := configFlag("serve", args, stderr, "optgate: refusing to start: ")
	if cfg == nil {
		return code
	}
	log := newLogger(cfg, stderr)
	slog.SetDefault(log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g, err := gateway.New(cfg, gateway.Options{Logger: log, Registerer: reg, Gatherer: reg})
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
		fmt.Fprintf(stdout, `
optgate is running with its built-in SMSC simulator.
  SMPP (bind your ESME here): %s   (accounts in the config, e.g. acme / acmepw)
  HTTP API:                   http://%s   (GET /healthz, /readyz, /metrics)
Try the loop (tokens from the config):
  # send a message: 202 accepted
  curl -s -XPOST http://%[2]s/v1/messages -H 'Authorization: Bearer acme-dev-token' \
       -d '{"to":"+15145550100","text":"Your interview is confirmed"}'
  # the handset answers STOP through the simulator: stored, confirmed in English
  curl -s -XPOST http://%[2]s/v1/simulator/mo -H 'Authorization: Bearer acme-dev-token' \
       -d '{"from":"+15145550100","to":"+15145550199","text":"STOP"}'
  # send again: 403 {"error":{"code":"recipient_opted_out",...}} (over SMPP: submit_sm_resp 0x00000401)
  curl -s -XPOST http://%[2]s/v1/messages -H 'Authorization: Bearer acme-dev-token' \
       -d '{"to":"+15145550100","text":"Another offer"}'
  # the evidence
  curl -s http://%[2]s/v1/consent/+15145550100/history -H 'Authorization: Bearer acme-dev-token'
Stop with Ctrl-C.
`, g.SMPPAddr(), g.HTTPAddr())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
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
