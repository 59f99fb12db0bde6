package whatsapp

import (
	"errors"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

func TestWindowEdges(t *testing.T) {
	db := openDB(t, t.TempDir())
	w := NewWindow(db, nil)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	testutil.RequireEqual(t, w.Open(testPID, "16505551234", t0), false, "never opened")
	requireNoErr(t, w.Record(testPID, "16505551234", t0))
	for _, tc := range []struct {
		after time.Duration
		open  bool
	}{
		{0, true},
		{time.Hour, true},
		{23*time.Hour + 59*time.Minute, true},
		{24*time.Hour - time.Nanosecond, true},
		{24 * time.Hour, false},
		{24*time.Hour + time.Minute, false},
		{48 * time.Hour, false},
	} {
		testutil.RequireEqual(t, w.Open(testPID, "16505551234", t0.Add(tc.after)), tc.open, "open after "+tc.after.String())
	}
	// The "+" form and the wa_id share state; other numbers and other business numbers do not.
	testutil.RequireEqual(t, w.Open(testPID, "+16505551234", t0.Add(time.Hour)), true, "+ form")
	testutil.RequireEqual(t, w.Open("other", "16505551234", t0.Add(time.Hour)), false, "other business number")

	// An older message never moves the window back.
	requireNoErr(t, w.Record(testPID, "16505551234", t0.Add(-time.Hour)))
	last, ok, err := w.LastInbound(testPID, "16505551234")
	requireNoErr(t, err)
	testutil.RequireEqual(t, ok && last.Equal(t0), true, "last inbound kept")

	// 131047 closes it until the next user message.
	requireNoErr(t, w.Close(testPID, "16505551234", t0.Add(2*time.Hour)))
	testutil.RequireEqual(t, w.Open(testPID, "16505551234", t0.Add(2*time.Hour+time.Second)), false, "closed by 131047")
	requireNoErr(t, w.Record(testPID, "16505551234", t0.Add(3*time.Hour)))
	testutil.RequireEqual(t, w.Open(testPID, "16505551234", t0.Add(3*time.Hour+time.Second)), true, "reopened by a user message")
}

// TestWindowReceiverClock drives the receiver pipeline with an injected clock: the window
// recorded from a webhook is open at 23 h 59 m and closed at 24 h 01 m.
func TestWindowReceiverClock(t *testing.T) {
	db := openDB(t, t.TempDir())
	rec := &recorder{}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	r, url := startReceiver(t, db, rec, func(c *ReceiverConfig) { c.Now = func() time.Time { return t0.Add(time.Minute) } })
	testutil.RequireEqual(t, post(t, url, testSecret, inboundAt("wamid.w1", t0)), 200, "status")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if rec.count() != 1 {
			return errors.New("not handled")
		}
		return nil
	})
	testutil.RequireEqual(t, r.Window().Open(testPID, "16505551234", t0.Add(23*time.Hour+59*time.Minute)), true, "23h59m")
	testutil.RequireEqual(t, r.Window().Open(testPID, "16505551234", t0.Add(24*time.Hour+time.Minute)), false, "24h01m")
}

// A 131047 reported with a time before the user's last message does not close the window the
// user reopened; one at or after it does.
func TestWindowLateClose(t *testing.T) {
	db := openDB(t, t.TempDir())
	w := NewWindow(db, nil)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	requireNoErr(t, w.Record(testPID, "16505551234", t0))
	requireNoErr(t, w.Close(testPID, "16505551234", t0.Add(-time.Minute)))
	testutil.RequireEqual(t, w.Open(testPID, "16505551234", t0.Add(time.Minute)), true, "late close ignored")
	requireNoErr(t, w.Close(testPID, "16505551234", t0.Add(time.Second)))
	testutil.RequireEqual(t, w.Open(testPID, "16505551234", t0.Add(time.Minute)), false, "close after the user message")
}

// TestWindowObserveApply: what one node's Window stores is observed, and
// applied on another node's Window it gives the same answers; applying
// late, twice or out of order never moves a window back, and Apply itself
// is not observed (no echo between nodes).
func TestWindowObserveApply(t *testing.T) {
	a, b := NewWindow(openDB(t, t.TempDir()), nil), NewWindow(openDB(t, t.TempDir()), nil)
	type fact struct {
		u      WindowUpdate
		closed bool
	}
	var fromA, fromB []fact
	a.Observe(func(u WindowUpdate, closed bool) { fromA = append(fromA, fact{u, closed}) })
	b.Observe(func(u WindowUpdate, closed bool) { fromB = append(fromB, fact{u, closed}) })
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	requireNoErr(t, a.Record(testPID, "16505551234", t0))
	requireNoErr(t, a.Close(testPID, "16505551234", t0.Add(time.Hour)))
	requireNoErr(t, a.Record(testPID, "+16505551234", t0.Add(2*time.Hour)))
	testutil.RequireEqual(t, len(fromA), 3, "facts observed on a")
	for i := len(fromA) - 1; i >= 0; i-- { // out of order, and twice
		requireNoErr(t, b.Apply(fromA[i].u, fromA[i].closed))
	}
	for _, f := range fromA {
		requireNoErr(t, b.Apply(f.u, f.closed))
	}
	testutil.RequireEqual(t, len(fromB), 0, "applied facts are not observed")
	for _, at := range []time.Duration{90 * time.Minute, 3 * time.Hour, 25 * time.Hour, 26 * time.Hour} {
		testutil.RequireEqual(t, b.Open(testPID, "16505551234", t0.Add(at)), a.Open(testPID, "16505551234", t0.Add(at)),
			"open on b as on a at "+at.String())
	}
	testutil.RequireEqual(t, b.Open(testPID, "16505551234", t0.Add(3*time.Hour)), true, "reopened after the close")
}
