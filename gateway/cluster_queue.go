package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/optgate/optgate/cluster"
	"github.com/optgate/optgate/gateway/outbox"
	"github.com/optgate/optgate/smpp"
)

// Several nodes: queued MT ("mt", ack: store) and spooled deliver_sm
// ("deliver": MOs and receipts for an upstream ESME not bound on the node
// that has them) go to the cluster's work queue (cluster/queue.go) instead
// of this node's outbox, so that any node sends them: one where an SMSC
// link is up, one where the ESME is bound. Webhook events stay in each
// node's outbox (see doc.go, "Several nodes").
//
// Items a node's outbox already holds when it starts clustered (written
// when it ran alone, or before it joined) are moved into the work queue by
// the outbox itself: in cluster mode its "mt" and "deliver" kinds deliver
// an item by putting it, same id and creation time, into the work queue.

// errWorkNotOpen is a move attempted before the work queue is open; the
// outbox retries it.
var errWorkNotOpen = errors.New("gateway: cluster work queue not open yet")

// putWork stores an item of a kind that the cluster shares ("mt",
// "deliver"): in the work queue when clustered, else in the outbox.
//
// A deliver_sm the work queue did not acknowledge (no stream leader for a
// few seconds after a node died) is kept in this node's outbox instead,
// synced as on a single node, which moves it into the work queue once the
// stream takes it: an SMSC's retry of a receipt would no longer find its
// message, and a receipt of ours has nobody to retry it. A queued MT is
// refused instead (ESME_RX_T_APPN: the ESME retries), so that every one
// acknowledged is held by a quorum.
func (g *Gateway) putWork(it *outbox.Item) error {
	if g.work == nil {
		return g.outbox.Put(it)
	}
	err := g.work.Put(it)
	if err == nil || it.Kind != "deliver" {
		return err
	}
	g.log.Warn("work queue did not take a deliver_sm; kept on this node until it does", "account", it.Account, "err", err)
	return g.outbox.Put(it)
}

// registerWork registers kind k in the outbox on a single node. In a
// cluster it keeps k for the work queue (joinWork) and registers in the
// outbox a kind of the same name that moves its items there.
func (g *Gateway) registerWork(k outbox.Kind) {
	if g.cfg.Cluster == nil {
		g.outbox.Register(k)
		return
	}
	g.workKinds = append(g.workKinds, k)
	g.outbox.Register(outbox.Kind{Name: k.Name, Deliver: g.moveToWork, Workers: 2, MaxBackoff: g.cfg.Cluster.StartWait,
		Depth: k.Depth})
}

// moveToWork is the outbox handler of a shared kind in a cluster: the
// item goes to the work queue unchanged (same id: a move retried after
// a crash within 2 minutes is stored once; later, it is delivered again,
// at least once).
func (g *Gateway) moveToWork(_ context.Context, it *outbox.Item) error {
	if g.work == nil {
		return errWorkNotOpen
	}
	return g.work.Put(it)
}

// joinWork opens the work queue and registers the shared kinds
// (joinCluster); from then on putWork puts there.
func (g *Gateway) joinWork(ctx context.Context) error {
	q, err := g.clusterConn.Queue(ctx)
	if err != nil {
		return err
	}
	for _, k := range g.workKinds {
		if k.Name == "deliver" {
			k.Deliver = g.deliverSpooledHere
		}
		q.Register(k)
	}
	g.work = q
	return nil
}

// startWork starts taking work queue items (Start, once the SMSC links
// are started).
func (g *Gateway) startWork() {
	if g.work != nil {
		g.work.Start()
	}
}

// deliverSpooledHere delivers a spooled deliver_sm if its ESME is bound on
// this node; if not, it says so at once (cluster.Elsewhere), and the work
// queue hands the item to another node soon.
func (g *Gateway) deliverSpooledHere(ctx context.Context, it *outbox.Item) error {
	err := g.deliverSpooled(ctx, it)
	if errors.Is(err, smpp.ErrNotBound) {
		return cluster.Elsewhere(fmt.Errorf("account %s: %w on node %s", it.Account, err, g.cfg.Cluster.Node))
	}
	return err
}

// closeWork stops taking work queue items and waits for those under way
// (before the SMSC links and the stores close).
func (g *Gateway) closeWork() {
	if g.work != nil {
		g.work.Close()
	}
}
