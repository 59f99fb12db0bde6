package whatsapp

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// TestEndToEndMock wires the client and the receiver to the mock: the mock posts signed status
// webhooks back, including an asynchronous 131050, and an inbound message opens the window.
func TestEndToEndMock(t *testing.T) {
	db := openDB(t, t.TempDir())
	rec := &recorder{}
	r, url := startReceiver(t, db, rec, nil)
	mock := whatsapptest.NewServer(whatsapptest.Config{WebhookURL: url, AppSecret: testSecret,
		AutoStatuses: []string{"sent", "delivered", "read"}, EnforceWindow: true})
	defer mock.Close()
	c, _ := newTestClient(t, mock, func(c *ClientConfig) { c.Window = r.Window() })
	ctx := context.Background()

	// Inbound STOP through the mock: the receiver records the window before the handler runs.
	_, status, err := mock.Inbound(testPID, "16505551234", "STOP")
	requireNoErr(t, err)
	testutil.RequireEqual(t, status, 200, "inbound webhook status")
	testutil.CheckFor(t, 5*time.Second, func() error {
		if rec.count() != 1 {
			return fmt.Errorf("%d events", rec.count())
		}
		return nil
	})
	id, err := c.Send(ctx, textMsg("+16505551234", "You are unsubscribed."))
	requireNoErr(t, err)

	mock.FailNext(1, whatsapptest.Failure{Code: 131050, Async: true})
	id2, err := c.Send(ctx, Message{To: "16505551234", Template: &Template{Name: "promo", Language: "en_US"}})
	requireNoErr(t, err)

	testutil.CheckFor(t, 5*time.Second, func() error {
		if rec.count() != 5 {
			return fmt.Errorf("%d events", rec.count())
		}
		return nil
	})
	got := map[string]bool{}
	for _, ev := range rec.all() {
		if ev.Kind == KindStatus {
			got[ev.Status.ID+"/"+ev.Status.Status] = true
			if ev.Status.ID == id2 {
				testutil.RequireEqual(t, ev.Signal(), SignalMarketingStop, "131050 signal")
			}
		}
	}
	for _, k := range []string{id + "/sent", id + "/delivered", id + "/read", id2 + "/failed"} {
		testutil.RequireEqual(t, got[k], true, "status "+k)
	}
	// The mock counts a post when its answer is back, which may be after the
	// receiver has handed the event to the handler.
	testutil.CheckFor(t, 5*time.Second, func() error {
		if n := mock.Posted(); n != 4 {
			return fmt.Errorf("status webhooks accepted by the receiver: %d, want 4", n)
		}
		return nil
	})
}
