package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/smpp"
)

// Start listens and runs everything. It returns once the listeners are
// open; errors after that are logged.
func (g *Gateway) Start() error {
	var err error
	// Before anything that serves: a store already unhealthy refuses
	// writes from the first message.
	g.disk = g.newDiskGuard()
	g.disk.check()
	// Before anything that serves: a node follows the consent log and has
	// caught up before it screens its first message (cluster.go).
	if err := g.joinCluster(); err != nil {
		return err
	}
	if err := g.startSMSCSimulator(); err != nil {
		return err
	}
	if g.smppLn == nil {
		if g.smppLn, err = net.Listen("tcp", g.cfg.SMPP.Listen); err != nil {
			return fmt.Errorf("smpp: listen %s: %w", g.cfg.SMPP.Listen, err)
		}
	}
	if g.smppSrv.TLSConfig != nil {
		g.smppLn = tls.NewListener(g.smppLn, g.smppSrv.TLSConfig)
	}
	if g.httpLn == nil {
		if g.httpLn, err = net.Listen("tcp", g.cfg.HTTP.Listen); err != nil {
			g.smppLn.Close()
			return fmt.Errorf("http: listen %s: %w", g.cfg.HTTP.Listen, err)
		}
	}
	if g.httpTLS != nil {
		g.httpLn = tls.NewListener(g.httpLn, g.httpTLS)
	}
	if err := g.startMetricsListener(); err != nil {
		g.smppLn.Close()
		g.httpLn.Close()
		return err
	}
	g.outbox.Start()
	g.startLinks()
	g.startWork()
	if err := g.startWhatsApp(); err != nil {
		return err
	}
	g.bg.Add(4)
	go func() { defer g.bg.Done(); g.disk.run() }()
	go func() {
		defer g.bg.Done()
		if err := g.smppSrv.Serve(g.smppLn); err != nil && !errors.Is(err, smpp.ErrServerClosed) {
			g.log.Error("smpp server stopped", "err", err)
		}
	}()
	go func() {
		defer g.bg.Done()
		if err := g.httpSrv.Serve(g.httpLn); err != nil && !errors.Is(err, net.ErrClosed) {
			g.log.Error("http server stopped", "err", err)
		}
	}()
	go func() { defer g.bg.Done(); g.housekeeping() }()
	g.ready.Store(true)
	g.log.Info("optgate started", "smpp", g.SMPPAddr(), "http", g.HTTPAddr())
	return nil
}

// housekeeping runs the periodic chores: consent sweeps (archive events,
// held expiry), receipt parking and multipart timeouts.
func (g *Gateway) housekeeping() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	tick := 0
	for {
		select {
		case <-g.stop:
			return
		case now := <-t.C:
			for _, l := range g.links {
				used := 0
				for _, c := range l.client.Conns() {
					used += c.Window().Len()
				}
				g.metrics.windowUsed.WithLabelValues(l.name).Set(float64(used))
			}
			if n := g.receipts.ExpireParked(now); n > 0 {
				g.metrics.receipts.WithLabelValues("", "uncorrelated").Add(float64(n))
			}
			g.reasm.Expire(now)
			if tick++; tick%10 == 1 {
				g.resendPendingReplies(now)
			}
			if _, err := g.consent.Sweep(now); err != nil {
				g.log.Warn("consent sweep", "err", err)
			}
			g.replicatePending()
		}
	}
}

// onConsentEvent receives events from consent sweeps (archive, held
// expiry) and queues them for the tenant.
func (g *Gateway) onConsentEvent(ev consent.Event) error {
	t := g.tenants[ev.Tenant]
	if ev.Type == consent.EventHeldExpired && ev.Held != nil && t != nil {
		g.failHeld(t, *ev.Held, status.ReasonHeldExpired)
	}
	return g.emit(t, ev.Type, map[string]any{"channel": ev.Channel, "recipient": ev.Recipient, "sender": ev.Sender, "event_id": ev.ID})
}

// Shutdown stops ingress, drains the windows, unbinds, and syncs and
// closes the stores, and returns by ctx's deadline whatever they do. When
// ctx ends first it returns an error matching ErrShutdownTimeout that says
// which step it abandoned; that step goes on in the background and the
// caller is expected to exit.
//
// Abandoning a hung store close loses nothing acknowledged: every consent
// change and every gateway-store write was fsynced (group commit, Badger
// SyncWrites) before anyone was told it was stored; what a close adds is
// a memtable flush and compaction, which Badger redoes from its
// write-ahead log at the next open. A store whose directory vanished, for
// one, retries its memtable flush every second forever.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var err error
	g.shutOnce.Do(func() {
		var step atomic.Pointer[string]
		setStep := func(s string) { step.Store(&s) }
		setStep("stopping ingress")
		done := make(chan error, 1)
		go func() { done <- g.shutdown(ctx, setStep) }()
		select {
		case err = <-done:
		case <-ctx.Done():
			err = fmt.Errorf("%w: gave up while %s: %v", ErrShutdownTimeout, *step.Load(), context.Cause(ctx))
			g.log.Error("shutdown abandoned: exiting without waiting further; every acknowledged write was already synced",
				"step", *step.Load(), "err", context.Cause(ctx))
		}
	})
	return err
}

func (g *Gateway) shutdown(ctx context.Context, step func(string)) error {
	var err error
	g.ready.Store(false)
	g.log.Info("optgate shutting down")
	close(g.stop)
	if e := g.smppSrv.Shutdown(ctx); e != nil {
		err = errors.Join(err, e)
	}
	if e := g.httpSrv.ShutdownWithContext(ctx); e != nil {
		err = errors.Join(err, e)
	}
	// fasthttp's Shutdown closes only the listeners Serve registered:
	// right after Start, Serve may not have yet, and would then serve
	// on forever.
	if g.httpLn != nil {
		g.httpLn.Close()
	}
	g.stopMetricsListener(ctx)
	step("draining the SMSC binds")
	g.stopLinks(ctx)
	g.closeWork() // its sends under way ended with the links
	g.stopWhatsApp()
	if g.sim != nil {
		g.sim.Close()
	}
	step("waiting for background work")
	g.bg.Wait()
	if why := g.storeProblem(); why != "" {
		// diskfault.go: a close flushes the memtables to new table files,
		// which on a failed disk Badger retries for ever (a vanished
		// directory) and on a full one may die of SIGBUS (tables are
		// written through memory maps of sparse files).
		// Everything acknowledged is in the synced write-ahead logs, which
		// the next start replays.
		g.log.Error("stores left open: the disk is failing; their synced write-ahead logs are replayed at the next start", "reason", why)
		return errors.Join(err, fmt.Errorf("%w: %s", ErrStoresNotClosed, why))
	}
	step("waiting for a running backup")
	g.backupMu.Lock() // a running backup fails its next write (stop is closed) and ends
	step("closing the stores")
	g.stopFollower() // it writes to the consent store
	g.closeStores()
	step("leaving the cluster")
	g.closeCluster()
	return err
}

func (g *Gateway) closeStores() {
	g.receipts.CloseStore() // before the store: it writes what is queued
	if g.outbox != nil {
		g.outbox.Close()
	}
	g.statuses.CloseStore() // before the committer: it writes what is queued
	if g.commit != nil {
		g.commit.Close()
	}
	if g.db != nil {
		if err := g.db.Close(); err != nil {
			g.log.Error("gateway store close", "err", err)
		}
	}
	if g.consent != nil {
		if err := g.consent.Close(); err != nil {
			g.log.Error("consent store close", "err", err)
		}
	}
	g.dirLock.release()
}
