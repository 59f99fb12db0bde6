// Command optgate-bench is optgate's load and benchmark harness.
//
//	optgate-bench smsc [flags]            a standalone SMSC simulator
//	optgate-bench load [flags]            a load generator (SMPP or HTTP)
//	optgate-bench relay [flags]           the null SMPP relay alone
//	optgate-bench run SCENARIO [flags]    simulator + optgate + load, with a report
//	optgate-bench scenarios               list the scenarios
//	optgate-bench chart REPORT.json [-o OUT.png]   redraw a stored report's chart
//
// Everything runs on 127.0.0.1. Each subcommand's -h lists its flags.
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
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/optgate/optgate/bench"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // the run could not be done
	exitUsage   = 2 // bad command line
	exitMissed  = 3 // -strict and a goal was missed
	exitTimeout = 4 // hard timeout reached

	exitInterrupted = 130 // SIGINT or SIGTERM
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: optgate-bench COMMAND [flags]

commands:
  smsc       run a standalone SMSC simulator (latency, receipts, MOs, throttling)
  load       run a load generator against an SMPP or HTTP endpoint
  relay      run the null SMPP relay (passthrough's hop) on its own
  run        run a scenario end to end: optgate-bench run SCENARIO [flags]
  scenarios  list the scenarios
  chart      redraw the chart of a stored report: optgate-bench chart REPORT.json [-o OUT.png]

Run "optgate-bench COMMAND -h" for a command's flags.
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "smsc":
		return cmdSMSC(ctx, args[1:], stdout, stderr)
	case "load":
		return cmdLoad(ctx, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "relay":
		return cmdRelay(ctx, args[1:], stdout, stderr)
	case "scenarios":
		for _, s := range bench.Scenarios {
			fmt.Fprintf(stdout, "%-14s %s\n", s.Name, s.Doc)
		}
		return exitOK
	case "chart":
		return cmdChart(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "optgate-bench: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	lvl := slog.LevelWarn
	if verbose {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// parse parses flags, allowing positional arguments before and between
// flags; it returns the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func fail(stderr io.Writer, err error) int {
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "optgate-bench: interrupted; every process it started was stopped")
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "optgate-bench: %v\n", err)
	if errors.Is(err, context.DeadlineExceeded) {
		return exitTimeout
	}
	return exitFailed
}

func cmdSMSC(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("smsc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:2776", "listen address (loopback only)")
	sysID := fs.String("system-id", "", "require this system_id (default: accept any)")
	pw := fs.String("password", "", "require this password (default: accept any)")
	lat := fs.String("latency", "", "submit_sm_resp latency: fixed:1ms, uniform:0.5ms-2ms, lognormal:1ms,0.5, exp:1ms, mix:80@fixed:10ms|20@fixed:100ms")
	receipts := fs.Bool("receipts", false, "send a delivery receipt for every submit that asks for one")
	rdelay := fs.Duration("receipt-delay", 0, "delay before each receipt")
	throttle := fs.Int("throttle-every", 0, "answer every Nth submit with ESME_RTHROTTLED (0: never)")
	moRate := fs.Float64("mo-rate", 0, "MOs a second to the bound ESMEs (0: none)")
	moMix := fs.String("mo-mix", "", `MO texts and weights "TEXT:W,TEXT:W" (default: STOP, ARRET, STOPP, ARRÊT, START, HELP, AIDE and ordinary replies)`)
	moHandsets := fs.Int("mo-handsets", 100000, "handset pool size the MOs come from")
	moTo := fs.String("mo-to", bench.OurNumber, "our number the MOs are sent to")
	moAcct := fs.String("mo-account", "", "system_id whose receivers get the MOs (default: any bound receiver)")
	moDelay := fs.Duration("mo-delay", 2*time.Second, "wait this long after start before sending MOs")
	dur := fs.Duration("duration", time.Hour, "stop after this long (bounded; Ctrl-C stops earlier)")
	verbose := fs.Bool("v", false, "debug logging")
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	if err := loopbackOnly(*listen); err != nil {
		fmt.Fprintf(stderr, "optgate-bench smsc: %v\n", err)
		return exitUsage
	}
	if *dur <= 0 {
		fmt.Fprintln(stderr, "optgate-bench smsc: -duration must be positive")
		return exitUsage
	}
	var mix []bench.MOText
	if *moMix != "" {
		var err error
		if mix, err = bench.ParseMOMix(*moMix); err != nil {
			fmt.Fprintf(stderr, "optgate-bench smsc: %v\n", err)
			return exitUsage
		}
	}
	if _, err := bench.ParseLatency(*lat); err != nil {
		fmt.Fprintf(stderr, "optgate-bench smsc: %v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, *verbose)
	sim, err := bench.StartSim(bench.SimConfig{Addr: *listen, SystemID: *sysID, Password: *pw, Latency: *lat,
		Receipts: *receipts, ReceiptDelay: *rdelay, ThrottleEvery: *throttle, Logger: log})
	if err != nil {
		return fail(stderr, err)
	}
	defer sim.Close()
	fmt.Fprintf(stdout, "SMSC simulator on %s (latency %q, receipts %v, throttle-every %d)\n", sim.Addr(), *lat, *receipts, *throttle)
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	var mo *bench.MOGen
	if *moRate > 0 {
		select {
		case <-time.After(*moDelay):
		case <-ctx.Done():
		}
		if ctx.Err() == nil {
			mo, err = sim.StartMO(ctx, bench.MOConfig{Account: *moAcct, Rate: *moRate, Mix: mix, Handsets: *moHandsets,
				To: *moTo, Duration: *dur})
			if err != nil {
				return fail(stderr, err)
			}
			defer mo.Stop()
		}
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var ps, pr, pc, pm int64
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintf(stdout, "stopping: %d submits, %d receipts acked, %d throttled, %d confirmations\n",
				sim.Submits(), sim.Receipts(), sim.Throttled(), sim.Confirmations())
			return exitOK
		case <-t.C:
		}
		s, r, c := sim.Submits(), sim.Receipts(), sim.Confirmations()
		var m int64
		if mo != nil {
			m = mo.Acked.Load()
		}
		fmt.Fprintf(stdout, "binds %d  submits %d/s  receipts %d/s  replies-to-handsets %d/s  MO acked %d/s  (total submits %d)\n",
			sim.Bound(), s-ps, r-pr, c-pc, m-pm, s)
		ps, pr, pc, pm = s, r, c, m
	}
}

func cmdRelay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:2777", "listen address (loopback only)")
	upstream := fs.String("upstream", "127.0.0.1:2776", "SMSC (or gateway) the frames are copied to (loopback only)")
	dur := fs.Duration("duration", time.Hour, "stop after this long (bounded; Ctrl-C stops earlier)")
	verbose := fs.Bool("v", false, "debug logging")
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	for _, a := range []string{*listen, *upstream} {
		if err := loopbackOnly(a); err != nil {
			fmt.Fprintf(stderr, "optgate-bench relay: %v\n", err)
			return exitUsage
		}
	}
	if *dur <= 0 {
		fmt.Fprintln(stderr, "optgate-bench relay: -duration must be positive")
		return exitUsage
	}
	r, err := bench.StartRelay(*listen, *upstream, newLogger(stderr, *verbose))
	if err != nil {
		return fail(stderr, err)
	}
	defer r.Close()
	fmt.Fprintf(stdout, "null relay on %s → %s\n", r.Addr(), *upstream)
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	<-ctx.Done()
	up, down := r.Frames()
	fmt.Fprintf(stdout, "stopping: %d frames up, %d down\n", up, down)
	return exitOK
}

// loopbackOnly refuses addresses that are not on 127.0.0.1 / ::1 /
// localhost: the harness never sends traffic anywhere else.
func loopbackOnly(addr string) error {
	host := addr
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		host = addr[:i]
	}
	host = strings.Trim(host, "[]")
	switch {
	case host == "localhost", host == "::1", strings.HasPrefix(host, "127."):
		return nil
	}
	return fmt.Errorf("address %q is not on loopback (127.0.0.1)", addr)
}

func cmdLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	proto := fs.String("proto", "smpp", "smpp or http")
	addr := fs.String("addr", "127.0.0.1:2775", "SMPP address (gateway, relay or simulator)")
	sysID := fs.String("system-id", "bench", "SMPP system_id")
	pw := fs.String("password", "benchpw", "SMPP password")
	binds := fs.Int("binds", 4, "SMPP transceiver binds")
	window := fs.Int("window", 256, "SMPP submits in flight per bind")
	rate := fs.Float64("rate", 0, "target msgs/s (0: as fast as possible)")
	dur := fs.Duration("duration", 10*time.Second, "send for this long (0: only -count)")
	count := fs.Int64("count", 0, "send this many (0: only -duration)")
	receipts := fs.Bool("receipts", false, "ask for delivery receipts and count them")
	supp := fs.Int("suppressed", 0, "size of the suppressed pool (numbers opted out beforehand)")
	frac := fs.Float64("suppressed-fraction", 0, "fraction of messages sent to suppressed numbers")
	via := fs.String("suppress-via", "", "opt the pool out first: import or api (needs -http and -admin-token); empty: already done")
	httpAddr := fs.String("http", "", "gateway HTTP API address (for -proto http and -suppress-via)")
	token := fs.String("token", "", "tenant API token (for -proto http)")
	admin := fs.String("admin-token", "", "operator token (for -suppress-via)")
	tenant := fs.String("tenant", "bench", "tenant of the suppressions")
	conc := fs.Int("concurrency", 256, "HTTP requests in flight")
	results := fs.String("results", "", "also write report.json, summary.txt and chart.png here")
	verbose := fs.Bool("v", false, "debug logging")
	if _, err := parse(fs, args); err != nil {
		return exitUsage
	}
	if *dur <= 0 && *count <= 0 {
		fmt.Fprintln(stderr, "optgate-bench load: set -duration or -count")
		return exitUsage
	}
	if *dur > time.Hour {
		fmt.Fprintln(stderr, "optgate-bench load: -duration is capped at 1h")
		return exitUsage
	}
	target := *addr
	if *proto == "http" {
		target = *httpAddr
	} else if *proto != "smpp" {
		fmt.Fprintf(stderr, "optgate-bench load: -proto %q: want smpp or http\n", *proto)
		return exitUsage
	}
	if err := loopbackOnly(target); err != nil {
		fmt.Fprintf(stderr, "optgate-bench load: %v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, *verbose)
	// A hard bound: the run, plus drain, plus set-up.
	bound := *dur + 2*time.Minute
	if *dur <= 0 {
		bound = time.Hour
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if *via != "" {
		if *httpAddr == "" || *admin == "" {
			fmt.Fprintln(stderr, "optgate-bench load: -suppress-via needs -http and -admin-token")
			return exitUsage
		}
		g := &bench.Gateway{Kind: "external", HTTPAddr: *httpAddr, AdminToken: *admin, Tenant: *tenant}
		d, err := bench.PreloadSuppressed(ctx, g, nil, *supp, *via)
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "preloaded %d suppressed numbers in %.1fs\n", *supp, d.Seconds())
	}
	var l bench.Loader
	var err error
	if *proto == "http" {
		l, err = bench.StartHTTPLoad(bench.HTTPLoadConfig{Kind: bench.HTTPOptgate, Addr: *httpAddr, Token: *token,
			Concurrency: *conc, Rate: *rate, Duration: *dur, Count: *count, Suppressed: *supp, SuppressedFraction: *frac, Logger: log})
	} else {
		l, err = bench.StartLoad(ctx, bench.LoadConfig{Addr: *addr, SystemID: *sysID, Password: *pw, Binds: *binds, Window: *window,
			Rate: *rate, Duration: *dur, Count: *count, Receipts: *receipts, Suppressed: *supp, SuppressedFraction: *frac, Logger: log})
	}
	if err != nil {
		return fail(stderr, err)
	}
	rep, err := bench.MeasureLoad(ctx, "load", "load → "+target, l, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "optgate-bench load: %v\n", err)
	}
	rep.WriteSummary(stdout)
	if *results != "" {
		if werr := rep.WriteFiles(*results); werr != nil {
			return fail(stderr, werr)
		}
		fmt.Fprintf(stdout, "results in %s\n", *results)
	}
	if err != nil {
		return exitFailed
	}
	return exitOK
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: optgate-bench run SCENARIO [flags]\n\nscenarios:")
		for _, s := range bench.Scenarios {
			fmt.Fprintf(stderr, "  %-14s %s\n", s.Name, s.Doc)
		}
		fmt.Fprintln(stderr, "\nflags:")
		fs.PrintDefaults()
	}
	var c bench.RunConfig
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "load time of the main phase")
	fs.DurationVar(&c.Timeout, "timeout", 0, "hard bound on the whole run (default 3×duration + 3m)")
	fs.IntVar(&c.Suppressed, "suppressed", 1_000_000, "suppressed entries preloaded into optgate (e.g. 10000000); 0: none")
	fs.Float64Var(&c.SuppressedFraction, "suppressed-fraction", 0.1, "fraction of MT sent to suppressed numbers")
	fs.StringVar(&c.SuppressVia, "suppress-via", "import", "how to preload: import (CSV), api (one opt-out call each), mo (STOP MOs)")
	fs.StringVar(&c.Proto, "proto", "smpp", "load to optgate over smpp, or http (POST /v1/messages)")
	fs.IntVar(&c.Concurrency, "concurrency", 256, "HTTP requests in flight with -proto http")
	fs.IntVar(&c.Binds, "binds", 4, "load binds to the gateway")
	fs.IntVar(&c.Window, "window", 256, "load window per bind")
	fs.Float64Var(&c.Rate, "rate", 0, "target msgs/s (0: as fast as possible; latency: 50% of the measured maximum)")
	fs.StringVar(&c.SimLatency, "sim-latency", "", "simulator submit latency (see smsc -latency)")
	fs.IntVar(&c.ThrottleEvery, "throttle-every", 0, "simulator answers every Nth submit with ESME_RTHROTTLED")
	fs.IntVar(&c.MOWindow, "mo-window", 512, "MOs in flight (mo-storm, mixed)")
	fs.Float64Var(&c.MORate, "mo-rate", 1000, "MOs a second (mixed)")
	fs.StringVar(&c.Gateway, "gateway", "optgate", "optgate, or passthrough (a stub: the null relay, no consent check)")
	fs.StringVar(&c.Optgate, "optgate", "", "optgate binary (default: beside this binary, on PATH, or built from the module)")
	relayMode := fs.String("relay", "process", "passthrough's null relay: process (its own, as optgate) or inproc (in the harness)")
	fs.StringVar(&c.GatewaySMPP, "gateway-smpp", "", "use a gateway already running at this SMPP address")
	fs.StringVar(&c.GatewayHTTP, "gateway-http", "", "its HTTP API address")
	fs.IntVar(&c.SMSCBinds, "smsc-binds", 4, "optgate's (and Kannel's) binds to the simulator")
	fs.IntVar(&c.SMSCWindow, "smsc-window", 1024, "optgate's window per SMSC bind")
	fs.BoolVar(&c.Baseline, "baseline", true, "mt-throughput: measure the passthrough ceiling first")
	fs.IntVar(&c.KannelConcurrency, "kannel-concurrency", 128, "HTTP requests in flight to Kannel's smsbox")
	fs.IntVar(&c.ClusterSTOPs, "stops", 1000, "cluster: STOPs timed idle, and again under MT load")
	fs.BoolVar(&c.NoInstall, "no-install", false, "kannel: fail instead of apt-get install kannel")
	fs.IntVar(&c.ProfileSeconds, "profile", 0, "capture optgate's CPU profile for N seconds during the main phase")
	fs.StringVar(&c.Results, "results", "", "results folder (default ./results/SCENARIO-TIMESTAMP)")
	fs.BoolVar(&c.KeepTemp, "keep", false, "keep the temp folder (configs, stores, logs)")
	strict := fs.Bool("strict", false, "exit 3 when a goal is missed")
	cpuprof := fs.String("cpuprofile", "", "write the harness's own CPU profile here")
	verbose := fs.Bool("v", false, "debug logging")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	c.Scenario = pos[0]
	switch *relayMode {
	case "process":
		exe, err := os.Executable()
		if err != nil {
			return fail(stderr, fmt.Errorf("cannot find this binary to run the relay: %w", err))
		}
		c.RelayBin = exe
	case "inproc":
	default:
		fmt.Fprintf(stderr, "optgate-bench run: -relay %q: want process or inproc\n", *relayMode)
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// mo-storm and passthrough send no MT to suppressed numbers: preload
	// only when asked.
	if !set["suppressed"] && (c.Scenario == "mo-storm" || c.Scenario == "passthrough") {
		c.Suppressed = 0
	}
	// cluster preloads twice (one node, then the cluster, which
	// replicates every entry to three disks): a smaller pool by default.
	if !set["suppressed"] && c.Scenario == "cluster" {
		c.Suppressed = 100_000
	}
	if c.Suppressed == 0 {
		c.NoSuppressed = true
	}
	for _, a := range []string{c.GatewaySMPP, c.GatewayHTTP} {
		if a != "" {
			if err := loopbackOnly(a); err != nil {
				fmt.Fprintf(stderr, "optgate-bench run: %v\n", err)
				return exitUsage
			}
		}
	}
	if c.Results == "" {
		c.Results = filepath.Join("results", c.Scenario+"-"+time.Now().Format("20060102-150405"))
	}
	c.Progress = stdout
	c.Logger = newLogger(stderr, *verbose)
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return fail(stderr, err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail(stderr, err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := bench.Run(ctx, c)
	if rep == nil {
		fmt.Fprintf(stderr, "optgate-bench run: %v\n", err)
		var ce *bench.ConfigError
		if errors.As(err, &ce) {
			return exitUsage
		}
		return exitFailed
	}
	fmt.Fprintln(stdout)
	rep.WriteSummary(stdout)
	if werr := rep.WriteFiles(c.Results); werr != nil {
		fmt.Fprintf(stderr, "optgate-bench run: writing results: %v\n", werr)
	} else {
		fmt.Fprintf(stdout, "results in %s\n", c.Results)
	}
	if err != nil {
		return fail(stderr, err)
	}
	if *strict && !rep.GoalsMet() {
		return exitMissed
	}
	return exitOK
}

// cmdChart redraws the chart of a stored report (REPORT.json gives
// REPORT.png unless -o names another file) without running anything.
func cmdChart(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "PNG to write (default: the report's path with .png instead of .json)")
	pos, err := parse(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "usage: optgate-bench chart REPORT.json [-o OUT.png]")
		return exitUsage
	}
	dst := *out
	if dst == "" {
		dst = strings.TrimSuffix(pos[0], ".json") + ".png"
	}
	if err := bench.ChartFromFile(pos[0], dst); err != nil {
		fmt.Fprintln(stderr, "optgate-bench chart:", err)
		return exitFailed
	}
	fmt.Fprintln(stdout, dst)
	return exitOK
}
