package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
)

// nodeSMSC is node-smpp's server.js (smpp/testdata/node) run as the SMSC
// the gateway binds to: MOs are written by node-smpp's own encoder, and
// every PDU it reads or writes is logged as a JSON line.
type nodeSMSC struct {
	t     *testing.T
	stdin io.WriteCloser
	addr  string
	mu    sync.Mutex
	lines []nodeLine // guarded by mu
}

// nodeLine is one JSON line of server.js (see smpp/testdata/node/lib.js).
type nodeLine struct {
	Ev      string         `json:"ev"`
	Dir     string         `json:"dir"`
	Command string         `json:"command"`
	Status  int            `json:"command_status"`
	Hex     string         `json:"hex"`
	Port    int            `json:"port"`
	Session int            `json:"session"`
	Fields  map[string]any `json:"fields"`
}

func (l nodeLine) field(k string) string { s, _ := l.Fields[k].(string); return s }

// startNodeSMSC runs server.js; it skips (or fails, with
// OPTGATE_INTEROP=required) when node or node-smpp is not installed.
func startNodeSMSC(t *testing.T) *nodeSMSC {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join("..", "smpp", "testdata", "node"))
	_, errNode := exec.LookPath("node")
	_, errMod := os.Stat(filepath.Join(dir, "node_modules", "smpp", "package.json"))
	if errNode != nil || errMod != nil {
		msg := "node-smpp not installed (run npm ci in smpp/testdata/node; scripts/test.sh does)"
		if os.Getenv("OPTGATE_INTEROP") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "node", "server.js", "--system-id", "optgate", "--password", "pw", "--lifetime", "110000")
	cmd.Dir = dir
	cmd.WaitDelay = 2 * time.Second
	n := &nodeSMSC{t: t}
	var err error
	if n.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.stdin.Close()
		cmd.Wait()
		cancel()
	})
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var l nodeLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				n.mu.Lock()
				n.lines = append(n.lines, l)
				n.mu.Unlock()
			}
		}
	}()
	l := n.wait("listening", func(l nodeLine) bool { return l.Ev == "listening" }, 1)
	n.addr = fmt.Sprintf("127.0.0.1:%d", l.Port)
	return n
}

func (n *nodeSMSC) send(cmd map[string]any) {
	n.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := n.stdin.Write(append(b, '\n')); err != nil {
		n.t.Fatal(err)
	}
}

