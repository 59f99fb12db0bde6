package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
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
			failOnceAfterConsent(t)

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
			// resend of pending replies. The next reply to the handset is
			// the HELP answer, not a second confirmation.
			wantOneConfirmation(t, env, handset, func() error { return env.mo(handset, "HELP") })
			var texts []string
			testutil.CheckFor(t, 10*time.Second, func() error {
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

// An SMSC configured with data_coding_0: latin1 gets MT text we encode for
// data_coding 0 in Latin-1; text Latin-1 cannot hold goes as UCS-2. The
// default SMSC gets GSM 03.38 under data_coding 0.
func TestMTDataCoding0Override(t *testing.T) {
	for _, c := range []struct {
		override, text string
		dc             uint8
		octets         string
	}{
		{"", "Café à 10h", 0, "Caf\x05 \x7f 10h"},
		{", data_coding_0: latin1", "Café à 10h", 0, "Caf\xe9 \xe0 10h"},
		{", data_coding_0: ia5", "Meet at 10", 0, "Meet at 10"},
		{", data_coding_0: latin1", "Ciao €", 8, "\x00C\x00i\x00a\x00o\x00 \x20\xac"},
	} {
		t.Run(c.override+c.text, func(t *testing.T) {
			smsc := smpptest.NewServer(smpptest.Config{})
			t.Cleanup(smsc.Close)
			dir := t.TempDir()
			y := strings.Replace(configYAML(dir, smsc.Addr(), "", ""), "timeout: 3s}", "timeout: 3s"+c.override+"}", 1)
			env := startEnv(t, y, smsc, dir)
			code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"`+c.text+`"}`)
			if code != 202 {
				t.Fatalf("POST: %d %v", code, m)
			}
			s, _ := env.nextSubmitTo(handset)
			if s.PDU.DataCoding != c.dc || string(s.PDU.ShortMessage) != c.octets {
				t.Fatalf("submit_sm data_coding %d octets %q, want %d %q", s.PDU.DataCoding, s.PDU.ShortMessage, c.dc, c.octets)
			}
		})
	}
}

// A lookup of an MO being remembered (its answer just found lost, the
// memory not stored yet) waits for the memory, and the memory expires.
func TestRetryMemoryWaitsAndExpires(t *testing.T) {
	env := newEnv(t)
	m := env.g.retries
	k := m.key("carrier", handset, ourNumber, 0, []byte("STOP"))
	m.begin(k)
	got := make(chan bool, 1)
	go func() { _, ok := m.lookup(k, time.Now()); got <- ok }()
	select {
	case <-got:
		t.Fatal("lookup did not wait for the memory being written")
	case <-time.After(100 * time.Millisecond):
	}
	if err := m.remember(k, moRetry{Forwarded: true}, time.Minute); err != nil {
		t.Fatal(err)
	}
	m.done(k)
	if !<-got {
		t.Fatal("lookup after the memory was written: not found")
	}
	if _, ok := m.lookup(k, time.Now().Add(2*time.Minute)); ok {
		t.Fatal("found after mo_retry_window")
	}
	other := m.key("carrier", handset, ourNumber, 1, []byte("STOP")) // another data_coding: another MO
	if other == k {
		t.Fatal("data_coding not part of the key")
	}
}
