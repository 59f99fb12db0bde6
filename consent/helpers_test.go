package consent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if os.Getenv("CONSENT_TEST_LOG") == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	lc := testutil.StartLeakCheck()
	code := m.Run()
	if benchStore != nil {
		benchStore.Close()
	}
	os.Exit(lc.Exit(code))
}

func requireNoErr(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", fmt.Sprint(msg...), err)
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock { return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testTenant(id string, mods ...func(*TenantConfig)) TenantConfig {
	tc := TenantConfig{ID: id, Brand: "Acme", HelpContact: "help@acme.test"}
	for _, m := range mods {
		m(&tc)
	}
	return tc
}

type harness struct {
	t      testing.TB
	s      *Store
	clock  *fakeClock
	dir    string
	cfg    Config
	mu     sync.Mutex
	events []Event
}

func newHarness(t testing.TB, tenants ...TenantConfig) *harness {
	t.Helper()
	if len(tenants) == 0 {
		tenants = []TenantConfig{testTenant("acme")}
	}
	h := &harness{t: t, clock: newClock(), dir: t.TempDir()}
	h.cfg = Config{Dir: h.dir, Tenants: tenants, Clock: h.clock.Now, BadgerLowMemory: true,
		OnEvent: func(e Event) error {
			h.mu.Lock()
			h.events = append(h.events, e)
			h.mu.Unlock()
			return nil
		}}
	h.open()
	t.Cleanup(func() { h.s.Close() })
	return h
}

func (h *harness) open() {
	h.t.Helper()
	s, err := Open(h.cfg)
	requireNoErr(h.t, err, "Open")
	h.s = s
}

func (h *harness) reopen() {
	h.t.Helper()
	requireNoErr(h.t, h.s.Close(), "Close")
	h.open()
}

func (h *harness) takeEvents() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev := h.events
	h.events = nil
	return ev
}

var msgSeq int

// mo sends an inbound SMS from rcpt to sender with a fresh message id.
func (h *harness) mo(tenant, ch, sender, rcpt, text string) Result {
	h.t.Helper()
	msgSeq++
	res, err := h.s.Inbound(context.Background(), InboundMessage{Tenant: tenant, Channel: ch, Sender: sender,
		Recipient: rcpt, Text: text, MessageID: fmt.Sprintf("mo-%d", msgSeq), ReceivedAt: h.clock.Now()})
	requireNoErr(h.t, err, "Inbound ", text)
	return res
}

func (h *harness) check(tenant, ch, sender, rcpt string, cat Category) Decision {
	h.t.Helper()
	d, err := h.s.Check(tenant, ch, sender, rcpt, cat)
	requireNoErr(h.t, err, "Check")
	return d
}

func replyKinds(res Result) []ReplyKind {
	var k []ReplyKind
	for _, r := range res.Replies {
		k = append(k, r.Kind)
	}
	return k
}
