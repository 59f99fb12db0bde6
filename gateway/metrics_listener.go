package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// startMetricsListener serves /metrics, and /debug/pprof when
// metrics.pprof is on, on metrics.listen: an address meant to be reachable
// only by the monitoring system, so it asks for no token. When
// metrics.listen is set the API port no longer answers /metrics, so the
// public API and webhook port exposes nothing about the process.
func (g *Gateway) startMetricsListener() error {
	if g.cfg.Metrics.Listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", g.cfg.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("metrics: listen %s: %w", g.cfg.Metrics.Listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g.gatherer, promhttp.HandlerOpts{}))
	if g.cfg.Metrics.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	g.metricsLn = ln
	g.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		if err := g.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}

func (g *Gateway) stopMetricsListener(ctx context.Context) {
	if g.metricsSrv == nil {
		return
	}
	if err := g.metricsSrv.Shutdown(ctx); err != nil {
		g.metricsSrv.Close()
	}
}

// MetricsAddr returns the metrics listener's address ("" when
// metrics.listen is not set).
func (g *Gateway) MetricsAddr() string {
	if g.metricsLn == nil {
		return ""
	}
	return g.metricsLn.Addr().String()
}
