package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// subjectPrefix starts every consent subject: optgate.consent.<tenant>.<shard>.
const subjectPrefix = "optgate.consent."

// Options are what Connect takes besides the configuration.
type Options struct {
	// Logger receives connection events; default slog.Default().
	Logger *slog.Logger
	// Registerer, when set, receives the cluster's collectors (metrics.go).
	Registerer prometheus.Registerer
}

// Conn is a node's connection to the cluster with the consent stream
// created. Log and Follow use it; Close closes it.
type Conn struct {
	cfg     *Config
	srv     *Server // nil with an external cluster
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	metrics *metrics
	claims  claims // receipt claims (claim.go)
}

// Connect connects to srv (the embedded server, through an in-process
// pipe) or, when srv is nil, to cfg.NATS.URLs, then creates or updates the
// consent stream. A server that accepts connections may not have a
// JetStream meta leader yet (about 0.6 s after a cluster forms here), so
// stream creation is retried with short timeouts until it succeeds or
// cfg.StartWait (or ctx) ends.
func Connect(ctx context.Context, cfg *Config, srv *Server, o Options) (*Conn, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	log := o.Logger.With("component", "cluster", "node", cfg.Node)
	ctx, cancel := context.WithTimeout(ctx, cfg.StartWait)
	defer cancel()
	url, opts := natsOptions(cfg, srv, log)
	var nc *nats.Conn
	err := retry(ctx, func() (err error) {
		nc, err = nats.Connect(url, opts...)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to %s: %w", url, err)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		nc.Close()
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: jetstream: %w", err)
	}
	c := &Conn{cfg: cfg, srv: srv, nc: nc, js: js, log: log, metrics: m}
	err = retry(ctx, func() error {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := js.CreateOrUpdateStream(actx, streamConfig(cfg))
		return err
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: stream %s (R%d) not ready within %v: %w", cfg.Stream, cfg.Replicas, cfg.StartWait, err)
	}
	return c, nil
}

// retry calls f until it succeeds or ctx ends, pausing 100 ms between
// attempts; it returns f's last error.
func retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func natsOptions(cfg *Config, srv *Server, log *slog.Logger) (string, []nats.Option) {
	opts := []nats.Option{
		nats.Name("optgate " + cfg.Node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.Timeout(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: closed on purpose
				log.Warn("cluster: disconnected from NATS", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("cluster: reconnected to NATS", "server", nc.ConnectedServerName())
		}),
	}
	if srv != nil {
		e := cfg.Embedded
		if e.Auth.User != "" {
			opts = append(opts, nats.UserInfo(e.Auth.User, e.Auth.Password))
		}
		// An in-process pipe needs no TLS (the server does not ask for it).
		opts = append(opts, nats.InProcessServer(srv.ns))
		return strings.Replace(srv.ClientURL(), "tls://", "nats://", 1), opts
	}
	n := cfg.NATS
	if n.Credentials != "" {
		opts = append(opts, nats.UserCredentials(n.Credentials))
	}
	if n.TLS.CA != "" {
		opts = append(opts, nats.RootCAs(n.TLS.CA))
	}
	if n.TLS.Cert != "" {
		opts = append(opts, nats.ClientCert(n.TLS.Cert, n.TLS.Key))
	}
	return strings.Join(n.URLs, ","), opts
}

// streamConfig is the consent stream: file storage, Replicas from the
// configuration, no limits (the log is the truth until snapshots exist),
// deletes and purges refused, a 2-minute window for Nats-Msg-Id
// de-duplication.
func streamConfig(cfg *Config) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "optgate consent log: every consent change, in order",
		Subjects:    []string{subjectPrefix + "*.*"},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		Duplicates:  2 * time.Minute,
		MaxMsgSize:  maxRecordSize,
		DenyDelete:  true,
		DenyPurge:   true,
	}
}

// Close closes the connection; Log and Follower stop working.
func (c *Conn) Close() {
	c.nc.Close()
}

// errClosed is returned by Append on a closed connection.
var errClosed = fmt.Errorf("%w: connection closed", ErrNotAcknowledged)
