package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/whatsapp"
)

// Who a WhatsApp event is about. Meta names the user by wa_id (digits, in
// a form that may differ from the number the business sends to: see
// consent.NormalizeRecipient), by business-scoped user id (user_id), or
// both. Everything optgate keeps about a person (consent, the 24-hour
// window, last channel, marketing preference, event times) is keyed by the
// canonical E.164 number; the gateway store adds three small books:
//
//	wb/<tenant>/<user_id>  → E.164 key   (durable: learnt when a webhook carries both)
//	wi/<tenant>/<E.164>    → wa_id        (the form Meta last wrote; sends go to it)
//	wk/<tenant>/<E.164>    → Unix ns      (event time of the last consent change by webhook)
//
// An inbound message that cannot be keyed (no wa_id and no user_id; a wa_id
// no number can be made of; a user_id whose number is not known yet) is
// never acknowledged and forgotten: its webhook body, already durable in
// the receiver's spool before Meta got its 200, is moved to the receiver's
// dead letters (whatsapp.ErrDeadLetter), logged at warn and counted in
// optgate_inbound_unkeyed_total. When a later webhook teaches the number
// of a user_id, the dead letters are replayed, so a STOP from a user known
// only by user_id is applied as soon as optgate can tell whose it is.

// Reasons of optgate_inbound_unkeyed_total{channel="whatsapp"}.
const (
	unkeyedNoSender = "no_sender"        // neither wa_id nor user_id
	unkeyedBadWaID  = "invalid_wa_id"    // a wa_id that is no possible number, and no known user_id
	unkeyedUnmapped = "user_id_unmapped" // only a user_id, whose number is not known yet
)

// waStatuses are the status values Meta documents (whatsapp.md §6.4);
// anything else is logged and ignored.
var waStatuses = map[string]bool{"sent": true, "delivered": true, "read": true, "failed": true, "played": true}

func bsuidKey(t *Tenant, userID string) []byte { return []byte("wb/" + t.ID + "/" + userID) }
func waIDKey(t *Tenant, key string) []byte     { return []byte("wi/" + t.ID + "/" + key) }
func consentTimeKey(t *Tenant, key string) []byte {
	return []byte("wk/" + t.ID + "/" + key)
}

// maxUserID bounds a business-scoped user id ("US.13491208655302741918"
// is 23 bytes); a longer one is ignored.
const maxUserID = 128

// waPerson is the sender of an inbound WhatsApp event.
type waPerson struct {
	key    string // canonical E.164: the consent key
	waID   string // as Meta sent it, "" if none
	userID string // as Meta sent it, "" if none
}

// resolve keys the sender of an inbound message. It records what the
// message teaches: the user_id's number (synced before the event is
// acknowledged) and the wa_id form to send to. reason is set (and key
// empty) when the sender cannot be keyed.
func (wa *waChannel) resolve(t *Tenant, waID, userID string) (p waPerson, reason string, err error) {
	if len(userID) > maxUserID {
		userID = "" // not an id Meta makes: unusable as a key
	}
	p = waPerson{waID: waID, userID: userID}
	if waID != "" {
		if key, e := consent.NormalizeRecipient(ChannelWhatsApp, t.cfg.DefaultRegion, waID); e == nil {
			p.key = key
			if userID != "" {
				if err := wa.learnUserID(t, userID, key); err != nil {
					return p, "", err
				}
			}
			wa.noteWaID(t, key, waID)
			return p, "", nil
		}
	}
	if userID != "" {
		key, ok, err := wa.userKey(t, userID)
		if err != nil {
			return p, "", err
		}
		if ok {
			p.key = key
			return p, "", nil
		}
		if waID == "" {
			return p, unkeyedUnmapped, nil
		}
	}
	if waID != "" {
		return p, unkeyedBadWaID, nil
	}
	return p, unkeyedNoSender, nil
}

// userKey is the E.164 key learnt for a user_id.
func (wa *waChannel) userKey(t *Tenant, userID string) (string, bool, error) {
	var key string
	found, err := readKey(wa.g.db, bsuidKey(t, userID), func(v []byte) { key = string(v) })
	return key, found && key != "", err
}

// learnUserID records user_id → key durably when it is new or changed,
// and then asks replayUnmapped to run, if some bodies wait for a
// user_id's number (wa.unmapped: set at start, since dead letters of an
// earlier run may).
func (wa *waChannel) learnUserID(t *Tenant, userID, key string) error {
	if len(userID) > maxUserID {
		return nil // not an id Meta makes; nothing to learn
	}
	old, ok, err := wa.userKey(t, userID)
	if err != nil || ok && old == key {
		return err
	}
	if err := wa.g.commit.Write(groupcommit.Op{Key: bsuidKey(t, userID), Value: []byte(key)}); err != nil {
		return err
	}
	if wa.unmapped.Load() {
		select {
		case wa.replayCh <- struct{}{}:
		default: // a replay is already wanted
		}
	}
	return nil
}

