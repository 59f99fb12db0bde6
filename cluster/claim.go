package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Receipt claims (doc.go, "Receipts: ownership by claim"): a node that
// cannot correlate a receipt asks every other node, over core NATS, which
// of them owns the message; the owner forwards it and says so.

// ClaimSubject carries the claims. It names no number, message or SMSC:
// what is claimed is in the payload, which only the nodes read.
const ClaimSubject = "optgate.receipt.claim"

// nodeHeader names the node that sent a claim or an answer.
const nodeHeader = "Optgate-Node"

// maxServedClaims bounds the claims a node works on at once; past it a
// claim is answered AnswerFailed (the asking node has its SMSC retry).
const maxServedClaims = 1024

// Answer is one node's answer to a claim.
type Answer byte

// The answers a ClaimFunc gives.
const (
	// AnswerNotMine: this node has no message for the claim.
	AnswerNotMine Answer = 'N'
	// AnswerTaken: this node owns the message and has forwarded the
	// receipt durably (delivered, spooled or handed to the webhook).
	AnswerTaken Answer = 'T'
	// AnswerFailed: this node owns the message but could not forward the
	// receipt now, or is too busy to look: the SMSC must send it again.
	AnswerFailed Answer = 'F'
)

// ClaimResult is what Claim learnt from the other nodes.
type ClaimResult int

// Claim's results.
const (
	// ClaimNobody: every other node answered AnswerNotMine.
	ClaimNobody ClaimResult = iota
	// ClaimTaken: a node answered AnswerTaken.
	ClaimTaken
	// ClaimFailed: a node answered AnswerFailed, or not every node
	// answered before ctx ended (a node down, a partition): nobody can say
	// the receipt is nobody's, so the SMSC must send it again.
	ClaimFailed
)

func (r ClaimResult) String() string {
	switch r {
	case ClaimNobody:
		return "nobody"
	case ClaimTaken:
		return "taken"
	}
	return "failed"
}

// ClaimFunc serves one claim from another node: it calls reply exactly
// once, from any goroutine, with AnswerTaken only after the receipt is
// durably forwarded. data is the asking node's payload, valid until reply.
type ClaimFunc func(data []byte, reply func(Answer))

// claims is a connection's claim state: one wildcard subscription takes
// every answer to this node's claims, each routed by its token.
type claims struct {
	once   sync.Once
	err    error
	prefix string // the answers' subject prefix, ending in '.'
	mu     sync.Mutex
	wait   map[string]chan nodeAnswer // guarded by mu
	serve  *nats.Subscription
	busy   chan struct{} // a slot per claim being served
}

type nodeAnswer struct {
	node string
	a    Answer
}

// setup subscribes to the answers once.
func (c *Conn) setupClaims() error {
	cl := &c.claims
	cl.once.Do(func() {
		cl.prefix = c.nc.NewInbox() + "."
		cl.wait = map[string]chan nodeAnswer{}
		_, err := c.nc.Subscribe(cl.prefix+"*", func(m *nats.Msg) {
			token := strings.TrimPrefix(m.Subject, cl.prefix)
			cl.mu.Lock()
			ch := cl.wait[token]
			cl.mu.Unlock()
			if ch == nil || len(m.Data) != 1 {
				return // an answer after its claim ended, or garbage
			}
			select {
			case ch <- nodeAnswer{node: m.Header.Get(nodeHeader), a: Answer(m.Data[0])}:
			default: // more answers than nodes: a node answered twice
			}
		})
		if err == nil {
			err = c.nc.Flush()
		}
		cl.err = err
	})
	return cl.err
}

// ServeClaims answers the claims of the other nodes with f until the
// connection closes. Each claim runs on a goroutine of its own (at most
// maxServedClaims at once; past it the claim is answered AnswerFailed).
// A node never receives its own claims.
func (c *Conn) ServeClaims(f ClaimFunc) error {
	cl := &c.claims
	cl.busy = make(chan struct{}, maxServedClaims)
	sub, err := c.nc.Subscribe(ClaimSubject, func(m *nats.Msg) {
		if m.Reply == "" || m.Header.Get(nodeHeader) == c.cfg.Node {
			return
		}
		reply := func(a Answer) {
			r := nats.NewMsg(m.Reply)
			r.Header.Set(nodeHeader, c.cfg.Node)
			r.Data = []byte{byte(a)}
			c.countServed(a)
			if err := c.nc.PublishMsg(r); err != nil {
				c.log.Warn("cluster: cannot answer a receipt claim", "err", err)
			}
		}
		select {
		case cl.busy <- struct{}{}:
		default:
			reply(AnswerFailed)
			return
		}
		go func() {
			defer func() { <-cl.busy }()
			done := make(chan struct{})
			var once sync.Once
			f(m.Data, func(a Answer) {
				once.Do(func() { // a second answer is ignored
					reply(a)
					close(done)
				})
			})
			<-done // the slot is held until the answer
		}()
	})
	if err != nil {
		return err
	}
	cl.serve = sub
	return c.nc.Flush()
}

// errNoAnswer is Claim's error when not every node answered in time.
var errNoAnswer = errors.New("cluster: not every node answered the receipt claim")

// Claim asks every other node (cfg.Nodes-1 of them) whether it owns the
// receipt described by data, and waits until one answers AnswerTaken or
// AnswerFailed, every one answers AnswerNotMine, or ctx ends. It returns
// ClaimFailed with an error when a node did not answer in time or the
// request could not be sent: the caller then has the SMSC send the receipt
// again rather than call it nobody's. On a single node it returns
// ClaimNobody at once.
func (c *Conn) Claim(ctx context.Context, data []byte) (ClaimResult, error) {
	peers := c.cfg.Nodes - 1
	if peers <= 0 {
		return ClaimNobody, nil
	}
	if err := c.setupClaims(); err != nil {
		c.metrics.claimed(ClaimFailed)
		return ClaimFailed, err
	}
	cl := &c.claims
	token := nuid.Next()
	ch := make(chan nodeAnswer, peers)
	cl.mu.Lock()
	cl.wait[token] = ch
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		delete(cl.wait, token)
		cl.mu.Unlock()
	}()
	m := nats.NewMsg(ClaimSubject)
	m.Reply = cl.prefix + token
	m.Header.Set(nodeHeader, c.cfg.Node)
	m.Data = data
	if err := c.nc.PublishMsg(m); err != nil {
		c.metrics.claimed(ClaimFailed)
		return ClaimFailed, err
	}
	notMine := make(map[string]bool, peers)
	for len(notMine) < peers {
		select {
		case <-ctx.Done():
			c.metrics.claimed(ClaimFailed)
			return ClaimFailed, errNoAnswer
		case na := <-ch:
			switch na.a {
			case AnswerTaken:
				c.metrics.claimed(ClaimTaken)
				return ClaimTaken, nil
			case AnswerNotMine:
				notMine[na.node] = true
			default:
				c.metrics.claimed(ClaimFailed)
				return ClaimFailed, nil
			}
		}
	}
	c.metrics.claimed(ClaimNobody)
	return ClaimNobody, nil
}

// countServed counts an answer this node gave.
func (c *Conn) countServed(a Answer) {
	r := "not_mine"
	switch a {
	case AnswerTaken:
		r = "taken"
	case AnswerFailed:
		r = "failed"
	}
	c.metrics.claims.WithLabelValues("served", r).Inc()
}
