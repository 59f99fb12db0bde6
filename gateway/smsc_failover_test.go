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

// twoSMSCEnv is a gateway whose one route fails over from carrier (a) to
// backup (b), with both bound.
func twoSMSCEnv(t *testing.T, a, b *smpptest.Server) *testEnv {
	t.Helper()
	dir := t.TempDir()
	y := configYAML(dir, a.Addr(), "", "")
	y = strings.Replace(y, "routes:\n  - {prefix: \"+\", smscs: [carrier]}",
		fmt.Sprintf("  - {name: backup, address: %q, system_id: optgate, password: pw, timeout: 2s}\nroutes:\n  - {prefix: \"+\", smscs: [carrier, backup]}", b.Addr()), 1)
	y = strings.Replace(y, "window: 128, timeout: 3s", "window: 128, timeout: 2s", 1)
	env := startEnv(t, y, a, dir)
	testutil.CheckFor(t, 20*time.Second, func() error {
		if env.g.links["carrier"].up.Load() < 2 || env.g.links["backup"].up.Load() == 0 {
			return fmt.Errorf("not every bind up yet")
		}
		return nil
	})
	return env
}

// A bound SMSC that refuses a relayed submit with a temporary error makes
// the message go to the next SMSC of the group before the platform is
// answered; one that never answers (unknown outcome) does not.
func TestFailoverOnTemporaryRefusal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(a *smpptest.Server)
	}{
		{"msgqful", func(a *smpptest.Server) {
			// Every submit, so the client's own retries are exhausted.
			a.OnPDU(func(r *smpp.Request) bool {
				if r.Header.ID == smpp.SubmitSMID {
					r.Respond(smpp.StatusMsgQFul, nil)
					return true
				}
				return false
			})
		}},
		{"syserr", func(a *smpptest.Server) { a.Fail(1, smpp.StatusSysErr) }},
		{"throttled", func(a *smpptest.Server) {
			a.OnPDU(func(r *smpp.Request) bool {
				if r.Header.ID == smpp.SubmitSMID {
					r.Respond(smpp.StatusThrottled, nil)
					return true
				}
				return false
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := smpptest.NewServer(smpptest.Config{})
			b := smpptest.NewServer(smpptest.Config{})
			t.Cleanup(a.Close)
			t.Cleanup(b.Close)
			env := twoSMSCEnv(t, a, b)
			tc.script(a)
			id, err := env.submit(handset, "fail me over")
			if err != nil {
				t.Fatalf("submit: %v (the backup SMSC was not tried)", err)
			}
			if b.Submits() != 1 {
				t.Fatalf("backup got %d submits, want 1", b.Submits())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := b.NextSubmit(ctx)
			if err != nil || string(s.PDU.ShortMessage) != "fail me over" {
				t.Fatalf("at the backup: %v %v", s.PDU, err)
			}
			code, m := env.http("GET", "/v1/messages/"+id, acmeToken, "")
			if code != 200 || m["state"] != "accepted" {
				t.Fatalf("status: %d %v", code, m)
			}
		})
	}
	t.Run("unknown_outcome", func(t *testing.T) {
		a := smpptest.NewServer(smpptest.Config{})
		b := smpptest.NewServer(smpptest.Config{})
		t.Cleanup(a.Close)
		t.Cleanup(b.Close)
		env := twoSMSCEnv(t, a, b)
		a.Ignore(1) // written, never answered: a may have it
		_, err := env.submit(handset, "maybe sent")
		if smpp.StatusOf(err) != smpp.StatusXTAppn {
			t.Fatalf("unanswered submit: %v, want ESME_RX_T_APPN", err)
		}
		if b.Submits() != 0 {
			t.Fatalf("a submit with an unknown outcome was resent to the backup (%d)", b.Submits())
		}
	})
	t.Run("all_refuse", func(t *testing.T) {
		a := smpptest.NewServer(smpptest.Config{})
		b := smpptest.NewServer(smpptest.Config{})
		t.Cleanup(a.Close)
		t.Cleanup(b.Close)
		env := twoSMSCEnv(t, a, b)
		a.Fail(1, smpp.StatusSysErr)
		b.Fail(1, smpp.StatusSysErr)
		_, err := env.submit(handset, "nowhere")
		if smpp.StatusOf(err) != smpp.StatusXTAppn {
			t.Fatalf("every SMSC refused: %v, want ESME_RX_T_APPN", err)
		}
	})
}

func TestFailoverable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&smpp.StatusError{Status: smpp.StatusMsgQFul}, true},
		{&smpp.StatusError{Status: smpp.StatusThrottled}, true},
		{&smpp.StatusError{Status: smpp.StatusSysErr}, true},
		{&smpp.StatusError{Status: smpp.StatusInvDstAdr}, false},
		{fmt.Errorf("%w: %w", smpp.ErrNotBound, context.DeadlineExceeded), true},
		{fmt.Errorf("%w: %w", smpp.ErrClosed, smpp.ErrNotWritten), true},
		{fmt.Errorf("%w: %w", smpp.ErrClosed, smpp.ErrUnknownOutcome), false},
		{smpp.ErrClosed, false},
		{smpp.ErrTimeout, false},
		{context.DeadlineExceeded, false},
	} {
		if got := failoverable(tc.err); got != tc.want {
			t.Errorf("failoverable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
