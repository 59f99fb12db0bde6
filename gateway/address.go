package gateway

import (
	"fmt"
	"strings"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
)

// SMPP numbering-plan indicators (SMPP 3.4 §5.2.6) the gateway writes;
// the type-of-number values are consent.TON*.
const (
	npiUnknown uint8 = 0
	npiISDN    uint8 = 1 // E.163/E.164: every number the gateway writes
)

// defaultRegion is the region of an SMSC link or a tenant that names none.
const defaultRegion = "US"

// region is where the link's national MO address forms are read.
func (l *smscLink) region() string {
	if l.cfg.Region == "" {
		return defaultRegion // the simulator link, made without defaults
	}
	return l.cfg.Region
}

// smppNumber reads an SMPP address with consent.NormalizeAddress in region,
// keeping the hot path's fast paths: a TON 0, 1 or 6 address that is the
// digits of one of our numbers is that number (no allocation; our own
// numbers win over any other reading, and a short code configured as
// "+digits" stays one), and TON 1 digits take consent's canonical E.164
// fast path (one allocation, the "+" string).
func (g *Gateway) smppNumber(a smpp.Address, region string) (string, consent.AddressKind, error) {
	if ourForm(a.TON) && len(a.Addr) > 0 && a.Addr[0] != '0' && a.Addr[0] != '+' {
		if n, ok := g.ourNumbers[string(a.Addr)]; ok {
			return n, consent.AddressNumber, nil
		}
		if a.TON == consent.TONInternational && digitsOnly(a.Addr) {
			// What NormalizeAddress does with TON 1 digits that start with
			// no 0, without its trimming and separator scans: the hot path.
			n, err := consent.NormalizeRecipient(ChannelSMS, "", "+"+string(a.Addr))
			return n, consent.AddressNumber, err
		}
	}
	return consent.NormalizeAddress(string(a.Addr), a.TON, a.NPI, region)
}