// noteWaID remembers the wa_id form Meta wrote for key, when it is not the
// key's own digits (then sending to the E.164 number is the same).
func (wa *waChannel) noteWaID(t *Tenant, key, waID string) {
	waID = strings.TrimPrefix(waID, "+")
	var old string
	found, err := readKey(wa.g.db, waIDKey(t, key), func(v []byte) { old = string(v) })
	if err != nil || (!found && waID == key[1:]) || old == waID {
		return
	}
	if err := wa.g.commit.WriteLazy(groupcommit.Op{Key: waIDKey(t, key), Value: []byte(waID)}); err != nil {
		wa.g.log.Debug("wa_id not recorded", "err", err)
	}
}

// sendTo is the recipient to give Meta for a send to the E.164 number to:
// the wa_id the person last wrote from when it differs from to (Meta
// delivers to the account, and the account's id is what it wrote), else to.
// It never names another person: the wa_id was recorded under to's key,
// and every form mapped to a key stands for the same line.
func (wa *waChannel) sendTo(t *Tenant, to string) string {
	var waID string
	if found, err := readKey(wa.g.db, waIDKey(t, to), func(v []byte) { waID = string(v) }); err != nil || !found || waID == "" {
		return to
	}
	return waID
}

// unkeyed counts and logs an inbound event whose sender cannot be keyed,
// and returns the error that keeps its body as a dead letter.
func (wa *waChannel) unkeyed(t *Tenant, ev whatsapp.Event, reason string) error {
	wa.unkeyedC.WithLabelValues(ChannelWhatsApp, reason).Inc()
	if reason == unkeyedUnmapped {
		wa.unmapped.Store(true)
	}
	id := ""
	if ev.Message != nil {
		id = ev.Message.ID
	}
	wa.g.log.Warn("whatsapp: inbound message whose sender cannot be keyed kept as a dead letter", "tenant", t.ID,
		"phone_number_id", ev.PhoneNumberID, "reason", reason, "wamid", id)
	return fmt.Errorf("%w: sender cannot be keyed (%s)", whatsapp.ErrDeadLetter, reason)
}

// lockPerson locks the per-person mutex of key (shared with the marketing
// preferences) and returns its unlock.
func (wa *waChannel) lockPerson(key []byte) func() {
	mu := &wa.prefMu[maphash.Bytes(wa.prefSeed, key)%uint64(len(wa.prefMu))]
	mu.Lock()
	return mu.Unlock
}

// readTime reads a Unix-ns time written by writeTime (0 if none).
func (g *Gateway) readTime(key []byte) (int64, error) { return g.lastPreference(key) }

func (g *Gateway) writeTime(key []byte, at int64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(at))
	return g.commit.Write(groupcommit.Op{Key: key, Value: v[:]})
}

// apply is the WhatsApp channel's consent step of the MO consent core
// (moSource): it records an inbound message ordered by event time (in's
// ReceivedAt, the message's timestamp): an opt-in dated before the last
// consent change applied from a webhook for the person changes nothing (a
// signed START of 2020 cannot undo a STOP of 2023); opt-outs always apply.
// The time of each applied change moves the person's "wk/" time forward
// (never back), synced before the event is acknowledged.
func (wa *waChannel) apply(ctx context.Context, t *Tenant, in consent.InboundMessage) (consent.Result, error) {
	g := wa.g
	at := in.ReceivedAt
	tk := consentTimeKey(t, in.Recipient)
	defer wa.lockPerson(tk)()
	last, err := g.readTime(tk)
	if err != nil {
		return consent.Result{}, err
	}
	if last > 0 {
		in.NotBefore = time.Unix(0, last)
	}
	res, err := g.consent.Inbound(ctx, in)
	if err != nil {
		return res, err
	}
	if res.Stale {
		g.log.Info("whatsapp: opt-in older than the last consent change ignored", "tenant", t.ID,
			"event_at", at.UTC(), "last_at", time.Unix(0, last).UTC())
		return res, nil
	}
	if res.Changed && at.UnixNano() > last {
		if err := g.writeTime(tk, at.UnixNano()); err != nil {
			return res, err
		}
	}
	return res, nil
}

// applied and accepted have nothing to do for WhatsApp: the receiver
// acknowledges the webhook when HandleEvent returns nil.
func (wa *waChannel) applied(consent.Result) {}
func (wa *waChannel) accepted()              {}

