package simulators

import (
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

// TestMain fails the run when a test leaves a goroutine behind.
func TestMain(m *testing.M) { testutil.Main(m) }
