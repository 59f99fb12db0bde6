package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// An MO without user_message_reference answered with an error after its
// STOP was applied (a failure between the consent change and the copy for
// the platform): the SMSC's retry gets ESME_ROK, no second confirmation
// (repeat_confirm_window: off would confirm every STOP), and the platform
// gets the MO once. With restart, the gateway restarts between the error
// answer and the retry: the memory is on disk.
func TestMORetryAfterErrorAnswer(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			smsc := smpptest.NewServer(smpptest.Config{Receipts: true})
			t.Cleanup(smsc.Close)
			dir := t.TempDir()
			env := startEnv(t, configYAML(dir, smsc.Addr(), "    repeat_confirm_window: off", ""), smsc, dir)
			var once sync.Once
			hook := func() { once.Do(func() { panic("injected failure after the consent change") }) }
			testHookAfterConsent.Store(&hook)
			t.Cleanup(func() { testHookAfterConsent.Store(nil) })

			if err := env.mo(handset, "STOP"); smpp.StatusOf(err) != smpp.StatusXTAppn {
				t.Fatalf("first attempt: %v, want ESME_RX_T_APPN", err)
			}
			if restart {
				env.stop()
				env = startEnv(t, env.yaml, smsc, dir)
			}
			if err := env.mo(handset, "STOP"); err != nil {
				t.Fatalf("retry: %v, want ESME_ROK", err)
			}
			// The confirmation stored with the opt-out goes out once: the
			// first attempt failed before sending it, so it waits for the
			// resend of pending replies, run now.
			env.g.resendPendingReplies(time.Now().Add(time.Minute))
			if _, text := env.nextSubmitTo(handset); !strings.Contains(text, "unsubscribed") {
				t.Fatalf("first reply %q, want the STOP confirmation", text)
			}
			// The next reply to the handset is the HELP answer, not a
			// second confirmation.
			if err := env.mo(handset, "HELP"); err != nil {
				t.Fatal(err)
			}
			if _, text := env.nextSubmitTo(handset); !strings.Contains(text, "Help at") {
				t.Fatalf("second reply %q, want the HELP answer", text)
			}
			var texts []string
			waitFor(t, 10*time.Second, func() error {
				for env.esme.Pending() > 0 {
					d, _ := env.esme.NextDeliver(context.Background())
					texts = append(texts, string(d.ShortMessage))
				}
				if len(texts) < 2 {
					return fmt.Errorf("platform got %q", texts)
				}
				return nil
			})
			if strings.Join(texts, ",") != "STOP,HELP" {
				t.Fatalf("platform got %q, want STOP once then HELP", texts)
			}
		})
	}
}

// A handset that sends the same text twice over a healthy connection sends
// two messages: both reach the platform (nothing is remembered: the
// memory stays empty).
func TestMOSameTextTwiceHealthy(t *testing.T) {
	env := newEnv(t)
	for i := 0; i < 2; i++ {
		if err := env.mo(handset, "Running late"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ {
		d := nextDeliverFrom(t, env, handset)
		if string(d.ShortMessage) != "Running late" {
			t.Fatalf("platform got %q", d.ShortMessage)
		}
	}
	if env.g.retries.active() {
		t.Fatal("an MO answered over a healthy connection was remembered")
	}
}
