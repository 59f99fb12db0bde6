package api

import (
	"bufio"
	"context"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// BackupRequest is the body of POST /v1/admin/backup: empty for a full
// backup; for an incremental one, the Until of each store in the archive it
// follows and that archive's SHA-256.
type BackupRequest struct {
	Since  map[string]uint64 `json:"since,omitempty"`
	Parent string            `json:"parent,omitempty"`
}

// backup streams a backup archive (POST /v1/admin/backup, admin token).
// The status line goes out before the stores are read, so a failure
// half-way ends the body without the archive's trailer: the client detects
// it (backup.ErrTruncated) and keeps nothing.
func (s *Server) backup(ctx *fasthttp.RequestCtx, _ request) {
	var req BackupRequest
	if body := ctx.PostBody(); len(body) > 0 {
		if field, err := decodeStrict(body, &req); err != nil {
			WriteError(ctx, 400, "invalid_request", field, err.Error())
			return
		}
	}
	if (req.Parent == "") != (len(req.Since) == 0) {
		WriteError(ctx, 400, "invalid_request", "parent", "an incremental backup names both since and parent")
		return
	}
	if s.cfg.Admin.BackupRunning() {
		WriteError(ctx, 409, "backup_running", "", "a backup is already running")
		return
	}
	if req.Parent != "" {
		if err := s.cfg.Admin.CheckBackupParent(req.Parent); err != nil {
			WriteError(ctx, 409, "full_backup_needed", "parent", err.Error())
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
		_ = s.cfg.Admin.Backup(dw, req, version) // logged; the missing trailer tells the client
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

// deadLetters is GET /v1/admin/deadletter (admin token): the kept
// dead letters, oldest first, at most ?limit= (default 100, at most 1000),
// with the total count.
func (s *Server) deadLetters(ctx *fasthttp.RequestCtx, _ request) {
	limit := 100
	if v := ctx.QueryArgs().Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 1 || n > 1000 {
			WriteError(ctx, 400, "invalid_request", "limit", "limit must be 1–1000")
			return
		}
		limit = n
	}
	list, total, err := s.cfg.Admin.DeadLetters(limit)
	if err != nil {
		WriteError(ctx, 500, "internal_error", "", "reading the dead letters failed")
		return
	}
	writeJSON(ctx, 200, map[string]any{"total": total, "dead_letters": list})
}

// simulatorMO makes the built-in SMSC simulator deliver a handset's
// message, as if a carrier had: {"from":"+1514…","to":"+1514…","text":"STOP"}.
// It exists only when simulator.enabled, for trying the loop by hand, and
// with the API on loopback.
func (s *Server) simulatorMO(ctx *fasthttp.RequestCtx, rq request) {
	if s.cfg.Simulator == nil || !s.cfg.Simulator.SimulatorReady() {
		WriteError(ctx, 404, "not_found", "", "POST /v1/simulator/mo exists only with simulator.enabled and a loopback http.listen")
		return
	}
	var req struct {
		From string `json:"from"`
		To   string `json:"to"`
		Text string `json:"text"`
	}
	if field, err := decodeStrict(ctx.PostBody(), &req); err != nil {
		WriteError(ctx, 400, "invalid_request", field, err.Error())
		return
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r := s.cfg.Simulator.SimulateMO(cctx, rq.caller.tenant, req.From, req.To, req.Text); r != nil {
		refuse(ctx, r)
		return
	}
	writeJSON(ctx, 200, map[string]any{"delivered": true, "acknowledged": "ESME_ROK"})
}
