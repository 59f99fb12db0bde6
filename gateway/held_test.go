package gateway

import (
	"reflect"
	"testing"

	"github.com/optgate/optgate/consent"
)

// A held or queued message comes back from its stored payload with every
// field that sends it: the SMPP body and its flags, and a WhatsApp
// template or reply buttons (a held WhatsApp message once went out as
// empty text because one of two builders dropped its template).
func TestHeldPayloadRoundTrip(t *testing.T) {
	acct := &Account{cfg: AccountConfig{SystemID: "acme-sys"}}
	ten := &Tenant{ID: "acme"}
	g := &Gateway{accounts: map[string]*Account{"acme-sys": acct}}
	for _, m := range []*Message{
		{ID: "1", Tenant: ten, Account: acct, Origin: OriginSMPP, Channel: ChannelSMS, From: "+15550001111", To: "+15550002222",
			Body: []byte{0x05, 0x00, 0x03, 0x01, 0x02, 0x01, 'h', 'i'}, DataCoding: 8, ESMClass: 0x40, TLVs: []byte{0x04, 0x24, 0, 1, 'x'},
			RegisteredDelivery: 1, Category: consent.CategoryMarketing, Bulk: true},
		{ID: "2", Tenant: ten, Origin: OriginHTTP, Channel: ChannelWhatsApp, From: "+15550001111", To: "+15550002222",
			WA: &WAContent{TemplateName: "reminder", Language: "en_US", Params: []string{"Tuesday"},
				NamedParams: map[string]string{"name": "Ann"}, HeaderMedia: &WAMedia{Type: "image", ID: "42"},
				Buttons: []WAButton{{Index: 0, Payload: "yes"}}}},
		{ID: "3", Tenant: ten, Origin: OriginHTTP, Channel: ChannelWhatsApp, From: "+15550001111", To: "+15550002222",
			WA: &WAContent{Interactive: &WAInteractive{Body: "Pick one", Buttons: []WAReplyButton{{ID: "a", Title: "A"}}}}},
		{ID: "4", Tenant: ten, Origin: OriginHTTP, Channel: ChannelSMS, From: "+15550001111", To: "+15550002222", Text: "hello"},
	} {
		b, err := heldPayloadOf(m)
		if err != nil {
			t.Fatal(err)
		}
		p, err := decodeHeld(b)
		if err != nil {
			t.Fatal(err)
		}
		got := p.message(g, ten)
		if !reflect.DeepEqual(got, m) {
			t.Errorf("message %s: got %+v (WA %+v), want %+v (WA %+v)", m.ID, got, got.WA, m, m.WA)
		}
	}
	if _, err := decodeHeld([]byte("{not json")); err == nil {
		t.Error("an unreadable payload decoded")
	}
}
