package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is the NATS server embedded in an optgate node: JetStream on with
// its file store in EmbeddedConfig.StoreDir, every write synced before it
// is acknowledged (SyncAlways), a route listener and the peers' routes.
type Server struct {
	ns  *server.Server
	cfg *Config
}

// StartServer starts the embedded server of cfg (after SetDefaults and
// Validate) and waits until it accepts connections, at most cfg.StartWait.
// Accepting connections is not JetStream being ready: Connect waits for
// that. log receives the server's notices, warnings and errors.
func StartServer(cfg *Config, log *slog.Logger) (*Server, error) {
	if cfg.Embedded == nil {
		return nil, errors.New("cluster: no embedded server configured")
	}
	opts, err := serverOptions(cfg)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded NATS server: %w", err)
	}
	if log != nil {
		ns.SetLoggerV2(&serverLog{log: log.With("component", "nats")}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(cfg.StartWait) {
		ns.Shutdown()
		return nil, fmt.Errorf("cluster: embedded NATS server not listening after %v (client %s, cluster %s)",
			cfg.StartWait, cfg.Embedded.Listen, cfg.Embedded.ClusterListen)
	}
	return &Server{ns: ns, cfg: cfg}, nil
}

func serverOptions(cfg *Config) (*server.Options, error) {
	e := cfg.Embedded
	host, port, err := splitListen(e.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded.listen: %w", err)
	}
	chost, cport, err := splitListen(e.ClusterListen)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded.cluster_listen: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.Node,
		Host:       host,
		Port:       port,
		NoSigs:     true,
		JetStream:  true,
		StoreDir:   e.StoreDir,
		// Consent writes are durable before anyone is told they are
		// stored: fsync every write (the default is every 2 minutes).
		SyncAlways: true,
		Cluster: server.ClusterOpts{
			Name: e.ClusterName,
			Host: chost,
			Port: cport,
		},
	}
	if e.Auth.User != "" {
		opts.Username, opts.Password = e.Auth.User, e.Auth.Password
		opts.Cluster.Username, opts.Cluster.Password = e.Auth.User, e.Auth.Password
	}
	for _, r := range e.Routes {
		hp := hostPort(r)
		if hp == hostPort(e.ClusterListen) {
			continue // this node
		}
		u := &url.URL{Scheme: "nats-route", Host: hp}
		if e.Auth.User != "" {
			u.User = url.UserPassword(e.Auth.User, e.Auth.Password)
		}
		opts.Routes = append(opts.Routes, u)
	}
	if e.TLS.Cert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: e.TLS.Cert, KeyFile: e.TLS.Key, CaFile: e.TLS.CA})
		if err != nil {
			return nil, fmt.Errorf("cluster: embedded.tls: %w", err)
		}
		opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 2
		// Routes verify strictly both ways, as nats-server's own cluster
		// tls block does: each side is client and server, one CA for both.
		rc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: e.TLS.Cert, KeyFile: e.TLS.Key, CaFile: e.TLS.CA, Verify: true})
		if err != nil {
			return nil, fmt.Errorf("cluster: embedded.tls: %w", err)
		}
		if rc.ClientCAs != nil {
			rc.RootCAs = rc.ClientCAs
		}
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = rc, 2
	}
	return opts, nil
}

// splitListen parses host:port; port 0 asks the server for a free port.
func splitListen(s string) (string, int, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if n == 0 {
		n = server.RANDOM_PORT
	}
	return h, n, nil
}

// ClientURL is the address clients reach this server on.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// ClusterAddr is the route listener's address (its real port when the
// configuration asked for port 0).
func (s *Server) ClusterAddr() string {
	if a := s.ns.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Peers is the number of peer servers this server has routes to now. A
// peer process that dies closes its routes at once (on one host, or with a
// TCP reset), so this sees a cut-off before JetStream's own view does
// (which marks a silent replica offline after 10 s).
func (s *Server) Peers() int { return s.ns.NumRemotes() }

// Shutdown stops the server gracefully: a stream leader hands leadership
// over first (tens of milliseconds instead of seconds of election).
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// serverLog adapts the server's logger to slog; debug and trace are off.
type serverLog struct{ log *slog.Logger }

func (l *serverLog) Noticef(format string, v ...any) { l.log.Info(trimf(format, v)) }
func (l *serverLog) Warnf(format string, v ...any)   { l.log.Warn(trimf(format, v)) }
func (l *serverLog) Fatalf(format string, v ...any)  { l.log.Error(trimf(format, v)) }
func (l *serverLog) Errorf(format string, v ...any)  { l.log.Error(trimf(format, v)) }
func (l *serverLog) Debugf(format string, v ...any)  {}
func (l *serverLog) Tracef(format string, v ...any)  {}

func trimf(format string, v []any) string {
	return strings.TrimSpace(fmt.Sprintf(format, v...))
}
