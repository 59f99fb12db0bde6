package gateway

import (
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A data directory held by another holder is waited for (bounded): taken
// once the holder lets go, refused with the holder's pid when it does not.
func TestDataDirLockWaitsForHolder(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	first, err := lockDataDir(dir, time.Second, quiet)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockDataDir(dir, 200*time.Millisecond, quiet)
	if err == nil || !strings.Contains(err.Error(), dir+" is in use") || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("held: %v", err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		first.release()
	}()
	second, err := lockDataDir(dir, 10*time.Second, quiet)
	if err != nil {
		t.Fatalf("after the holder let go: %v", err)
	}
	second.release()
}
