package whatsapp

import (
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Channel is an outbound channel.
type Channel string

// Channels.
const (
	ChannelSMS      Channel = "sms"
	ChannelWhatsApp Channel = "whatsapp"
)

// E164 is a phone number in E.164 form, "+" and digits.
type E164 string

// ChannelRequest is the input of ChooseChannel.
type ChannelRequest struct {
	// Explicit is the channel the caller asked for ("sms" or "whatsapp"); empty means choose.
	Explicit string
	// LastUsed is the channel the recipient last wrote to us on; empty if unknown.
	LastUsed string
	// Recipient is the number to reach.
	Recipient E164
	// SMSNumberRegions are the ISO 3166 regions of the tenant's SMS number bank.
	SMSNumberRegions []string
}

// unavailableCallingCodes are the countries where WhatsApp Business is not available
// (whatsapp.md §13): Cuba +53, Iran +98, North Korea +850, Syria +963. Each has a calling code
// of its own, so the screen is exact for them.
//
// What a calling code cannot tell apart:
//   - +1 (NANP) is shared by the US, Canada and about twenty Caribbean and Pacific states and
//     territories; only the area code separates them, so the region comes from libphonenumber's
//     area-code metadata, and non-geographic codes (800, 888, ...) have no country at all.
//   - +7 is shared by Russia and Kazakhstan, told apart only by the digits after it.
//   - The occupied regions of Ukraine (Crimea, Donetsk, Luhansk) are excluded by Meta but use
//     Ukrainian +380 and Russian +7 numbering; mobile numbers roam and are ported, so a number
//     does not prove where its user is. They cannot be screened here; Meta's answer (130497,
//     131026) is the only signal.
//   - Likewise a Cuban, Iranian, North Korean or Syrian user holding a foreign SIM is not
//     recognisable by number.
var unavailableCallingCodes = map[int32]string{53: "CU", 98: "IR", 850: "KP", 963: "SY"}

// unavailableRegions are the same countries by region code.
var unavailableRegions = map[string]bool{"CU": true, "IR": true, "KP": true, "SY": true}

// ChooseChannel picks the channel for one outbound message:
//  1. an explicit channel wins (an explicit WhatsApp to an unavailable country is an error);
//  2. else the channel the recipient last used;
//  3. else SMS when the recipient's region is one of the SMS number bank's regions, WhatsApp
//     when it is not.
//
// WhatsApp is never chosen for a country where WhatsApp Business is unavailable; SMS is used
// instead.
func ChooseChannel(req ChannelRequest) (Channel, error) {
	explicit, err := parseChannel(req.Explicit)
	if err != nil {
		return "", err
	}
	if explicit == ChannelSMS {
		return ChannelSMS, nil
	}
	region, unavailable, err := recipientRegion(req.Recipient)
	if err != nil {
		return "", err
	}
	if explicit == ChannelWhatsApp {
		if unavailable {
			return "", fmt.Errorf("%w: %s", ErrWhatsAppUnavailable, region)
		}
		return ChannelWhatsApp, nil
	}
	if last, err := parseChannel(req.LastUsed); err == nil && last != "" {
		if last == ChannelWhatsApp && unavailable {
			return ChannelSMS, nil
		}
		return last, nil
	}
	if unavailable {
		return ChannelSMS, nil
	}
	for _, r := range req.SMSNumberRegions {
		if strings.EqualFold(strings.TrimSpace(r), region) {
			return ChannelSMS, nil
		}
	}
	return ChannelWhatsApp, nil
}

func parseChannel(s string) (Channel, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return "", nil
	case "sms":
		return ChannelSMS, nil
	case "whatsapp", "wa":
		return ChannelWhatsApp, nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownChannel, s)
}

// recipientRegion returns the ISO region of an E.164 number ("" when the number is valid in
// form but belongs to no single region) and whether WhatsApp Business is unavailable there.
func recipientRegion(n E164) (string, bool, error) {
	s := strings.TrimSpace(string(n))
	if !strings.HasPrefix(s, "+") {
		s = "+" + s
	}
	num, err := phonenumbers.Parse(s, "")
	if err != nil {
		return "", false, fmt.Errorf("%w: %q: %v", ErrInvalidRecipient, n, err)
	}
	if code, ok := unavailableCallingCodes[num.GetCountryCode()]; ok {
		return code, true, nil
	}
	region := phonenumbers.GetRegionCodeForNumber(num)
	if region == "" || region == "ZZ" {
		// Not a valid number of any region; fall back to the calling code's main region.
		region = phonenumbers.GetRegionCodeForCountryCode(int(num.GetCountryCode()))
		if region == "ZZ" {
			region = ""
		}
	}
	return region, unavailableRegions[region], nil
}
