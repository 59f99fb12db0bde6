package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/optgate/optgate/internal/e164"
	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/whatsapp"
)

// Facts shared over the cluster's Shared bucket (cluster/shared.go): the
// WhatsApp customer service window and the channel a recipient last
// wrote on. They are not consent: they are put without waiting for a
// quorum and applied by every node (the putter included) in the bucket's
// order, so every node ends with the last one put. A value is a kind byte
// and NUL-separated fields:
//
//	'w' phone_number_id, wa_id, Unix nanoseconds, "1" for a close (131047)
//	'c' tenant, recipient (E.164), channel ("sms", "whatsapp/<phone_number_id>")
//	'n' node name, its message-id tag (hex; message.go, idGen)
//
// The bucket's key is a keyed hash of the fields that name the fact, so
// no number is in a subject.
const (
	sharedWindow  = 'w'
	sharedChannel = 'c'
	sharedNode    = 'n'
)

var (
	errBadShared = errors.New("gateway: bad shared value")
	errIDTag     = errors.New("gateway: message-id tag already used by another node")
)

// tagOwner is the node whose message-id tag is tag, as the shared bucket
// told this node ("" if none).
func (g *Gateway) tagOwner(tag uint64) string {
	g.tagsMu.Lock()
	defer g.tagsMu.Unlock()
	return g.tags[tag]
}

// joinShared opens the Shared bucket, applies what it holds and follows
// it, and has this node's window changes put there (joinCluster, before
// the WhatsApp receiver starts).
func (g *Gateway) joinShared(ctx context.Context) error {
	s, err := g.clusterConn.Shared(ctx)
	if err != nil {
		return err
	}
	g.shared = s
	if _, err := s.Watch(ctx, g.applyShared); err != nil {
		return err
	}
	// Message ids carry a tag hashed from the node's name: two names of
	// one cluster with the same tag would issue the same ids.
	node := g.cfg.Cluster.Node
	if other := g.tagOwner(idTag(node)); other != "" && other != node {
		return fmt.Errorf("%w: nodes %q and %q have the same message-id tag %x; rename one", errIDTag, node, other, idTag(node))
	}
	tag := strconv.FormatUint(idTag(node), 16)
	s.Put(sharedValue(sharedNode, node), sharedValue(sharedNode, node, tag))
	if g.wa != nil {
		g.wa.window.Observe(g.shareWindow)
	}
	return nil
}

// shareWindow puts a window change of this node (whatsapp.Window.Observe).
func (g *Gateway) shareWindow(u whatsapp.WindowUpdate, closed bool) {
	flag := "0"
	if closed {
		flag = "1"
	}
	key := sharedValue(sharedWindow, u.PhoneNumberID, e164.PersonDigits(u.WaID))
	g.shared.Put(key, sharedValue(sharedWindow, u.PhoneNumberID, u.WaID, strconv.FormatInt(u.At.UnixNano(), 10), flag))
}

// shareChannel puts the channel a recipient last wrote on (noteChannel).
func (g *Gateway) shareChannel(t *Tenant, recipient, channel string) {
	if g.shared == nil {
		return
	}
	g.shared.Put(sharedValue(sharedChannel, t.ID, recipient), sharedValue(sharedChannel, t.ID, recipient, channel))
}

func sharedValue(kind byte, fields ...string) []byte {
	b := []byte{kind}
	for i, f := range fields {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, f...)
	}
	return b
}

// sharedFact is a decoded shared value.
type sharedFact struct {
	kind   byte
	window whatsapp.WindowUpdate
	closed bool
	tenant string
	rcpt   string
	ch     []byte
	node   string
	tag    uint64
}

// parseShared decodes a shared value; what sharedValue did not write is
// errBadShared.
func parseShared(v []byte) (sharedFact, error) {
	if len(v) < 2 {
		return sharedFact{}, errBadShared
	}
	f := bytes.Split(v[1:], []byte{0})
	switch {
	case v[0] == sharedWindow && len(f) == 4:
		ns, err := strconv.ParseInt(string(f[2]), 10, 64)
		if err != nil || len(f[0]) == 0 || len(f[1]) == 0 {
			return sharedFact{}, fmt.Errorf("%w: window fields", errBadShared)
		}
		return sharedFact{kind: sharedWindow, closed: string(f[3]) == "1",
			window: whatsapp.WindowUpdate{PhoneNumberID: string(f[0]), WaID: string(f[1]), At: time.Unix(0, ns)}}, nil
	case v[0] == sharedChannel && len(f) == 3 && len(f[0]) > 0 && len(f[1]) > 0:
		return sharedFact{kind: sharedChannel, tenant: string(f[0]), rcpt: string(f[1]), ch: f[2]}, nil
	case v[0] == sharedNode && len(f) == 2 && len(f[0]) > 0:
		tag, err := strconv.ParseUint(string(f[1]), 16, 16)
		if err != nil || tag == 0 {
			return sharedFact{}, fmt.Errorf("%w: node tag", errBadShared)
		}
		return sharedFact{kind: sharedNode, node: string(f[0]), tag: tag}, nil
	}
	return sharedFact{}, fmt.Errorf("%w: kind %q with %d fields", errBadShared, v[0], len(f))
}

// applyShared stores a fact from the bucket (its own ones too: applying
// them again changes nothing, and applying everyone's in one order is
// what makes the nodes agree).
func (g *Gateway) applyShared(v []byte) error {
	f, err := parseShared(v)
	if err != nil {
		return err
	}
	if f.kind == sharedNode {
		g.tagsMu.Lock()
		defer g.tagsMu.Unlock()
		if g.tags == nil {
			g.tags = map[uint64]string{}
		}
		if _, ok := g.tags[f.tag]; !ok || f.node != g.cfg.Cluster.Node {
			g.tags[f.tag] = f.node
		}
		return nil
	}
	if g.wa == nil {
		return nil
	}
	if f.kind == sharedWindow {
		return g.wa.window.Apply(f.window, f.closed)
	}
	t := g.tenants[f.tenant]
	if t == nil {
		return nil
	}
	return g.commit.WriteLazy(groupcommit.Op{Key: lastChannelKey(t, f.rcpt), Value: f.ch})
}