// matching returns the lines so far that match.
func (n *nodeSMSC) matching(match func(nodeLine) bool) []nodeLine {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []nodeLine
	for _, l := range n.lines {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

// wait waits until count lines match and returns the last.
func (n *nodeSMSC) wait(what string, match func(nodeLine) bool, count int) nodeLine {
	n.t.Helper()
	var got []nodeLine
	testutil.CheckFor(n.t, 20*time.Second, func() error {
		if got = n.matching(match); len(got) < count {
			return fmt.Errorf("%d of %d %s", len(got), count, what)
		}
		return nil
	})
	return got[count-1]
}

// deliverMO is the command for node-smpp to send an MO from handset to
// our number, text encoded by node-smpp for dc.
func deliverMO(handset string, dc int, text string) map[string]any {
	return map[string]any{"cmd": "deliver_sm", "pdu": map[string]any{
		"source_addr_ton": 1, "source_addr_npi": 1, "source_addr": handset[1:],
		"dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": ourNumber[1:],
		"data_coding": dc, "short_message": map[string]any{"text": text},
	}}
}

func isPDU(dir, command string) func(nodeLine) bool {
	return func(l nodeLine) bool { return l.Ev == "pdu" && l.Dir == dir && l.Command == command }
}

// submitsTo matches the submit_sm node-smpp received for a handset.
func submitsTo(handset string) func(nodeLine) bool {
	return func(l nodeLine) bool {
		return isPDU("in", "submit_sm")(l) && l.field("destination_addr") == handset[1:]
	}
}

// startNodeEnv runs a gateway bound (one bind) to node-smpp's SMSC.
func startNodeEnv(t *testing.T, smscExtra, tenantExtra string) (*testEnv, *nodeSMSC) {
	node := startNodeSMSC(t)
	dir := t.TempDir()
	y := configYAML(dir, node.addr, tenantExtra, "")
	y = strings.Replace(y, "binds: 2, window: 128, timeout: 3s}", "binds: 1, window: 128, timeout: 3s"+smscExtra+"}", 1)
	env := startEnv(t, y, nil, dir)
	node.wait("bind", func(l nodeLine) bool { return l.Ev == "bound" }, 1)
	return env, node
}

// lastEvidence is the newest evidence entry of a handset.
func lastEvidence(t *testing.T, env *testEnv, handset string) consent.Evidence {
	t.Helper()
	h, err := env.g.consent.History("acme", "sms", handset, 1)
	if err != nil || len(h) == 0 {
		t.Fatalf("history of %s: %v (%d entries)", handset, err, len(h))
	}
	return h[0]
}

// node-smpp labels GSM 03.38 octets as IA5 (data_coding 1): DÉSABONNER
// arrives as D\x1FSABONNER. Written by node-smpp's own encoder, under
// data_coding 1 and 0, it opts out through the real gateway; the evidence
// says which reading matched; the next MT is refused.
func TestNodeSMSCMislabelledGSMStop(t *testing.T) {
	env, node := startNodeEnv(t, "", "")
	for i, c := range []struct {
		dc      int
		reading string
	}{
		{1, "gsm7 (data_coding 1 holds gsm7 octets)"}, // node-smpp's IA5 label on GSM octets
		{0, "gsm7"},
	} {
		handset := fmt.Sprintf("+1514555012%d", i)
		node.send(deliverMO(handset, c.dc, "DÉSABONNER"))
		out := node.wait("deliver_sm out", func(l nodeLine) bool {
			return isPDU("out", "deliver_sm")(l) && l.field("source_addr") == handset[1:]
		}, 1)
		if !strings.Contains(out.Hex, "441f5341424f4e4e4552") {
			t.Fatalf("node-smpp wrote %s: not the GSM octets D 1F SABONNER", out.Hex)
		}
		resp := node.wait("deliver_sm_resp", isPDU("in", "deliver_sm_resp"), i+1)
		if resp.Status != 0 {
			t.Fatalf("deliver_sm_resp status %#x", resp.Status)
		}
		node.wait("confirmation", submitsTo(handset), 1)
		ev := lastEvidence(t, env, handset)
		if ev.New != "opted_out" || ev.Decoding != c.reading || ev.Normalized != "DESABONNER" {
			t.Fatalf("data_coding %d: evidence new=%q decoding=%q normalized=%q", c.dc, ev.New, ev.Decoding, ev.Normalized)
		}
		if _, err := env.submit(handset, "Another offer"); smpp.StatusOf(err) != smpp.StatusOptedOut {
			t.Fatalf("MT after DÉSABONNER: %v, want ESME_ROPTEDOUT", err)
		}
	}
}

// With data_coding_1: gsm7 (Kannel's alt-charset), the SMSC's data_coding 1
// is read as GSM 03.38 outright: the text the platform gets is DÉSABONNER.
func TestNodeSMSCDataCodingOverride(t *testing.T) {
	env, node := startNodeEnv(t, ", data_coding_1: gsm7", "")
	handset := "+15145550131"
	node.send(deliverMO(handset, 1, "DÉSABONNER"))
	node.wait("confirmation", submitsTo(handset), 1)
	ev := lastEvidence(t, env, handset)
	if ev.Decoding != "gsm7 (data_coding 1 read as gsm7)" || ev.Text != "DÉSABONNER" {
		t.Fatalf("evidence decoding=%q text=%q", ev.Decoding, ev.Text)
	}
	d := nextDeliverFrom(t, env, handset)
	if text, _ := coding.Decode(coding.DataCoding(d.DataCoding), d.ShortMessage); text != "DÉSABONNER" {
		t.Fatalf("platform got %q", text)
	}
}

// nextDeliverFrom waits for the MO from handset the upstream ESME gets.
func nextDeliverFrom(t *testing.T, env *testEnv, handset string) *smpp.DeliverSM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		d, err := env.esme.NextDeliver(ctx)
		if err != nil {
			t.Fatalf("no MO from %s reached the platform: %v", handset, err)
		}
		if string(d.Source.Addr) == handset[1:] {
			return d
		}
	}
}