// numberChanged handles a user_changed_number system message: the user who
// wrote from msg.From now writes from msg.NewWaID. Their opt-outs (both
// channels: it is the person's number that changed), WhatsApp windows,
// marketing preference times, consent event time, last channel and wa_id
// move to the new key, with evidence saying why; the old key's opt-outs
// are kept (see consent.Store.MoveNumber).
func (wa *waChannel) numberChanged(ctx context.Context, n *waNumber, sender string, ev whatsapp.Event) error {
	g, t, msg := wa.g, n.tenant, ev.Message
	old, reason, err := wa.resolve(t, msg.From, "")
	if err != nil {
		return err
	}
	if reason != "" {
		return wa.unkeyed(t, ev, reason)
	}
	nw, err := consent.NormalizeRecipient(ChannelWhatsApp, t.cfg.DefaultRegion, msg.NewWaID)
	if err != nil {
		return wa.unkeyed(t, ev, unkeyedBadWaID)
	}
	at := msg.Timestamp
	if at.IsZero() {
		at = time.Now()
	}
	if msg.UserID != "" {
		if err := wa.learnUserID(t, msg.UserID, nw); err != nil {
			return err
		}
	}
	wa.noteWaID(t, nw, msg.NewWaID)
	if old.key == nw {
		return nil
	}
	detail := "wa_id " + msg.From + " → " + msg.NewWaID
	for _, ch := range []string{ChannelWhatsApp, ChannelSMS} {
		res, err := g.consent.MoveNumber(ctx, consent.NumberChange{Tenant: t.ID, Channel: ch, Sender: sender, From: old.key,
			To: nw, MessageID: msg.ID, At: at, Detail: detail})
		if err != nil {
			return err
		}
		if err := g.forwardEvents(t, res); err != nil {
			return err
		}
	}
	// Windows of every business number of the tenant.
	for _, wn := range wa.numbers {
		if wn.tenant != t {
			continue
		}
		if last, ok, err := wa.window.LastInbound(wn.cfg.PhoneNumberID, old.key); err == nil && ok {
			if err := wa.window.Record(wn.cfg.PhoneNumberID, nw, last); err != nil {
				return err
			}
		}
		if err := wa.moveTime(prefKey(t, wn.cfg.Number, old.key), prefKey(t, wn.cfg.Number, nw)); err != nil {
			return err
		}
	}
	if err := wa.moveTime(consentTimeKey(t, old.key), consentTimeKey(t, nw)); err != nil {
		return err
	}
	if ch, pid := g.lastChannel(t, old.key); ch != "" {
		g.noteChannel(t, nw, ch+"/"+pid)
	}
	wa.numberChanges.Inc()
	g.log.Info("whatsapp: user changed number; consent, windows and preferences moved", "tenant", t.ID,
		"phone_number_id", ev.PhoneNumberID, "wamid", msg.ID)
	return nil
}

// moveTime carries a Unix-ns time record to another key, keeping the later.
func (wa *waChannel) moveTime(from, to []byte) error {
	g := wa.g
	a, err := g.readTime(from)
	if err != nil || a == 0 {
		return err
	}
	defer wa.lockPerson(to)()
	b, err := g.readTime(to)
	if err != nil || b >= a {
		return err
	}
	return g.writeTime(to, a)
}

// opaqueKeyName holds the key of the biz_opaque_callback_data MAC.
var opaqueKeyName = []byte("wa/opaque-key")

// loadOpaqueKey reads (or makes and stores, synced) the secret that
// authenticates our biz_opaque_callback_data: it outlives restarts, since
// statuses come for days after a send.
func loadOpaqueKey(db *badger.DB) ([]byte, error) {
	var key []byte
	if _, err := readKey(db, opaqueKeyName, func(v []byte) { key = append([]byte(nil), v...) }); err != nil {
		return nil, err
	}
	if len(key) == 32 {
		return key, nil
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(opaqueKeyName, key) }); err != nil {
		return nil, err
	}
	return key, db.Sync()
}

// opaque is the biz_opaque_callback_data of a message: its id, "." and a
// MAC of the tenant and id (16 bytes, hex). A status webhook names our
// message only through it, so a status can only touch a message of the
// tenant whose business number it came for, and ids cannot be guessed
// into it.
func (wa *waChannel) opaque(tenant, id string) string {
	return id + "." + hex.EncodeToString(wa.opaqueMAC(tenant, id))
}

func (wa *waChannel) opaqueMAC(tenant, id string) []byte {
	m := hmac.New(sha256.New, wa.opaqueKey)
	m.Write([]byte(tenant))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return m.Sum(nil)[:16]
}

