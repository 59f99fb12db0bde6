package bench

import (
	"log/slog"
	"os"
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

func TestMain(m *testing.M) {
	// The simulator and the smpp sessions log every bind at info: keep test
	// output to warnings.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	lc := testutil.StartLeakCheck()
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(lc.Exit(code))
}
