package whatsapp

import (
	"errors"
	"testing"

	"github.com/optgate/optgate/internal/testutil"
)

func TestChooseChannel(t *testing.T) {
	bank := []string{"US", "GB"}
	for _, tc := range []struct {
		name string
		req  ChannelRequest
		want Channel
		err  error
	}{
		{"explicit sms wins", ChannelRequest{Explicit: "sms", LastUsed: "whatsapp", Recipient: "+4915112345678"}, ChannelSMS, nil},
		{"explicit whatsapp wins", ChannelRequest{Explicit: "WhatsApp", LastUsed: "sms", Recipient: "+14155552671", SMSNumberRegions: bank}, ChannelWhatsApp, nil},
		{"last used whatsapp", ChannelRequest{LastUsed: "whatsapp", Recipient: "+14155552671", SMSNumberRegions: bank}, ChannelWhatsApp, nil},
		{"last used sms", ChannelRequest{LastUsed: "sms", Recipient: "+4915112345678", SMSNumberRegions: bank}, ChannelSMS, nil},
		{"region in SMS bank", ChannelRequest{Recipient: "+14155552671", SMSNumberRegions: bank}, ChannelSMS, nil},
		{"region in SMS bank, lowercase", ChannelRequest{Recipient: "+447400123456", SMSNumberRegions: []string{"gb"}}, ChannelSMS, nil},
		{"region not in SMS bank", ChannelRequest{Recipient: "+4915112345678", SMSNumberRegions: bank}, ChannelWhatsApp, nil},
		{"NANP Canada is not US", ChannelRequest{Recipient: "+16135550123", SMSNumberRegions: []string{"US"}}, ChannelWhatsApp, nil},
		{"NANP Jamaica is not US", ChannelRequest{Recipient: "+18765550123", SMSNumberRegions: []string{"US"}}, ChannelWhatsApp, nil},
		{"without plus", ChannelRequest{Recipient: "4915112345678", SMSNumberRegions: []string{"DE"}}, ChannelSMS, nil},
		{"Cuba falls back to SMS", ChannelRequest{Recipient: "+5352345678"}, ChannelSMS, nil},
		{"Iran last used whatsapp → SMS", ChannelRequest{LastUsed: "whatsapp", Recipient: "+989121234567"}, ChannelSMS, nil},
		{"North Korea → SMS", ChannelRequest{Recipient: "+850212345678"}, ChannelSMS, nil},
		{"explicit whatsapp to Syria", ChannelRequest{Explicit: "whatsapp", Recipient: "+963944567890"}, "", ErrWhatsAppUnavailable},
		{"explicit whatsapp to Cuba", ChannelRequest{Explicit: "whatsapp", Recipient: "+5352345678"}, "", ErrWhatsAppUnavailable},
		{"unknown explicit", ChannelRequest{Explicit: "pigeon", Recipient: "+14155552671"}, "", ErrUnknownChannel},
		{"unknown last used ignored", ChannelRequest{LastUsed: "fax", Recipient: "+14155552671", SMSNumberRegions: bank}, ChannelSMS, nil},
		{"garbage recipient", ChannelRequest{Recipient: "+abc"}, "", ErrInvalidRecipient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChooseChannel(tc.req)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v, %v; want %v", got, err, tc.err)
				}
				return
			}
			requireNoErr(t, err)
			testutil.RequireEqual(t, got, tc.want, "channel")
		})
	}
}