// messageOf returns our message id named by a status's biz_opaque, when
// it is authentic for tenant.
func (wa *waChannel) messageOf(tenant, opaque string) (string, bool) {
	id, mac, ok := strings.Cut(opaque, ".")
	if !ok || id == "" || len(mac) != 32 {
		return "", false
	}
	var got [16]byte
	if _, err := hex.Decode(got[:], []byte(mac)); err != nil {
		return "", false
	}
	return id, hmac.Equal(got[:], wa.opaqueMAC(tenant, id))
}

// status applies a status webhook: only a documented status value, only
// for a message of the tenant of the business number it came for.
func (wa *waChannel) status(t *Tenant, ev whatsapp.Event) error {
	g, st := wa.g, ev.Status
	if !waStatuses[st.Status] {
		wa.statusIgnored.WithLabelValues("unknown_status").Inc()
		g.log.Warn("whatsapp: status with an undocumented value ignored", "tenant", t.ID, "phone_number_id", ev.PhoneNumberID,
			"status", truncateLabel(st.Status))
		return nil
	}
	if st.BizOpaque == "" {
		return nil
	}
	id, ok := wa.messageOf(t.ID, st.BizOpaque)
	if ok {
		// A record the send filled in (To set) must be this tenant's WhatsApp message; a status
		// that overtook the send's own answer finds an empty record.
		if ms, found := g.statuses.Get(id); found && ms.To != "" && (ms.Tenant != t.ID || ms.Channel != ChannelWhatsApp) {
			ok = false
		}
	}
	if !ok {
		wa.statusIgnored.WithLabelValues("not_tenant").Inc()
		g.log.Warn("whatsapp: status for a message that is not this business number's tenant's ignored", "tenant", t.ID,
			"phone_number_id", ev.PhoneNumberID)
		return nil
	}
	state, _ := status.ParseState(st.Status) // sent, delivered or read
	switch st.Status {
	case "failed":
		state = status.StateUndeliverable
	case "played":
		state = status.StateRead // a voice message listened to
	}
	reason := status.ReasonNone
	if len(st.Errors) > 0 {
		reason = status.CarrierReason(fmt.Sprintf("err:%d", st.Errors[0].Code))
	}
	g.statuses.Update(id, state, reason)
	if t.cfg.Webhook.URL != "" {
		return g.emit(t, "message.status", map[string]any{"id": id, "channel": ChannelWhatsApp, "state": state.String(), "error": reason.String()})
	}
	return nil
}

// truncateLabel bounds a peer's string for a log line.
func truncateLabel(s string) string {
	if len(s) > 32 {
		return s[:32]
	}
	return s
}

// unmappedRetry is how often replayUnmapped looks again at the dead letters
// while some wait for a user_id's number: a body whose user_id was mapped
// while it was being moved to the dead letters is not missed for longer.
const unmappedRetry = time.Minute

// replayUnmapped runs until quit: when asked (a user_id was mapped) and
// every unmappedRetry while wa.unmapped is set, it moves back to the spool
// the dead-letter bodies holding a message from a user known only by a
// user_id that now has a number; the receiver then handles them as that
// person's. Bodies that still cannot be keyed stay (and set wa.unmapped
// again when handled).
func (wa *waChannel) replayUnmapped(quit <-chan struct{}) {
	t := time.NewTicker(unmappedRetry)
	defer t.Stop()
	for {
		select {
		case <-quit:
			return
		case <-wa.replayCh:
		case <-t.C:
		}
		if !wa.unmapped.Load() || wa.recv == nil {
			continue
		}
		wa.unmapped.Store(false)
		n, err := wa.recv.ReplayIf(wa.mappedNow)
		switch {
		case err != nil:
			wa.unmapped.Store(true)
			wa.g.log.Error("whatsapp: replaying dead letters failed", "err", err)
		case n > 0:
			wa.g.log.Info("whatsapp: dead letters replayed after a user id was mapped", "bodies", n)
		}
	}
}

// mappedNow reports whether a dead-letter body holds a message from a user
// known only by a user_id that now has a number.
func (wa *waChannel) mappedNow(body []byte) bool {
	evs, _, err := whatsapp.ParseWebhook(body, whatsapp.ParseOptions{})
	if err != nil {
		return false
	}
	for _, ev := range evs {
		n := wa.numbers[ev.PhoneNumberID]
		if ev.Message == nil || ev.Message.From != "" || ev.Message.UserID == "" || n == nil || n.tenant == nil {
			continue
		}
		if _, ok, err := wa.userKey(n.tenant, ev.Message.UserID); err == nil && ok {
			return true
		}
	}
	return false
}
