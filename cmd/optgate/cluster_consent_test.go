package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// Issue 16 item 3: what is consent-related is cluster-wide. These tests
// run three real `optgate serve` processes (cluster_test.go's helpers).

// mo sends text from rcpt through n's SMSC simulator and requires the
// SMSC's ESME_ROK.
func (n *clusterNode) mo(t *testing.T, rcpt, text string) {
	t.Helper()
	code, body := n.call("POST", "/v1/simulator/mo", `{"from":"`+rcpt+`","to":"+15145550199","text":"`+text+`"}`)
	if code != 200 || !strings.Contains(body, "ESME_ROK") {
		t.Fatalf("%s from %s on %s: %d %s", text, rcpt, n.name, code, body)
	}
}

// metric is the sum of the samples of the metric family name (with the
// label filter, "" for all) on n's /metrics.
func (n *clusterNode) metric(t *testing.T, name, filter string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+n.httpAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metrics of %s: %v", n.name, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, filter) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// consentState is tenant acme's tenant-wide SMS state of rcpt on n.
func (n *clusterNode) consentState(rcpt string) string {
	code, body := n.call("GET", "/v1/consent/"+rcpt, "")
	if code != 200 {
		return fmt.Sprintf("HTTP %d", code)
	}
	_, after, _ := strings.Cut(body, `"tenant_wide":`)
	_, after, _ = strings.Cut(after, `"state":"`)
	state, _, _ := strings.Cut(after, `"`)
	return state
}

// receiptFor waits (bounded) for a delivery receipt of message id on e and
// returns its text.
func receiptFor(t *testing.T, e *smpptest.ESME, id string, within time.Duration) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		d, err := e.NextDeliver(ctx)
		if err != nil {
			return "", false
		}
		if d.ESMClass&smpp.ESMClassReceipt != 0 && strings.Contains(string(d.ShortMessage), "id:"+id+" ") {
			return string(d.ShortMessage), true
		}
	}
}

// TestClusterHeldReleasedOnceByYESOnAnotherNode: an attestation tenant's
// message submitted on node A to a recipient who has not opted in is
// held there (A sends the prompt). The recipient's YES arrives on node B:
// B releases the message (the held message travels with the consent
// log), sends it through its SMSC and the receipt reaches the ESME bound
// on B. It is released once: a second YES on C releases nothing, and A
// never sends it (A's ESME gets no receipt for it, A's status stays
// held). A STOP on C drops a message held on A: refused, never sent.
func TestClusterHeldReleasedOnceByYESOnAnotherNode(t *testing.T) {
	optgateBinary(t)
	nodes := startCluster(t, func(_ int, c *nodeConfig) { c.Tenant, c.Receipts = "attestation: attestation", true })
	a, b, c := nodes[0], nodes[1], nodes[2]
	ea, eb := a.esme(t), b.esme(t)
	submit := func(to string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		id, err := ea.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{RegisteredDelivery: 1,
			Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")}, Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(to[1:])},
			ShortMessage: []byte("your interview is at 3pm")}})
		if err != nil || id == "" {
			t.Fatalf("submit_sm to %s on %s: %q %v (an attestation hold is accepted)", to, a.name, id, err)
		}
		return id
	}
	waitState := func(n *clusterNode, rcpt, want string) {
		t.Helper()
		testutil.CheckFor(t, 15*time.Second, func() error {
			if got := n.consentState(rcpt); got != want {
				return fmt.Errorf("%s's state on %s: %q, want %q", rcpt, n.name, got, want)
			}
			return nil
		})
	}

	const rcpt = "+15145550401"
	id := submit(rcpt)
	waitState(b, rcpt, "pending") // the hold (and its pending state) reached B
	b.mo(t, rcpt, "YES")
	if text, ok := receiptFor(t, eb, id, 20*time.Second); !ok {
		_, sb := b.call("GET", "/v1/messages/"+id, "")
		_, sa := a.call("GET", "/v1/messages/"+id, "")
		t.Fatalf("no receipt for the released message %s on the ESME bound to %s (status there %s, on %s %s, state %s):\n%s",
			id, b.name, sb, a.name, sa, b.consentState(rcpt), b.out.String())
	} else if !strings.Contains(text, "stat:DELIVRD") {
		t.Fatalf("receipt of the released message: %q", text)
	}
	waitState(c, rcpt, "opted_in")
	c.mo(t, rcpt, "YES") // a repeated YES elsewhere: nothing left to release
	if code, _ := c.call("GET", "/v1/messages/"+id, ""); code != 404 {
		t.Fatalf("GET /v1/messages/%s on %s: %d, want 404 (it released nothing)", id, c.name, code)
	}
	if text, ok := receiptFor(t, ea, id, 2*time.Second); ok {
		t.Fatalf("%s sent the message released on %s too: %q", a.name, b.name, text)
	}
	if _, body := a.call("GET", "/v1/messages/"+id, ""); !strings.Contains(body, `"held"`) {
		t.Fatalf("status of %s on %s: %s (want held: A never released it)", id, a.name, body)
	}

	const rcpt2 = "+15145550402"
	id2 := submit(rcpt2)
	waitState(c, rcpt2, "pending")
	c.mo(t, rcpt2, "STOP")
	waitState(a, rcpt2, "opted_out")
	for _, e := range []*smpptest.ESME{ea, eb} {
		if text, ok := receiptFor(t, e, id2, 3*time.Second); ok && !strings.Contains(text, "stat:REJECTD") {
			t.Fatalf("message held for a recipient who then said STOP: receipt %q", text)
		}
	}
}

