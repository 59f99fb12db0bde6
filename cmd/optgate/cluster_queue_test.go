package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
	"github.com/optgate/optgate/smpp/smpptest"
)

// Issue 16 items 5 (MOs and receipts reach the node their ESME is bound
// to) and 6 (queued MT survives a node): the cluster's work queue
// (cluster/queue.go, gateway/cluster_queue.go), with three real `optgate
// serve` processes (cluster_test.go's helpers).

// labSMSC gives every node a link to smsc (system_id n1, n2, n3: the
// SMSC tells the nodes apart by it) instead of the built-in simulator,
// account acme ack: store, and extra top-level YAML.
func labSMSC(smsc *smpptest.Server, extra string) nodeOption {
	return func(i int, c *nodeConfig) {
		c.Account = "ack: store"
		c.NoSimulator = true
		c.Extra = fmt.Sprintf(`smscs:
  - {name: lab, address: %q, system_id: n%d, password: pw, timeout: 60s}
routes:
  - {prefix: "+", smscs: [lab]}
%s`, smsc.Addr(), i+1, extra)
	}
}

// startClusterWith starts three nodes as startCluster does, with yaml
// added to every node's cluster: section.
func startClusterWith(t *testing.T, yaml string, opts ...nodeOption) []*clusterNode {
	t.Helper()
	nodes := newClusterNodes(t, opts...)
	for _, n := range nodes {
		b, err := os.ReadFile(n.cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(n.cfgPath, []byte(strings.Replace(string(b), "\ncluster:\n", "\ncluster:\n"+yaml, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	startNodes(t, nodes)
	return nodes
}

// startNodes starts nodes and waits until every one is ready; a failed
// test logs their output.
func startNodes(t *testing.T, nodes []*clusterNode) {
	t.Helper()
	for _, n := range nodes {
		n.start(t)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("node %s:\n%s", n.name, n.out.String())
			}
		}
	})
	for _, n := range nodes {
		n.ready(t)
	}
}

// submitQueued submits text to `to` on c asking for a receipt and returns
// the message id; ack: store answers ESME_ROK once the message is in the
// cluster's work queue.
func submitQueued(t *testing.T, c *smpptest.ESME, to, text string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := c.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{
		Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550199")}, Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(to[1:])},
		RegisteredDelivery: 1, ShortMessage: []byte(text)}})
	if err != nil || id == "" {
		t.Fatalf("submit_sm to %s: id %q, %v", to, id, err)
	}
	return id
}

// receipts reads deliver_sm from c until it holds a receipt for every id
// in want (bounded) and returns each one's stat; other deliver_sm (MOs)
// are skipped.
func receipts(t *testing.T, c *smpptest.ESME, want ...string) map[string]string {
	t.Helper()
	got := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for len(got) < len(want) {
		d, err := c.NextDeliver(ctx)
		if err != nil {
			t.Fatalf("receipts for %v: have %v: %v", want, got, err)
		}
		if d.ESMClass&smpp.ESMClassReceipt == 0 {
			continue
		}
		r, err := dlr.Parse(string(d.ShortMessage))
		if err != nil {
			t.Fatalf("unreadable receipt %q: %v", d.ShortMessage, err)
		}
		for _, id := range want {
			if r.ID == id {
				got[id] = r.Stat
			}
		}
	}
	return got
}

// submitLog is what the lab SMSC saw: texts held unanswered (n1) and
// texts accepted, by destination.
type submitLog struct {
	mu       sync.Mutex
	held     map[string]int
	accepted map[string][]string // to → the system ids that sent it
}

func (l *submitLog) add(m map[string]int, to string) {
	l.mu.Lock()
	m[to]++
	l.mu.Unlock()
}

func (l *submitLog) count(m map[string]int, to string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return m[to]
}

// labIDs numbers the lab SMSC's message ids.
var labIDs atomic.Uint64