// delivered counts the MOs from handset the upstream ESME got so far.
func delivered(env *testEnv, handset string) int {
	n := 0
	for env.esme.Pending() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		d, err := env.esme.NextDeliver(ctx)
		cancel()
		if err != nil {
			break
		}
		if string(d.Source.Addr) == handset[1:] {
			n++
		}
	}
	return n
}

// An SMSC that drops the connection right after writing a deliver_sm STOP
// (so our ESME_ROK never reaches it), rebinds and sends the same MO again:
// the retry is answered ESME_ROK, the STOP is confirmed once (with
// repeat_confirm_window: off, where every STOP would be confirmed) and the
// platform gets the MO once. Then the same text twice over the healthy
// connection is two messages: forwarded twice. With user_message_reference
// (the same one on the STOP, its retry and the later HELP, as an SMSC that
// sends a constant one does) the same holds.
func TestNodeSMSCDropAfterWriteRetry(t *testing.T) {
	for _, umr := range []bool{false, true} {
		t.Run(fmt.Sprintf("user_message_reference=%v", umr), func(t *testing.T) { nodeDropAfterWriteRetry(t, umr) })
	}
}

func nodeDropAfterWriteRetry(t *testing.T, umr bool) {
	env, node := startNodeEnv(t, "", "    repeat_confirm_window: off")
	handset := "+15145550141"
	stop := deliverMO(handset, 1, "STOP")
	help := deliverMO(handset, 1, "HELP")
	if umr {
		stop["pdu"].(map[string]any)["user_message_reference"] = 7
		help["pdu"].(map[string]any)["user_message_reference"] = 7
	}
	drop := map[string]any{"drop_after_write": true}
	for k, v := range stop {
		drop[k] = v
	}
	node.send(drop)
	node.wait("drop", func(l nodeLine) bool { return l.Ev == "dropped" }, 1)
	node.wait("rebind", func(l nodeLine) bool { return l.Ev == "bound" }, 2)
	// The first attempt's answer had nowhere to go: wait until it is
	// remembered before the SMSC resends.
	testutil.CheckFor(t, 10*time.Second, func() error {
		if !env.g.retries.active() {
			return errors.New("the unanswered MO is not remembered yet")
		}
		return nil
	})
	node.send(stop)
	resp := node.wait("deliver_sm_resp", isPDU("in", "deliver_sm_resp"), 1)
	if resp.Status != 0 {
		t.Fatalf("retry answered %#x, want ESME_ROK", resp.Status)
	}
	flushFirstConfirmation(t, env, node, handset)
	// A HELP from the same handset is answered after anything the retry
	// could have sent.
	node.send(help)
	wantStopOnceThenHelp(t, env, node, handset)

	// The same text twice on a healthy connection: two messages.
	other := "+15145550142"
	base := len(node.matching(isPDU("in", "deliver_sm_resp")))
	for i := 1; i <= 2; i++ {
		node.send(deliverMO(other, 1, "See you at 10"))
		node.wait("deliver_sm_resp", isPDU("in", "deliver_sm_resp"), base+i)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if env.esme.Pending() < 2 {
			return fmt.Errorf("%d MOs pending at the platform", env.esme.Pending())
		}
		return nil
	})
	if n := delivered(env, other); n != 2 {
		t.Fatalf("platform got %d of the twice-sent text, want 2", n)
	}
}

