package bench

import (
	"log/slog"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// The simulator and the smpp sessions log every bind at info: keep test
	// output to warnings.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