// acceptWithReceipt answers a submit_sm ESME_ROK and sends its DELIVRD
// receipt on the same bind, again (a real SMSC's retry) until the node
// answers ESME_ROK: a node may answer ESME_RX_T_APPN while the work queue
// has no leader, after a node died.
func acceptWithReceipt(smsc *smpptest.Server, r *smpp.Request, sm *smpp.SubmitSM) {
	id := fmt.Sprint(labIDs.Add(1))
	d := smpptest.Receipt(id, sm, "DELIVRD", time.Now())
	acct := r.Conn.SystemID()
	r.Respond(smpp.StatusOK, &smpp.SubmitSMResp{MessageID: []byte(id)})
	go func() {
		for range 60 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := smsc.SendDeliver(ctx, acct, d)
			cancel()
			if err == nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
}

// TestClusterQueuedMTSurvivesNode: account acme is ack: store. Node A's
// SMSC takes its submits and never answers (A is mid-send); B's and C's
// answer ESME_RX_T_APPN (so the items come back to A). Two messages queued
// through A reach A's SMSC; meanwhile the second's recipient says STOP on
// C. A is SIGKILLed, B and C's SMSC recovers: after the work queue's ack
// wait the first message is sent by B or C and its DELIVRD receipt
// reaches the ESME bound on B; the second is screened again, refused
// (REJECTD receipt) and never sent by B or C.
func TestClusterQueuedMTSurvivesNode(t *testing.T) {
	optgateBinary(t)
	smsc := smpptest.NewServer(smpptest.Config{})
	defer smsc.Close()
	var (
		recovered atomic.Bool
		log       = &submitLog{held: map[string]int{}, accepted: map[string][]string{}}
	)
	const text1, text2 = "queued one", "queued two"
	smsc.OnPDU(func(r *smpp.Request) bool {
		sm, ok := r.PDU.(*smpp.SubmitSM)
		if !ok {
			return false
		}
		to := "+" + string(sm.Dest.Addr)
		switch {
		case r.Conn.SystemID() == "n1":
			if string(sm.ShortMessage) == text1 || string(sm.ShortMessage) == text2 {
				log.add(log.held, to)
			}
			r.Forget() // a send under way when the node dies
			return true
		case !recovered.Load():
			r.Respond(smpp.StatusXTAppn, nil)
			return true
		}
		if string(sm.ShortMessage) == text1 || string(sm.ShortMessage) == text2 {
			log.mu.Lock()
			log.accepted[to] = append(log.accepted[to], r.Conn.SystemID())
			log.mu.Unlock()
		}
		acceptWithReceipt(smsc, r, sm)
		return true
	})
	nodes := startClusterWith(t, "  work_ack_wait: 3s\n", labSMSC(smsc, "queue: {max_backoff: 1s}"))
	a, b := nodes[0], nodes[1]
	ea, eb := a.esme(t), b.esme(t)
	const rcpt1, rcpt2 = "+15145550501", "+15145550502"
	id1 := submitQueued(t, ea, rcpt1, text1)
	id2 := submitQueued(t, ea, rcpt2, text2)
	testutil.CheckFor(t, 60*time.Second, func() error {
		if log.count(log.held, rcpt1) == 0 || log.count(log.held, rcpt2) == 0 {
			return fmt.Errorf("A's SMSC holds %d and %d of the two messages", log.count(log.held, rcpt1), log.count(log.held, rcpt2))
		}
		return nil
	})
	// The second recipient says STOP on C, while A is still sending.
	testutil.CheckFor(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return smsc.SendMO(ctx, "n3", rcpt2, "+15145550199", "STOP")
	})
	a.kill()
	recovered.Store(true)
	got := receipts(t, eb, id1, id2)
	if got[id1] != "DELIVRD" || got[id2] != "REJECTD" {
		t.Fatalf("receipts on B's ESME: %v, want %s DELIVRD and %s REJECTD", got, id1, id2)
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if s := log.accepted[rcpt2]; len(s) != 0 {
		t.Fatalf("the message to %s (STOP acknowledged on C before A died) was sent by %v", rcpt2, s)
	}
	if s := log.accepted[rcpt1]; len(s) == 0 || strings.Contains(strings.Join(s, ","), "n1") {
		t.Fatalf("the message to %s was sent by %v, want B or C", rcpt1, s)
	}
}

// TestClusterMOReachesESMEOnOtherNode: account acme's ESME is bound only
// on A; an MO arrives on B (B's SMSC simulator): B has no bind for it,
// spools it to the work queue, and A delivers it to its ESME.
func TestClusterMOReachesESMEOnOtherNode(t *testing.T) {
	optgateBinary(t)
	nodes := startCluster(t)
	a, b := nodes[0], nodes[1]
	ea := a.esme(t)
	const text = "hello from a handset, via B"
	b.mo(t, "+15145550601", text)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		d, err := ea.NextDeliver(ctx)
		if err != nil {
			t.Fatalf("MO on B never reached the ESME on A: %v\nB:\n%s", err, b.out.String())
		}
		if string(d.ShortMessage) == text && string(d.Source.Addr) == "15145550601" {
			return
		}
	}
}