// TestClusterRetriedSTOPOnAnotherNodeConfirmedOnce: an SMSC that did not
// get our answer to a STOP delivers it again, on another bind, that is
// another node. The confirmation was sent once (by the first node) and is
// not sent again: the repeat-confirmation window is in the replicated
// consent record. After the whole cluster is stopped and started again
// no node sends a confirmation again (pending replies are per node and
// were sent), and the STOP's evidence can be read on every node.
func TestClusterRetriedSTOPOnAnotherNodeConfirmedOnce(t *testing.T) {
	optgateBinary(t)
	nodes := startCluster(t)
	a, b := nodes[0], nodes[1]
	const rcpt = "+15145550403"
	a.mo(t, rcpt, "STOP")
	confirmations := func() float64 {
		sum := 0.0
		for _, n := range nodes {
			sum += n.metric(t, "optgate_gateway_auto_replies_total", "")
		}
		return sum
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if got := confirmations(); got != 1 {
			return fmt.Errorf("confirmations after the STOP: %v, want 1", got)
		}
		return nil
	})
	requireSettled := func() {
		t.Helper()
		for _, n := range nodes {
			testutil.CheckFor(t, 15*time.Second, func() error {
				if s := n.consentState(rcpt); s != "opted_out" {
					return fmt.Errorf("%s on %s: %s", rcpt, n.name, s)
				}
				return nil
			})
		}
	}
	requireSettled()
	b.mo(t, rcpt, "STOP") // the SMSC's retry, on B's bind
	nodes[2].mo(t, rcpt, "stop")
	time.Sleep(time.Second) // a confirmation would be sent within milliseconds: give it time to show
	testutil.RequireEqual(t, confirmations(), 1.0, "confirmations after the retries on B and C")

	restartCluster(t, nodes)
	requireSettled()
	time.Sleep(time.Second)
	testutil.RequireEqual(t, confirmations(), 0.0, "confirmations sent after the whole cluster restarted")
	for _, n := range nodes {
		code, body := n.call("GET", "/v1/consent/"+rcpt+"/history", "")
		if code != 200 || !strings.Contains(body, "STOP") {
			t.Fatalf("evidence of the STOP on %s: %d %s", n.name, code, body)
		}
	}
}

