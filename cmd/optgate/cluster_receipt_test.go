package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// Receipts across nodes (issue 16 item 5): one SMSC, started by the test,
// holds a bind from each of the three nodes (system_id optgate-n1..n3), so
// the test chooses on which node's bind a receipt arrives.

// sharedSMSC starts the test SMSC and returns it with the node option
// that binds every node to it as optgate-n<i+1>, instead of its simulator.
func sharedSMSC(t *testing.T) (*smpptest.Server, nodeOption) {
	t.Helper()
	smsc := smpptest.NewServer(smpptest.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(smsc.Close)
	return smsc, func(i int, c *nodeConfig) {
		c.NoSimulator = true
		c.Extra = fmt.Sprintf("smscs:\n  - {name: carrier, address: %q, system_id: optgate-n%d, password: pw}\n"+
			"routes:\n  - {prefix: \"+\", smscs: [carrier]}\n", smsc.Addr(), i+1)
	}
}

// submitForReceipt submits a message asking for a receipt on e and
// returns our message id.
func submitForReceipt(t *testing.T, e *smpptest.ESME, to string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := e.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{RegisteredDelivery: 1,
		Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")}, Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(to[1:])},
		ShortMessage: []byte("your code is 1234")}})
	if err != nil || id == "" {
		t.Fatalf("submit_sm to %s: %q %v", to, id, err)
	}
	return id
}

// nextSubmit is the next submit the SMSC accepted; it must come from
// node's bind.
func nextSubmit(t *testing.T, smsc *smpptest.Server, node string) smpptest.Submit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := smsc.NextSubmit(ctx)
	if err != nil {
		t.Fatalf("no submit reached the SMSC: %v", err)
	}
	if sub.Account != "optgate-"+node {
		t.Fatalf("submit came on %s's bind, want %s's", sub.Account, node)
	}
	return sub
}

// receiptOn has the SMSC deliver a receipt with stat for its id smscID on
// node's bind and returns the answer (nil: ESME_ROK).
func receiptOn(smsc *smpptest.Server, node, smscID string, sm *smpp.SubmitSM, stat string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return smsc.SendDeliver(ctx, "optgate-"+node, smpptest.Receipt(smscID, sm, stat, time.Now()))
}

// receiptFirst has the SMSC take over every submit_sm: it hands f the
// sending of the message's DELIVRD receipt on node's bind (the message to
// rcpt; receipt returns the answer) and the answering of the submit_sm with
// smscID, to do in the order the test wants.
func receiptFirst(smsc *smpptest.Server, node, rcpt, smscID string, f func(receipt func() error, respond func())) {
	smsc.OnPDU(func(r *smpp.Request) bool {
		if _, ok := r.PDU.(*smpp.SubmitSM); !ok {
			return false
		}
		sm := &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(rcpt[1:])},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")}}}
		f(func() error { return receiptOn(smsc, node, smscID, sm, "DELIVRD") },
			func() { r.Respond(smpp.StatusOK, &smpp.SubmitSMResp{MessageID: []byte(smscID)}) })
		return true
	})
}