// TestClusterQueuedMTExpires: nobody can deliver (every node's SMSC
// answers throttled) and queue.max_age is 3 s: the ESME on A still gets
// the EXPIRED receipt of its queued message, from whichever node gave it
// up.
func TestClusterQueuedMTExpires(t *testing.T) {
	optgateBinary(t)
	smsc := smpptest.NewServer(smpptest.Config{})
	defer smsc.Close()
	smsc.OnPDU(func(r *smpp.Request) bool {
		if _, ok := r.PDU.(*smpp.SubmitSM); ok {
			r.Respond(smpp.StatusXTAppn, nil)
			return true
		}
		return false
	})
	nodes := startClusterWith(t, "", labSMSC(smsc, "queue: {max_age: 3s, max_backoff: 1s}"))
	ea := nodes[0].esme(t)
	id := submitQueued(t, ea, "+15145550701", "nobody can send this")
	if got := receipts(t, ea, id); got[id] != "EXPIRED" {
		t.Fatalf("receipt %v, want %s EXPIRED", got, id)
	}
}

// TestClusterLocalQueueMovedAtStart: a node that ran alone queued an ack:
// store message in its own store (its SMSC refused it) and stopped; it
// starts again as node A of a cluster: its outbox moves the message into
// the cluster's work queue, a node sends it and the ESME (bound on B) gets
// its DELIVRD receipt.
func TestClusterLocalQueueMovedAtStart(t *testing.T) {
	optgateBinary(t)
	smsc := smpptest.NewServer(smpptest.Config{})
	defer smsc.Close()
	var open atomic.Bool
	var sentBy sync.Map // system id → true, for the queued text
	const text = "queued alone, sent clustered"
	smsc.OnPDU(func(r *smpp.Request) bool {
		sm, ok := r.PDU.(*smpp.SubmitSM)
		if !ok {
			return false
		}
		if !open.Load() {
			r.Respond(smpp.StatusXTAppn, nil)
			return true
		}
		if string(sm.ShortMessage) == text {
			sentBy.Store(r.Conn.SystemID(), true)
		}
		acceptWithReceipt(smsc, r, sm)
		return true
	})
	nodes := newClusterNodes(t, labSMSC(smsc, "queue: {max_backoff: 1s}"))
	a := nodes[0]
	b, err := os.ReadFile(a.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var single []string
	inCluster := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "cluster:":
			inCluster = true
			continue
		case inCluster && strings.HasPrefix(line, "  "):
			continue
		}
		inCluster = false
		single = append(single, line)
	}
	alone := &clusterNode{name: "alone", cfgPath: a.cfgPath + ".single.yaml", httpAddr: a.httpAddr, smppAddr: a.smppAddr}
	if err := os.WriteFile(alone.cfgPath, []byte(strings.Join(single, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	alone.start(t)
	alone.ready(t)
	e := alone.esme(t)
	id := submitQueued(t, e, "+15145550801", text)
	e.Close()
	alone.cmd.Process.Signal(syscall.SIGTERM)
	alone.cmd.Wait()

	open.Store(true)
	startNodes(t, nodes)
	eb := nodes[1].esme(t)
	t.Cleanup(func() {
		if t.Failed() {
			var by []string
			sentBy.Range(func(k, _ any) bool { by = append(by, k.(string)); return true })
			t.Logf("the queued message was sent by %v; the node alone:\n%s", by, alone.out.String())
		}
	})
	if got := receipts(t, eb, id); got[id] != "DELIVRD" {
		t.Fatalf("receipt %v, want %s DELIVRD", got, id)
	}
	n := 0
	sentBy.Range(func(any, any) bool { n++; return true })
	if n == 0 {
		t.Fatal("the SMSC accepted no submit of the queued message")
	}
}
