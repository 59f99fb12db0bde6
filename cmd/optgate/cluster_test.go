package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// clusterNode is one `optgate serve` process of a three-node cluster on
// loopback: its own store, SMPP and HTTP listeners, built-in SMSC
// simulator and embedded NATS server, routed to the two others.
type clusterNode struct {
	name, cfgPath, httpAddr, smppAddr string
	cmd                               *exec.Cmd
	out                               *syncBuffer
}

const clusterToken = "acme-cluster-token"

// startCluster starts three nodes and waits until every one is ready.
func startCluster(t *testing.T, opts ...nodeOption) []*clusterNode {
	t.Helper()
	nodes := newClusterNodes(t, opts...)
	for _, n := range nodes {
		n.start(t)
	}
	for _, n := range nodes {
		n.ready(t)
	}
	return nodes
}

// nodeConfig is what a test may change in one node's configuration
// (nodeOption); the zero value is the default node.
type nodeConfig struct {
	// Tenant and Account are added to the flow mappings of tenant acme
	// and account acme ("attestation: attestation", "ack: store").
	Tenant, Account string
	// Extra is appended to the configuration as top-level YAML
	// ("queue: {max_age: 5s}").
	Extra string
	// NoSimulator leaves out the built-in SMSC simulator; Receipts has it
	// send delivery receipts.
	NoSimulator, Receipts bool
}

// nodeOption sets node i's (0-based) configuration.
type nodeOption func(i int, c *nodeConfig)

// newClusterNodes writes the three nodes' configurations.
func newClusterNodes(t *testing.T, opts ...nodeOption) []*clusterNode {
	t.Helper()
	routes := []string{freePort(t), freePort(t), freePort(t)}
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		dir := t.TempDir()
		n := &clusterNode{name: fmt.Sprintf("n%d", i+1), cfgPath: filepath.Join(dir, "optgate.yaml"),
			httpAddr: freePort(t), smppAddr: freePort(t)}
		var nc nodeConfig
		for _, o := range opts {
			o(i, &nc)
		}
		sim := fmt.Sprintf("simulator: {enabled: true, listen: %q, system_id: optgate, password: simpw, receipts: %t}",
			freePort(t), nc.Receipts)
		if nc.NoSimulator {
			sim = ""
		}
		if nc.Tenant != "" {
			nc.Tenant = ", " + nc.Tenant
		}
		if nc.Account != "" {
			nc.Account = ", " + nc.Account
		}
		cfg := fmt.Sprintf(`
store: {dir: %q, low_memory: true}
smpp: {listen: %q}
http: {listen: %q, admin_token: cluster-admin-token}
%s
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: %s, numbers: ["+15145550199"]%s}
accounts:
  - {system_id: acme, password: acmepw, tenant: acme%s}
cluster:
  node: %s
  embedded: {listen: %q, cluster_listen: %q, routes: [%s]}
%s
`, filepath.Join(dir, "data"), n.smppAddr, n.httpAddr, sim, clusterToken, nc.Tenant, nc.Account, n.name, freePort(t), routes[i],
			strings.Join(routes, ", "), nc.Extra)
		if err := os.WriteFile(n.cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
	}
	return nodes
}

func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	n.cmd = exec.Command(optgateBinary(t), "serve", "-config", n.cfgPath)
	n.out = &syncBuffer{}
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := n.cmd
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	})
}

func (n *clusterNode) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
}