// TestClusterWhatsAppWindowOnEveryNode: three nodes share one WhatsApp
// business number (one Graph API, here the whatsapptest mock on
// loopback). A user message that Meta posts to node A's webhook opens the
// 24-hour window on every node: before it, a free-form send on B is
// refused (whatsapp_window_closed); after it, B and C send free-form, and
// the channel the user last wrote on (WhatsApp) is what C chooses for a
// submit_sm.
func TestClusterWhatsAppWindowOnEveryNode(t *testing.T) {
	optgateBinary(t)
	const pid, secret = "100000000000001", "cluster-wa-app-secret"
	mock := whatsapptest.NewServer(whatsapptest.Config{Token: "cluster-wa-token", AppSecret: secret, EnforceWindow: true,
		Meta: whatsapptest.Meta{PhoneNumberID: pid}})
	t.Cleanup(mock.Close)
	nodes := startCluster(t, func(_ int, c *nodeConfig) {
		c.Extra = `whatsapp:
  graph_url: ` + mock.URL() + `
  token: cluster-wa-token
  app_secret: ` + secret + `
  verify_token: cluster-wa-verify
  numbers: [{phone_number_id: "` + pid + `", number: "+15550783881", tenant: acme}]`
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	const user = "+447700900321"
	send := func(n *clusterNode, channel string) (int, string) {
		ch := ""
		if channel != "" {
			ch = `,"channel":"` + channel + `"`
		}
		return n.call("POST", "/v1/messages", `{"to":"`+user+`","text":"Thanks for your message"`+ch+`}`)
	}
	if code, body := send(b, "whatsapp"); code != 403 || !strings.Contains(body, "whatsapp_window_closed") {
		t.Fatalf("free-form before the user wrote, on %s: %d %s", b.name, code, body)
	}
	now := time.Now()
	mock.OpenWindow(pid, user, now)
	st, err := whatsapptest.Post(nil, "http://"+a.httpAddr+"/webhooks/whatsapp", secret,
		whatsapptest.InboundText(whatsapptest.Meta{PhoneNumberID: pid}, user[1:], "wamid.CLUSTER0001", "Hello", now))
	if err != nil || st != 200 {
		t.Fatalf("user message to %s's webhook: %d %v", a.name, st, err)
	}
	for _, n := range []*clusterNode{b, c} {
		testutil.CheckFor(t, 15*time.Second, func() error {
			if code, body := send(n, "whatsapp"); code != 202 {
				return fmt.Errorf("free-form in the window opened on %s, sent on %s: %d %s", a.name, n.name, code, body)
			}
			return nil
		})
	}
	// Over SMPP a submit goes to WhatsApp only when the recipient last
	// wrote there (channel.go): C knows it from A.
	before := len(mock.Requests())
	if st := submitTo(c.esme(t), user); st != smpp.StatusOK {
		t.Fatalf("submit_sm to %s on %s: %#x", user, c.name, uint32(st))
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if reqs := mock.Requests(); len(reqs) <= before {
			return fmt.Errorf("the submit_sm on %s did not go over WhatsApp, the channel the user last wrote on (to %s)", c.name, a.name)
		}
		return nil
	})
}

// TestClusterImportAndOperatorOptOutOnEveryNode: a CSV import of 5,000
// opt-outs on node A (cut into many log records) and an operator opt-out
// over the API on node B are enforced on every node, and the export on
// node C lists every one of them.
func TestClusterImportAndOperatorOptOutOnEveryNode(t *testing.T) {
	optgateBinary(t)
	nodes := startCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const n = 5000
	var csv strings.Builder
	csv.WriteString("recipient,scope,class\n")
	for i := range n {
		fmt.Fprintf(&csv, "+1514557%04d,tenant,all\n", i)
	}
	code, body := a.call("POST", "/v1/consent/import?source=previous_provider&proof_ref=cluster-test", csv.String())
	if code != 200 || !strings.Contains(body, fmt.Sprintf(`"applied":%d`, n)) {
		t.Fatalf("import on %s: %d %s", a.name, code, body)
	}
	code, body = b.call("POST", "/v1/consent/+15145558001/opt-out", `{"note":"asked by phone"}`)
	if code != 200 {
		t.Fatalf("operator opt-out on %s: %d %s", b.name, code, body)
	}
	for _, nd := range nodes {
		e := nd.esme(t)
		for _, rcpt := range []string{"+15145570000", "+15145572500", "+15145574999", "+15145558001"} {
			requireRefused(t, nd, e, rcpt, false)
		}
	}
	code, body = c.call("GET", "/v1/consent/export", "")
	if code != 200 {
		t.Fatalf("export on %s: %d", c.name, code)
	}
	if got := strings.Count(body, "+1514557"); got < n {
		t.Fatalf("export on %s lists %d of the %d imported opt-outs", c.name, got, n)
	}
	if !strings.Contains(body, "+15145558001") {
		t.Fatalf("export on %s lacks the operator opt-out made on %s", c.name, b.name)
	}
}