// TestClusterReceiptReachesItsOwner: a message submitted via the ESME
// bound on A whose receipt the SMSC delivers on B's bind: B answers the
// SMSC ESME_ROK only once A took it, and the ESME on A gets it with our
// message id. The same final receipt sent again (an SMSC retry) on C is
// answered and not delivered twice. A receipt that beats A's
// submit_sm_resp (the SMSC holds the response) waits on A for its mapping
// and still reaches A's ESME. An HTTP message's receipt on C sets its
// status on A (GET /v1/messages/{id}) and reaches the tenant's webhook.
func TestClusterReceiptReachesItsOwner(t *testing.T) {
	optgateBinary(t)
	smsc, bind := sharedSMSC(t)
	var hookMu sync.Mutex
	var hooked []string // the webhook events' bodies
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		hooked = append(hooked, string(body))
		hookMu.Unlock()
	}))
	t.Cleanup(hook.Close)
	nodes := startCluster(t, bind, func(_ int, c *nodeConfig) {
		c.Tenant = fmt.Sprintf("webhook: {url: %q, secret: cluster-hook-secret}", hook.URL)
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	ea := a.esme(t)

	id := submitForReceipt(t, ea, "+15145550501")
	sub := nextSubmit(t, smsc, a.name)
	if err := receiptOn(smsc, b.name, sub.MessageID, sub.PDU, "DELIVRD"); err != nil {
		t.Fatalf("receipt on %s: %v, want ESME_ROK:\n%s", b.name, err, b.out.String())
	}
	if text, ok := receiptFor(t, ea, id, 20*time.Second); !ok {
		t.Fatalf("the ESME on %s got no receipt for %s delivered on %s:\n%s", a.name, id, b.name, b.out.String())
	} else if !strings.Contains(text, "stat:DELIVRD") {
		t.Fatalf("receipt forwarded: %q", text)
	}
	if got := b.metric(t, "optgate_gateway_receipts_total", `outcome="claimed"`); got != 1 {
		t.Errorf("%s counted %v receipts claimed by another node, want 1", b.name, got)
	}
	if err := receiptOn(smsc, c.name, sub.MessageID, sub.PDU, "DELIVRD"); err != nil {
		t.Fatalf("the same receipt again on %s: %v, want ESME_ROK (nobody has it any more)", c.name, err)
	}
	if text, ok := receiptFor(t, ea, id, 2*time.Second); ok {
		t.Fatalf("a final receipt sent twice was forwarded twice: %q", text)
	}

	// The SMSC sends the receipt on B before it answers A's submit_sm.
	answered := make(chan error, 1)
	receiptFirst(smsc, b.name, "+15145550502", "900001", func(receipt func() error, respond func()) {
		go func() { answered <- receipt() }()
		go func() {
			time.Sleep(300 * time.Millisecond) // the receipt is on its way to B, and B's claim to A
			respond()
		}()
	})
	id = submitForReceipt(t, ea, "+15145550502")
	if _, ok := receiptFor(t, ea, id, 20*time.Second); !ok {
		t.Fatalf("the ESME on %s got no receipt for %s, which beat its submit_sm_resp on %s:\n%s\n%s",
			a.name, id, b.name, a.out.String(), b.out.String())
	}
	if err := <-answered; err != nil {
		t.Fatalf("receipt that beat the submit_sm_resp, on %s: %v, want ESME_ROK", b.name, err)
	}
	smsc.OnPDU(nil)

	code, body := a.call("POST", "/v1/messages", `{"to":"+15145550503","text":"your code is 5678","receipt":true}`)
	var m struct{ ID string }
	if code/100 != 2 || json.Unmarshal([]byte(body), &m) != nil || m.ID == "" {
		t.Fatalf("POST /v1/messages on %s: %d %s", a.name, code, body)
	}
	sub = nextSubmit(t, smsc, a.name)
	if err := receiptOn(smsc, c.name, sub.MessageID, sub.PDU, "DELIVRD"); err != nil {
		t.Fatalf("receipt of an HTTP message on %s: %v, want ESME_ROK", c.name, err)
	}
	testutil.CheckFor(t, 15*time.Second, func() error {
		if _, st := a.call("GET", "/v1/messages/"+m.ID, ""); !strings.Contains(st, `"delivered"`) {
			return fmt.Errorf("status of %s on %s: %s, want delivered", m.ID, a.name, st)
		}
		return nil
	})
	testutil.CheckFor(t, 15*time.Second, func() error {
		hookMu.Lock()
		defer hookMu.Unlock()
		for _, h := range hooked {
			if strings.Contains(h, `"message.status"`) && strings.Contains(h, `"id":"`+m.ID+`"`) &&
				strings.Contains(h, `"state":"delivered"`) {
				return nil
			}
		}
		return fmt.Errorf("no message.status delivered for %s among %d webhook events", m.ID, len(hooked))
	})
}

// TestClusterReceiptWaitsForItsDeadOwner: the node that submitted a
// message is SIGKILLed once the message's mapping is in its store. Its
// receipt, delivered on B meanwhile, cannot be called nobody's (A does
// not answer), so B answers ESME_RX_T_APPN and the SMSC keeps it; once A
// is back the SMSC's retry on B is taken by A and reaches the ESME bound
// on A.
func TestClusterReceiptWaitsForItsDeadOwner(t *testing.T) {
	optgateBinary(t)
	smsc, bind := sharedSMSC(t)
	nodes := startCluster(t, bind)
	a, b := nodes[0], nodes[1]
	ea := a.esme(t)

	id := submitForReceipt(t, ea, "+15145550601")
	sub := nextSubmit(t, smsc, a.name)
	testutil.CheckFor(t, 15*time.Second, func() error {
		if n := a.metric(t, "optgate_gateway_receipt_map_writes_total", ""); n < 1 {
			return fmt.Errorf("%s wrote %v receipt mappings to its store, want 1", a.name, n)
		}
		return nil
	})
	ea.Close() // its connection dies with A; the platform binds again after A's restart (below)
	a.kill()
	err := receiptOn(smsc, b.name, sub.MessageID, sub.PDU, "DELIVRD")
	if st := smpp.StatusOf(err); st != smpp.StatusXTAppn {
		t.Fatalf("receipt on %s with its owner %s down: %v, want ESME_RX_T_APPN (the SMSC must keep it)", b.name, a.name, err)
	}
	a.start(t)
	a.ready(t)
	ea = a.esme(t)
	testutil.CheckFor(t, 30*time.Second, func() error { // the SMSC's retries
		if err := receiptOn(smsc, b.name, sub.MessageID, sub.PDU, "DELIVRD"); err != nil {
			return fmt.Errorf("receipt on %s after %s came back: %v", b.name, a.name, err)
		}
		return nil
	})
	if _, ok := receiptFor(t, ea, id, 45*time.Second); !ok {
		t.Fatalf("the ESME on %s got no receipt for %s after its restart:\n%s", a.name, id, a.out.String())
	}
}

// TestClusterReceiptBeforeTheSubmitIsAnswered: an SMSC that answers A's
// submit_sm only once B answered the message's receipt. A cannot know the
// receipt's message while B asks (its mapping comes with the answer), so
// B parks it, answered, as nobody's; when its grace period ends B asks
// once more, A now has the mapping and takes it, and the ESME on A gets
// the receipt.
func TestClusterReceiptBeforeTheSubmitIsAnswered(t *testing.T) {
	optgateBinary(t)
	smsc, bind := sharedSMSC(t)
	nodes := startCluster(t, bind, func(_ int, c *nodeConfig) { c.Extra += "receipts: {grace: 2s}\n" })
	a, b := nodes[0], nodes[1]
	ea := a.esme(t)
	answered := make(chan error, 1)
	receiptFirst(smsc, b.name, "+15145550702", "900002", func(receipt func() error, respond func()) {
		go func() {
			answered <- receipt()
			respond()
		}()
	})
	id := submitForReceipt(t, ea, "+15145550702")
	if err := <-answered; err != nil {
		t.Fatalf("receipt on %s before the submit_sm_resp: %v, want ESME_ROK", b.name, err)
	}
	if _, ok := receiptFor(t, ea, id, 30*time.Second); !ok {
		t.Fatalf("the ESME on %s got no receipt for %s, delivered on %s before its submit_sm_resp:\n%s\n%s",
			a.name, id, b.name, a.out.String(), b.out.String())
	}
	// A forwards the receipt before it answers B's claim: B counts it a
	// moment after the ESME got it.
	testutil.CheckFor(t, 10*time.Second, func() error {
		if got := b.metric(t, "optgate_gateway_receipts_total", `outcome="claimed"`); got != 1 {
			return fmt.Errorf("%s counted %v receipts claimed by another node, want 1", b.name, got)
		}
		return nil
	})
}

// TestClusterReceiptFollowsTheESME: a message submitted via the ESME
// bound on A, which then unbinds and binds only on C; the receipt the
// SMSC delivers on B is taken by A (the mapping is there), which finds no
// bind of the account and spools it, and the cluster-wide deliver queue
// hands it to C, where the ESME gets it with our message id.
func TestClusterReceiptFollowsTheESME(t *testing.T) {
	optgateBinary(t)
	smsc, bind := sharedSMSC(t)
	nodes := startCluster(t, bind)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ea := a.esme(t)
	id := submitForReceipt(t, ea, "+15145550701")
	sub := nextSubmit(t, smsc, a.name)
	ea.Close()
	ec := c.esme(t)
	if err := receiptOn(smsc, b.name, sub.MessageID, sub.PDU, "DELIVRD"); err != nil {
		t.Fatalf("receipt on %s: %v, want ESME_ROK", b.name, err)
	}
	if text, ok := receiptFor(t, ec, id, 30*time.Second); !ok {
		t.Fatalf("the ESME now bound on %s got no receipt for %s (submitted on %s, receipt on %s):\n%s",
			c.name, id, a.name, b.name, a.out.String())
	} else if !strings.Contains(text, "stat:DELIVRD") {
		t.Fatalf("receipt forwarded: %q", text)
	}
}