func hexOf(s string) string { return fmt.Sprintf("%x", s) }

// wantStopOnceThenHelp, once a HELP was sent after a STOP and its retry,
// waits for the HELP's reply and checks that the handset got exactly one
// STOP confirmation and one HELP reply, and the platform the STOP once and
// the HELP.
func wantStopOnceThenHelp(t *testing.T, env *testEnv, node *nodeSMSC, handset string) {
	t.Helper()
	node.wait("help reply", func(l nodeLine) bool {
		return submitsTo(handset)(l) && strings.Contains(l.Hex, hexOf("Help at"))
	}, 1)
	if got := node.matching(submitsTo(handset)); len(got) != 2 {
		t.Fatalf("%d replies to the handset, want 2 (one STOP confirmation, one HELP)", len(got))
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if env.esme.Pending() < 2 {
			return fmt.Errorf("%d MOs pending at the platform", env.esme.Pending())
		}
		return nil
	})
	if n := delivered(env, handset); n != 2 {
		t.Fatalf("platform got %d MOs from the handset, want 2 (STOP once, HELP)", n)
	}
}

// flushFirstConfirmation waits for the STOP confirmation of the first
// attempt. Its send failed if it ran while the bind was down; it then
// waits, pending, for the 30-second resend, which this runs early once
// no reply is being sent (resending one in flight would send it twice).
func flushFirstConfirmation(t *testing.T, env *testEnv, node *nodeSMSC, handset string) {
	t.Helper()
	confirmation := func(l nodeLine) bool {
		return submitsTo(handset)(l) && strings.Contains(l.Hex, hexOf("unsubscribed"))
	}
	resent := false
	testutil.CheckFor(t, 20*time.Second, func() error {
		if len(node.matching(confirmation)) > 0 {
			return nil
		}
		busy := false
		env.g.replying.Range(func(any, any) bool { busy = true; return false })
		if !busy && !resent {
			resent = true
			env.g.resendPendingReplies(time.Now().Add(time.Minute))
		}
		return errors.New("no STOP confirmation yet")
	})
}

// node-smpp as the SMSC gets ESME_RX_T_APPN for a STOP whose handling
// failed after the opt-out was stored, and resends it: the resend gets
// ESME_ROK, the STOP is confirmed once (repeat_confirm_window: off) and
// the platform gets it once.
func TestNodeSMSCErrorAnswerRetry(t *testing.T) {
	env, node := startNodeEnv(t, "", "    repeat_confirm_window: off")
	var once sync.Once
	hook := func() { once.Do(func() { panic("injected failure after the consent change") }) }
	testHookAfterConsent.Store(&hook)
	t.Cleanup(func() { testHookAfterConsent.Store(nil) })
	handset := "+15145550151"
	node.send(deliverMO(handset, 1, "STOP"))
	if r := node.wait("error answer", isPDU("in", "deliver_sm_resp"), 1); r.Status != int(smpp.StatusXTAppn) {
		t.Fatalf("first answer %#x, want ESME_RX_T_APPN", r.Status)
	}
	node.send(deliverMO(handset, 1, "STOP"))
	if r := node.wait("retry answer", isPDU("in", "deliver_sm_resp"), 2); r.Status != 0 {
		t.Fatalf("retry answered %#x, want ESME_ROK", r.Status)
	}
	// The first attempt failed before sending the confirmation stored
	// with the opt-out: it waits for the resend of pending replies, run
	// now (nothing is being sent: the retry sends no confirmation).
	env.g.resendPendingReplies(time.Now().Add(time.Minute))
	node.wait("confirmation", submitsTo(handset), 1)
	node.send(deliverMO(handset, 1, "HELP"))
	wantStopOnceThenHelp(t, env, node, handset)
}
