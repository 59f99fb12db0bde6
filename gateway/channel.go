package gateway

import (
	"errors"
	"strings"

	"github.com/optgate/optgate/internal/e164"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
	"github.com/optgate/optgate/whatsapp"
)

// chooseChannel picks the channel for an API message: an explicit channel
// wins; else the channel the recipient last wrote on; else SMS when the
// recipient's region matches one of the tenant's SMS numbers, WhatsApp
// when it does not and the tenant has a WhatsApp number (never to regions
// where WhatsApp Business is unavailable).
func (g *Gateway) chooseChannel(t *Tenant, explicit, to string) (string, error) {
	if explicit != "" && explicit != ChannelSMS && explicit != ChannelWhatsApp {
		return "", errors.New("channel must be sms or whatsapp")
	}
	if g.wa == nil || g.wa.byTenant[t.ID] == nil {
		if explicit == ChannelWhatsApp {
			return "", ErrWhatsAppDisabled
		}
		return ChannelSMS, nil
	}
	last, _ := g.lastChannel(t, to)
	ch, err := whatsapp.ChooseChannel(whatsapp.ChannelRequest{Explicit: explicit, LastUsed: last,
		Recipient: whatsapp.E164(to), SMSNumberRegions: g.wa.regions[t.ID]})
	if err != nil {
		return "", err
	}
	return string(ch), nil
}

// smppChannel applies the tenant's channel choice to an SMPP submit, for
// tenants with a WhatsApp number (the caller checks g.wa first, so an
// SMS-only gateway pays nothing; an account with channel: sms skips it).
// SMPP carries no channel and no template, so a submit goes to WhatsApp
// only when the recipient last wrote to the tenant there: the number bank
// rule that picks WhatsApp for a recipient who never wrote would turn every
// such submit into a free-form message outside the 24-hour window, refused
// with 0x404, so over SMPP it is not applied (SMS it stays). A message that
// goes to WhatsApp is decoded to text and sent from the business number
// the recipient last wrote to (else the tenant's first). Concatenated
// parts, message_payload and binary bodies stay on SMS: WhatsApp has no
// concatenation, and the parts would arrive as separate messages.
func (g *Gateway) smppChannel(m *Message) {
	first := g.wa.byTenant[m.Tenant.ID]
	if first == nil || m.ESMClass&smpp.ESMClassUDHI != 0 || len(m.TLVs) > 0 || !e164.Valid(m.To) {
		return
	}
	last, pid := g.lastChannel(m.Tenant, m.To)
	if last != string(whatsapp.ChannelWhatsApp) {
		return
	}
	// The rest of the choice still applies: never WhatsApp where it is
	// unavailable.
	ch, err := whatsapp.ChooseChannel(whatsapp.ChannelRequest{LastUsed: last, Recipient: whatsapp.E164(m.To),
		SMSNumberRegions: g.wa.regions[m.Tenant.ID]})
	if err != nil || ch != whatsapp.ChannelWhatsApp {
		return
	}
	text, err := coding.Decode(coding.DataCoding(m.DataCoding), m.Body)
	if err != nil || text == "" {
		return
	}
	n := first
	if wn := g.wa.numbers[pid]; wn != nil && wn.tenant == m.Tenant {
		n = wn
	}
	m.Channel, m.From, m.Text, m.Body, m.DataCoding = ChannelWhatsApp, n.cfg.Number, text, nil, 0
}

// defaultSender is the tenant's first number for a channel.
func (g *Gateway) defaultSender(t *Tenant, channel string) string {
	if channel == ChannelWhatsApp && g.wa != nil {
		if n := g.wa.byTenant[t.ID]; n != nil {
			return n.cfg.Number
		}
	}
	if len(t.cfg.Numbers) > 0 {
		return t.cfg.Numbers[0]
	}
	return ""
}

func lastChannelKey(t *Tenant, recipient string) []byte {
	return []byte("lu/" + t.ID + "/" + recipient)
}

// noteChannel remembers the channel a recipient last wrote to us on, for
// the channel choice. The write is not synced on its own: losing the last
// few in a crash only changes a default.
func (g *Gateway) noteChannel(t *Tenant, recipient, channel string) {
	if g.wa == nil || recipient == "" {
		return // with one channel there is nothing to choose
	}
	if err := g.commit.WriteLazy(groupcommit.Op{Key: lastChannelKey(t, recipient), Value: []byte(channel)}); err != nil {
		g.log.Debug("last channel not recorded", "err", err)
	}
	g.shareChannel(t, recipient, channel)
}

// noteWhatsApp remembers that the recipient last wrote to business number
// n: "whatsapp/<phone_number_id>".
func (g *Gateway) noteWhatsApp(t *Tenant, recipient string, n *waNumber) {
	g.noteChannel(t, recipient, ChannelWhatsApp+"/"+n.cfg.PhoneNumberID)
}

// lastChannel is the channel the recipient last wrote to us on ("" if
// unknown) and, for WhatsApp, the phone-number id it wrote to.
func (g *Gateway) lastChannel(t *Tenant, recipient string) (channel, phoneNumberID string) {
	var v string
	_ = g.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(lastChannelKey(t, recipient))
		if err != nil {
			return nil
		}
		return it.Value(func(b []byte) error { v = string(b); return nil })
	})
	channel, phoneNumberID, _ = strings.Cut(v, "/")
	return channel, phoneNumberID
}
