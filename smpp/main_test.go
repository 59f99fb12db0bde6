package smpp

import (
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

func TestMain(m *testing.M) {
	if os.Getenv("SMPP_TEST_LOG") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	lc := testutil.StartLeakCheck()
	os.Exit(lc.Exit(m.Run()))
}
