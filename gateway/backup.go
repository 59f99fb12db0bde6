package gateway

import (
	"encoding/json"
	"io"
	"time"

	"github.com/optgate/optgate/backup"
	"github.com/optgate/optgate/gateway/api"
)

// BackupStores names the Badger stores under store.dir, in the order a
// backup copies them: the consent store first (see package backup).
var BackupStores = []string{"consent", "gateway"}

// BackupRequest is the body of POST /v1/admin/backup (see api.BackupRequest).
type BackupRequest = api.BackupRequest

// Backup writes an archive of every store to w while the gateway serves.
func (g *Gateway) Backup(w io.Writer, req BackupRequest, version string) (*backup.Index, error) {
	// Shutdown takes backupMu for writing before it closes the stores, and
	// a running backup's next write fails once stop is closed, so the
	// stores are never closed under a backup.
	if !g.backupMu.TryRLock() {
		return nil, errShuttingDown
	}
	defer g.backupMu.RUnlock()
	if !g.backupBusy.CompareAndSwap(false, true) {
		return nil, errBackupBusy
	}
	defer g.backupBusy.Store(false)
	select {
	case <-g.stop:
		return nil, errShuttingDown
	default:
	}
	if req.Parent != "" {
		if err := backup.CheckParent(g.cfg.Store.Dir, req.Parent); err != nil {
			return nil, err
		}
	}
	srcs := []backup.Source{{Name: BackupStores[0], DB: g.consent.BadgerDB()}, {Name: BackupStores[1], DB: g.db}}
	start := time.Now()
	idx, err := backup.Write(stopWriter{w: w, stop: g.stop}, srcs, backup.Options{Since: req.Since, Parent: req.Parent, Version: version})
	if err != nil {
		g.log.Error("backup failed", "err", err)
		return nil, err
	}
	// The next incremental backup must follow this one. (If the client
	// fails to keep this archive, its next incremental is refused and it
	// takes a full one: never a gap.)
	if err := backup.WriteHead(g.cfg.Store.Dir, idx.SHA256); err != nil {
		g.log.Error("backup taken, but its record in the data folder failed: the next incremental backup will be refused", "err", err)
	}
	attrs := []any{"kind", idx.Kind, "took", time.Since(start).Round(time.Millisecond).String()}
	for _, s := range idx.Sections {
		attrs = append(attrs, s.Store+"_bytes", s.Bytes, s.Store+"_until", s.Until)
	}
	g.log.Info("backup taken", attrs...)
	return idx, nil
}

// stopWriter fails every write once stop is closed, which ends a backup's
// stream early when the gateway shuts down.
type stopWriter struct {
	w    io.Writer
	stop chan struct{}
}

func (s stopWriter) Write(p []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, errShuttingDown
	default:
	}
	return s.w.Write(p)
}

// MarshalBackupRequest encodes the request an incremental backup after idx
// sends.
func MarshalBackupRequest(idx *backup.Index) []byte {
	if idx == nil {
		return nil
	}
	req := BackupRequest{Since: map[string]uint64{}, Parent: idx.SHA256}
	for _, s := range idx.Sections {
		req.Since[s.Store] = s.Until
	}
	b, _ := json.Marshal(req)
	return b
}