// digitsOnly reports whether b is all ASCII digits.
func digitsOnly(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ourForm reports whether an address of type ton may be written as the
// digits of one of our numbers (see smppNumber).
func ourForm(ton uint8) bool {
	return ton == consent.TONInternational || ton == consent.TONUnknown || ton == consent.TONAbbreviated
}

// smppDest reads the destination of a platform's submit_sm or data_sm in
// the tenant's region. Anything but a number (TON 5, TON 6) is refused, as
// are ambiguous and invalid numbers; the error says why and matches
// consent.ErrInvalidNumber or consent.ErrAmbiguousNumber.
func (g *Gateway) smppDest(t *Tenant, a smpp.Address) (string, error) {
	n, kind, err := g.smppNumber(a, t.cfg.DefaultRegion)
	if err != nil {
		return "", fmt.Errorf("destination (TON %d, NPI %d): %w", a.TON, a.NPI, err)
	}
	if kind != consent.AddressNumber {
		return "", fmt.Errorf("destination (TON %d): %w: an alphanumeric address or short code is not a phone number", a.TON, consent.ErrInvalidNumber)
	}
	return n, nil
}

// senderFor is the one sender-ownership rule for SMS, over SMPP and HTTP:
// it reads addr (with its SMPP TON and NPI; HTTP passes TON 5 for a "from"
// with a letter, else TON 0) in the tenant's region and returns the sender
// the message carries, or an error matching ErrSenderNotOwned (or
// consent.ErrInvalidNumber / ErrAmbiguousNumber for a source that is no
// readable number, consent.ErrInvalidSender for a malformed alphanumeric
// id).
//
//   - A number (TON 0/1/2/4, "+", 00/011 prefixes, national forms) must be
//     one of the tenant's numbers, returned in E.164.
//   - A TON 5 source that looks numeric (digits, perhaps a "+") is read as
//     a number: one of the tenant's numbers is that number; any other
//     (another tenant's above all) is refused.
//   - An alphanumeric id must be listed in the tenant's sender_ids; a tenant
//     with numbers and no sender_ids may use any id that no other tenant
//     lists. A tenant with neither cannot send SMS.
//   - A short code (TON 6) is refused: tenants own E.164 numbers only.
func (g *Gateway) senderFor(t *Tenant, addr string, ton, npi uint8) (string, error) {
	if o := g.byNumber[addr]; o != nil && len(addr) > 0 && addr[0] == '+' {
		if o != t {
			return "", fmt.Errorf("%w: %s is another tenant's number", ErrSenderNotOwned, addr)
		}
		return addr, nil // canonical and ours: the hot path
	}
	region := t.cfg.DefaultRegion
	if ton == consent.TONAlphanumeric && numericLooking(addr) {
		for _, readAs := range [...]uint8{consent.TONUnknown, consent.TONInternational, consent.TONNational} {
			if n, _, err := consent.NormalizeAddress(addr, readAs, npi, region); err == nil && g.byNumber[n] == t {
				return n, nil
			}
		}
		return "", fmt.Errorf("%w: the numeric alphanumeric sender %q is not one of the tenant's numbers", ErrSenderNotOwned, addr)
	}
	n, kind, err := consent.NormalizeAddress(addr, ton, npi, region)
	if err != nil {
		return "", err
	}
	switch kind {
	case consent.AddressAlphanumeric:
		if !validSenderID(n) {
			return "", fmt.Errorf("%w: alphanumeric sender %q: 1–11 letters, digits, blanks or . - _ & with a letter", consent.ErrInvalidSender, n)
		}
		if g.senderIDAllowed(t, n) {
			return n, nil
		}
		return "", fmt.Errorf("%w: alphanumeric sender %q is not in the tenant's sender_ids", ErrSenderNotOwned, n)
	case consent.AddressShortCode:
		return "", fmt.Errorf("%w: short code %q: tenants send from their E.164 numbers or sender_ids", ErrSenderNotOwned, n)
	}
	if o := g.byNumber[n]; o != t {
		if o != nil {
			return "", fmt.Errorf("%w: %s is another tenant's number", ErrSenderNotOwned, n)
		}
		return "", fmt.Errorf("%w: %s is not one of the tenant's numbers", ErrSenderNotOwned, n)
	}
	return n, nil
}

// senderIDAllowed reports whether tenant t may send from the alphanumeric
// id (see senderFor).
func (g *Gateway) senderIDAllowed(t *Tenant, id string) bool {
	for _, s := range t.cfg.SenderIDs {
		if s == id {
			return true
		}
	}
	if len(t.cfg.SenderIDs) > 0 || len(t.cfg.Numbers) == 0 {
		return false
	}
	for _, o := range g.tenantList {
		if o == t {
			continue
		}
		for _, s := range o.cfg.SenderIDs {
			if strings.EqualFold(s, id) {
				return false
			}
		}
	}
	return true
}

// httpSenderTON is the TON senderFor reads an HTTP "from" with: 5 when it
// holds a letter (an alphanumeric id), else 0 (a number in any form).
func httpSenderTON(from string) uint8 {
	for i := 0; i < len(from); i++ {
		if c := from[i] | 0x20; c >= 'a' && c <= 'z' {
			return consent.TONAlphanumeric
		}
	}
	return consent.TONUnknown
}

// numericLooking reports whether an alphanumeric sender is digits with
// perhaps a leading "+" and blanks: a number in disguise.
func numericLooking(s string) bool {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "+")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != ' ' {
			return false
		}
	}
	return true
}

// validSenderID reports whether s is a usable alphanumeric sender id: 1–11
// characters (the GSM limit) of letters, digits, blanks and . - _ &, with
// at least one letter (an id without one would read as a number).
func validSenderID(s string) bool {
	if len(s) == 0 || len(s) > 11 {
		return false
	}
	letter := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c|0x20 >= 'a' && c|0x20 <= 'z':
			letter = true
		case c >= '0' && c <= '9', c == ' ', c == '.', c == '-', c == '_', c == '&':
		default:
			return false
		}
	}
	return letter
}

// addrOf is the SMPP address the gateway writes for num: a "+" number as
// its digits with ton and npi, anything else as an alphanumeric id.
func addrOf(num string, ton, npi uint8) smpp.Address { return addrInto(nil, num, ton, npi) }

// addrInto is addrOf with the address bytes appended to buf.
func addrInto(buf []byte, num string, ton, npi uint8) smpp.Address {
	if strings.HasPrefix(num, "+") {
		return smpp.Address{TON: ton, NPI: npi, Addr: append(buf, num[1:]...)}
	}
	// An alphanumeric sender.
	return smpp.Address{TON: consent.TONAlphanumeric, NPI: npiUnknown, Addr: append(buf, num...)}
}
