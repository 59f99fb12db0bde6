package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/optgate/optgate/cluster"
	"github.com/optgate/optgate/consent"
)

// Several nodes (the cluster: section; see doc.go, "Several nodes"): the
// consent store appends every committed change to the replicated log
// through clusterLog, and the follower applies the log to the consent
// store; the MT chain's screen stage refuses while the follower is not
// current.

// ErrClusterStale is the error of a message refused because this node
// cannot prove its consent replica is within cluster.max_lag of the log
// (feed down, out of quorum, lagging or not caught up yet).
var ErrClusterStale = errors.New("gateway: this node's consent replica is not current (cluster lag, feed or quorum); retry later")

// errClusterNotConnected answers an Append before Start connected.
var errClusterNotConnected = errors.New("gateway: cluster not connected yet")

// clusterLog is consent's Replicator over the cluster connection, which
// Start sets (consent is opened by New, before the cluster has formed).
type clusterLog struct {
	conn atomic.Pointer[cluster.Conn]
}

// Append appends recs to the consent log and returns, once a quorum holds
// every one, their log sequences. The tenant's subject token has '.' (allowed in tenant ids,
// not in subject tokens) as '_': it only picks the shard, the record's
// keys carry the tenant itself.
func (l *clusterLog) Append(ctx context.Context, recs []consent.Replica) ([]uint64, error) {
	c := l.conn.Load()
	if c == nil {
		return nil, errClusterNotConnected
	}
	rs := make([]cluster.Record, len(recs))
	for i, r := range recs {
		rs[i] = cluster.Record{Tenant: strings.ReplaceAll(r.Tenant, ".", "_"), Key: r.Key, Data: r.Data}
	}
	return c.Log().AppendSeq(ctx, rs...)
}

// startClusterServer starts the embedded NATS server of cluster.embedded
// (New: its listeners fail fast on a taken port). Without a cluster:
// section it does nothing.
func (g *Gateway) startClusterServer() error {
	c := g.cfg.Cluster
	if c == nil {
		return nil
	}
	c.SetDefaults(g.cfg.Store.Dir)
	if err := c.Validate(); err != nil {
		return err
	}
	g.clusterLog = &clusterLog{}
	if c.Embedded == nil {
		return nil
	}
	srv, err := cluster.StartServer(c, g.log.With("component", "nats"))
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	g.clusterSrv = srv
	return nil
}

// joinCluster connects to the cluster (waiting, at most
// cluster.start_wait, for JetStream and the consent stream), then follows
// the consent log from the consent store's applied sequence and returns
// once it has caught up, so that /readyz turns true only on a current
// node.
func (g *Gateway) joinCluster() error {
	c := g.cfg.Cluster
	if c == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.StartWait)
	defer cancel()
	conn, err := cluster.Connect(ctx, c, g.clusterSrv, cluster.Options{Logger: g.log, Registerer: g.reg})
	if err != nil {
		return err
	}
	g.clusterConn = conn
	g.clusterLog.conn.Store(conn)
	from := g.consent.AppliedSeq()
	start := time.Now()
	f, err := conn.FollowBatch(ctx, from, func(first uint64, recs []cluster.Record) error {
		datas := make([][]byte, len(recs))
		for i := range recs {
			datas[i] = recs[i].Data
		}
		return g.consent.ApplyReplicatedBatch(first, datas)
	})
	if err != nil {
		return fmt.Errorf("cluster: following the consent log from %d: %w", from, err)
	}
	g.follower = f
	if err := conn.ServeClaims(g.serveReceiptClaim); err != nil { // cluster_receipt.go
		return fmt.Errorf("cluster: serving receipt claims: %w", err)
	}
	if err := g.joinShared(ctx); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := g.joinWork(ctx); err != nil {
		return err
	}
	g.log.Info("cluster joined", "node", c.Node, "applied_from", from, "applied", g.consent.AppliedSeq(),
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// replicatePending appends again the consent changes whose Append
// failed (housekeeping, every second).
func (g *Gateway) replicatePending() {
	if g.clusterLog == nil || g.consent.Pending() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Cluster.AckTimeout)
	defer cancel()
	n, err := g.consent.ReplicatePending(ctx)
	if err != nil {
		g.log.Warn("consent changes still not replicated; retrying", "pending", g.consent.Pending(), "err", err)
	} else if n > 0 {
		g.log.Info("consent changes replicated after a failed append", "changes", n, "pending", g.consent.Pending())
	}
}

// stopFollower stops applying the log and the shared facts (before the
// stores close).
func (g *Gateway) stopFollower() {
	if g.follower != nil {
		g.follower.Close()
	}
	g.shared.Close() // it writes to the gateway store too
}

// closeCluster closes the connection and stops the embedded server, after
// the stores.
func (g *Gateway) closeCluster() {
	if g.clusterConn != nil {
		g.clusterConn.Close()
	}
	if g.clusterSrv != nil {
		g.clusterSrv.Shutdown()
	}
}

// clusterProblem is why this node is not ready as a cluster member, ""
// when it is (or runs alone).
func (g *Gateway) clusterProblem() string {
	if g.cfg.Cluster == nil {
		return ""
	}
	if g.follower == nil {
		return "cluster: not joined yet"
	}
	if err := g.follower.Healthy(g.cfg.Cluster.MaxLag); err != nil {
		return err.Error()
	}
	return ""
}

// validateCluster checks the cluster: section through cluster.Config's own
// Validate, each problem at its key.
func (c *Config) validateCluster(add addFunc) {
	if c.Cluster == nil {
		return
	}
	c.Cluster.SetDefaults(c.Store.Dir)
	err := c.Cluster.Validate()
	if err == nil {
		return
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var ce *cluster.ConfigError
		if errors.As(e, &ce) {
			add("cluster."+ce.Key, "%s", ce.Msg)
		} else {
			add("cluster", "%v", e)
		}
	}
}

// clusterNode is this node's name in a cluster, "" on a single node.
func clusterNode(cfg *Config) string {
	if cfg.Cluster == nil {
		return ""
	}
	return cfg.Cluster.Node
}