// call is one HTTP request; a node that does not answer is code 0.
func (n *clusterNode) call(method, path, body string) (int, string) {
	req, _ := http.NewRequest(method, "http://"+n.httpAddr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+clusterToken)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ready waits (bounded) for /readyz: the node has joined the cluster,
// caught up with the consent log and bound its simulator.
func (n *clusterNode) ready(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := n.call("GET", "/readyz", ""); code == 200 {
			return
		}
		if n.cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, why := n.call("GET", "/readyz", "")
	t.Fatalf("node %s not ready (%s):\n%s", n.name, why, n.out.String())
}

// stop sends a STOP from rcpt through n's SMSC simulator (a deliver_sm
// on n's SMSC bind) and reports whether the SMSC got ESME_ROK.
func (n *clusterNode) stop(rcpt string) (bool, string) {
	code, body := n.call("POST", "/v1/simulator/mo", `{"from":"`+rcpt+`","to":"+15145550199","text":"STOP"}`)
	return code == 200 && strings.Contains(body, "ESME_ROK"), fmt.Sprintf("%d %s", code, body)
}

// esme binds account acme to n's SMPP server.
func (n *clusterNode) esme(t *testing.T) *smpptest.ESME {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := smpptest.NewESME(ctx, smpp.ClientConfig{Addr: n.smppAddr, SystemID: "acme", Password: "acmepw"})
	if err != nil {
		t.Fatalf("bind to %s: %v", n.name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func submitTo(c *smpptest.ESME, to string) smpp.CommandStatus {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{
		Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")}, Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(to[1:])},
		ShortMessage: []byte("hello")}})
	return smpp.StatusOf(err)
}

// requireRefused waits (bounded: replication to another node is
// asynchronous, a few milliseconds; a node whose feed stalled fails
// closed until it is back, seconds on this busy machine) until a
// submit_sm to rcpt on esme is refused 0x401; a temporary refusal (a node
// not current) is retried. With settled (the STOP was acknowledged long
// before max_lag ago) a send is a lost STOP and fails the test at once;
// without, it may be a send within max_lag of the STOP, which the
// cluster does not promise to refuse, and is retried.
func requireRefused(t *testing.T, n *clusterNode, c *smpptest.ESME, rcpt string, settled bool) {
	t.Helper()
	testutil.CheckFor(t, 15*time.Second, func() error {
		st := submitTo(c, rcpt)
		if settled && st == smpp.StatusOK {
			t.Fatalf("submit_sm to a STOPped number on %s was sent: the STOP is lost there", n.name)
		}
		if st != smpp.StatusOptedOut {
			_, why := n.call("GET", "/readyz", "")
			return fmt.Errorf("submit_sm to a STOPped number on %s: status %#x, want 0x401 (readyz: %s)", n.name, uint32(st), why)
		}
		return nil
	})
}

// TestClusterSTOPOnAReachesBAndC: three optgate processes with embedded
// NATS clustered. A STOP the SMSC delivers on node A (acknowledged
// ESME_ROK only after the quorum holds it) is enforced on B and C:
// submit_sm refused 0x401, POST /v1/messages 403. Node B SIGKILLed and
// restarted still refuses, and so does every node after the whole
// cluster was stopped and started again. A send to another number goes
// out (the cluster does not block everything).
func TestClusterSTOPOnAReachesBAndC(t *testing.T) {
	optgateBinary(t)
	nodes := startCluster(t)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const rcpt = "+15145550301"
	if ok, why := a.stop(rcpt); !ok {
		t.Fatalf("STOP on %s: %s\n%s", a.name, why, a.out.String())
	}
	eb, ec := b.esme(t), c.esme(t)
	requireRefused(t, b, eb, rcpt, false)
	requireRefused(t, c, ec, rcpt, false)
	if code, body := b.call("POST", "/v1/messages", `{"to":"`+rcpt+`","text":"hello"}`); code != 403 || !strings.Contains(body, "recipient_opted_out") {
		t.Fatalf("HTTP send on %s: %d %s, want 403 recipient_opted_out", b.name, code, body)
	}
	if st := submitTo(ec, "+15145550302"); st != smpp.StatusOK {
		t.Fatalf("submit_sm to another number on %s: %#x, want ESME_ROK", c.name, uint32(st))
	}

	eb.Close()
	b.kill()
	b.start(t)
	b.ready(t)
	requireRefused(t, b, b.esme(t), rcpt, true)
	if code, body := b.call("POST", "/v1/messages", `{"to":"`+rcpt+`","text":"hello"}`); code != 403 {
		t.Fatalf("HTTP send on %s after SIGKILL and restart: %d %s, want 403", b.name, code, body)
	}

	// The whole cluster stopped (SIGTERM) and started again: the STOP is
	// still refused everywhere.
	restartCluster(t, nodes)
	for _, n := range nodes {
		requireRefused(t, n, n.esme(t), rcpt, true)
	}
}

// restartCluster stops every node (SIGTERM), then starts them all again
// and waits until each is ready.
func restartCluster(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	for _, n := range nodes {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range nodes {
		n.cmd.Wait()
	}
	for _, n := range nodes {
		n.start(t)
	}
	for _, n := range nodes {
		n.ready(t)
	}
}

// TestClusterSTOPStreamSurvivesSIGKILL: five rounds of 1,000 STOPs spread
// over the three nodes by four concurrent senders (as SMSCs deliver them;
// OPTGATE_SOAK_ROUNDS asks for more rounds: scripts/soak.sh);
// in each round one node (another each round, so the stream leader is
// likely among them) is SIGKILLed once half of the round's STOPs are
// acknowledged, and restarted when the round ends. Every STOP the SMSC
// got ESME_ROK for is then refused 0x401 on every node: 0 lost. A STOP
// meant for the dead node goes to the next one, as an SMSC's retry on
// another bind would; one refused with a temporary error (no leader yet)
// is not acknowledged and not counted.
func TestClusterSTOPStreamSurvivesSIGKILL(t *testing.T) {
	optgateBinary(t)
	nodes := startCluster(t)
	rounds, perRound, workers := 5, 1000, 4
	if n, err := strconv.Atoi(os.Getenv("OPTGATE_SOAK_ROUNDS")); err == nil && n > rounds {
		rounds = n // the soak target (scripts/soak.sh)
	}
	var (
		mu    sync.Mutex
		acked []string
	)
	for r := range rounds {
		victim := nodes[r%3]
		var dead atomic.Bool
		var wg sync.WaitGroup
		var roundAcked atomic.Int64
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < perRound; i += workers {
					rcpt := fmt.Sprintf("+1514556%d%03d", r%10, i)
					for try := range 3 { // the addressed node, then the next ones
						n := nodes[(i+try)%3]
						if n == victim && dead.Load() {
							continue
						}
						if ok, _ := n.stop(rcpt); ok {
							mu.Lock()
							acked = append(acked, rcpt)
							mu.Unlock()
							roundAcked.Add(1)
							break
						}
					}
				}
			}()
		}
		testutil.CheckFor(t, 30*time.Second, func() error {
			if n := roundAcked.Load(); n < int64(perRound/2) {
				return fmt.Errorf("round %d: %d of %d STOPs acknowledged", r, n, perRound)
			}
			return nil
		})
		dead.Store(true)
		victim.kill()
		wg.Wait()
		victim.start(t)
		victim.ready(t)
	}
	if len(acked) < rounds*perRound/2 {
		t.Fatalf("only %d of %d STOPs acknowledged", len(acked), rounds*perRound)
	}
	// A survivor whose ordered consumer lived on the killed server, or
	// whose probes went to a killed leader, fails closed until its feed is
	// back (seconds after a leader's death): wait for every node to be
	// current again before checking.
	start := time.Now()
	for _, n := range nodes {
		n.ready(t)
	}
	t.Logf("every node current again %v after the last restart", time.Since(start).Round(time.Millisecond))
	for _, n := range nodes {
		c := n.esme(t)
		for _, rcpt := range acked {
			requireRefused(t, n, c, rcpt, true)
		}
	}
	t.Logf("%d of %d STOPs acknowledged, every one refused on the 3 nodes", len(acked), rounds*perRound)
}

// TestClusterNodeCutOffFailsClosed: with both peers SIGKILLed, node A
// cannot prove it is current: within max_lag and a probe or two it
// refuses MT with a temporary status (submit_sm ESME_RX_T_APPN, HTTP 503
// with Retry-After) and /readyz is false; once one peer is back (a
// quorum of two) it sends again by itself.
func TestClusterNodeCutOffFailsClosed(t *testing.T) {
	optgateBinary(t)
	nodes := startCluster(t)
	a := nodes[0]
	ea := a.esme(t)
	const rcpt = "+15145550401"
	if st := submitTo(ea, rcpt); st != smpp.StatusOK {
		t.Fatalf("submit_sm before the cut: %#x", uint32(st))
	}
	nodes[1].kill()
	nodes[2].kill()
	testutil.CheckFor(t, 5*time.Second, func() error {
		if st := submitTo(ea, rcpt); st != smpp.StatusXTAppn {
			return fmt.Errorf("submit_sm on a node cut off: %#x, want ESME_RX_T_APPN", uint32(st))
		}
		return nil
	})
	req, _ := http.NewRequest("POST", "http://"+a.httpAddr+"/v1/messages", strings.NewReader(`{"to":"`+rcpt+`","text":"hello"}`))
	req.Header.Set("Authorization", "Bearer "+clusterToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "store_unavailable") {
		t.Fatalf("HTTP send on a node cut off: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if code, why := a.call("GET", "/readyz", ""); code == 200 {
		t.Fatalf("/readyz on a node cut off: %d %s", code, why)
	}
	nodes[1].start(t)
	nodes[1].ready(t)
	testutil.CheckFor(t, 20*time.Second, func() error {
		if st := submitTo(ea, rcpt); st != smpp.StatusOK {
			return fmt.Errorf("submit_sm after a peer came back: %#x", uint32(st))
		}
		return nil
	})
}
