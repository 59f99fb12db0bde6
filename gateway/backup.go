package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/backup"
)

// BackupStores names the Badger stores under store.dir, in the order a
// backup copies them: the consent store first (see package backup).
var BackupStores = []string{"consent", "gateway"}

// BackupRequest is the body of POST /v1/admin/backup: empty for a full
// backup; for an incremental one, the Until of each store in the archive it
// follows and that archive's SHA-256.
type BackupRequest struct {
	Since  map[string]uint64 `json:"since,omitempty"`
	Parent string            `json:"parent,omitempty"`
}

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

// apiBackup streams a backup archive (POST /v1/admin/backup, admin token).
// The status line goes out before the stores are read, so a failure
// half-way ends the body without the archive's trailer: the client detects
// it (backup.ErrTruncated) and keeps nothing.
func (g *Gateway) apiBackup(ctx *fasthttp.RequestCtx) {
	if !g.authAdmin(ctx) {
		return
	}
	var req BackupRequest
	if body := ctx.PostBody(); len(body) > 0 {
		if field, err := decodeStrict(body, &req); err != nil {
			writeErr(ctx, 400, "invalid_request", field, err.Error())
			return
		}
	}
	if (req.Parent == "") != (len(req.Since) == 0) {
		writeErr(ctx, 400, "invalid_request", "parent", "an incremental backup names both since and parent")
		return
	}
	if g.backupBusy.Load() {
		writeErr(ctx, 409, "backup_running", "", errBackupBusy.Error())
		return
	}
	if req.Parent != "" {
		if err := backup.CheckParent(g.cfg.Store.Dir, req.Parent); err != nil {
			writeErr(ctx, 409, "full_backup_needed", "parent", err.Error())
			return
		}
	}
	version := string(ctx.QueryArgs().Peek("version"))
	conn := ctx.Conn()
	ctx.SetContentType("application/octet-stream")
	ctx.SetStatusCode(200)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		// The server's WriteTimeout bounds a whole response; a backup may
		// take longer, so each chunk pushes the deadline on instead.
		dw := &deadlineWriter{w: w, conn: conn}
		if _, err := g.Backup(dw, req, version); err != nil {
			return // logged; the missing trailer tells the client
		}
	})
}

// deadlineWriter extends the connection's write deadline before each write.
type deadlineWriter struct {
	w    *bufio.Writer
	conn interface{ SetWriteDeadline(time.Time) error }
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	n, err := d.w.Write(p)
	if err == nil {
		err = d.w.Flush()
	}
	return n, err
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
