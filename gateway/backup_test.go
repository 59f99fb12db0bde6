package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/optgate/optgate/backup"
	"github.com/optgate/optgate/internal/testutil"
)

// blockingWriter holds its first write until release is closed.
type blockingWriter struct {
	started chan struct{}
	release chan struct{}
	buf     bytes.Buffer
	n       int
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	if b.n++; b.n == 1 {
		close(b.started)
		<-b.release
	}
	return b.buf.Write(p)
}

// Shutdown during a backup: the backup ends (its next write fails), the
// stores are closed only after it, nothing panics; a backup after
// Shutdown is refused.
func TestBackupDuringShutdown(t *testing.T) {
	env := newEnv(t)
	for i := range 50 {
		if code, m := env.http("POST", fmt.Sprintf("/v1/consent/+1514555%04d/opt-out", i), adminTok, ""); code != 200 {
			t.Fatalf("opt-out: %d %v", code, m)
		}
	}
	// A full backup in memory: it reads back, holding the opt-outs.
	var full bytes.Buffer
	idx, err := env.g.Backup(&full, BackupRequest{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := idx.Section("consent"); s.Until == 0 || s.Bytes == 0 {
		t.Fatalf("consent section: %+v", s)
	}
	if _, err := backup.Read(bytes.NewReader(full.Bytes()), nil); err != nil {
		t.Fatal(err)
	}

	w := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { _, err := env.g.Backup(w, BackupRequest{}, "test"); done <- err }()
	<-w.started
	if _, err := env.g.Backup(io.Discard, BackupRequest{}, "test"); !errors.Is(err, errBackupBusy) {
		t.Fatalf("second backup at once: %v", err)
	}
	shut := make(chan error, 1)
	g := env.g
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- g.Shutdown(ctx)
	}()
	testutil.CheckFor(t, 10*time.Second, func() error {
		select {
		case <-g.stop:
			return nil
		default:
			return errors.New("shutdown has not begun")
		}
	})
	select {
	case <-shut:
		t.Fatal("Shutdown closed the stores under a running backup")
	case <-time.After(100 * time.Millisecond):
	}
	close(w.release)
	select {
	case err := <-done:
		t.Logf("backup during shutdown: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("backup did not end")
	}
	select {
	case <-shut:
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not finish after the backup ended")
	}
	env.g = nil
	if _, err := g.Backup(io.Discard, BackupRequest{}, "test"); !errors.Is(err, errShuttingDown) {
		t.Fatalf("backup after shutdown: %v", err)
	}
}
