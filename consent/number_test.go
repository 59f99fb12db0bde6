package consent

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
	"github.com/optgate/optgate/internal/testutil"
)

func TestNormalizeRecipient(t *testing.T) {
	for _, tc := range []struct {
		ch, region, in, want string
		err                  bool
	}{
		{ChannelSMS, "US", "+12025550123", "+12025550123", false},
		{ChannelSMS, "US", "(202) 555-0123", "+12025550123", false},
		{ChannelSMS, "GB", "07700 900123", "+447700900123", false},
		{ChannelSMS, "US", "+44 07700 900123", "+447700900123", false}, // trunk 0 after the country code
		{ChannelSMS, "FR", "06 12 34 56 78", "+33612345678", false},
		{ChannelSMS, "US", " +1 202 555 0123 ", "+12025550123", false},
		{ChannelWhatsApp, "US", "447700900123", "+447700900123", false},
		{ChannelWhatsApp, "US", "+447700900123", "+447700900123", false},
		{ChannelWhatsApp, "US", "wa:447700900123", "", true},
		{ChannelSMS, "US", "", "", true},
		{ChannelSMS, "US", "hello", "", true},
		{ChannelSMS, "US", "+1", "", true},
		{ChannelSMS, "US", strings.Repeat("1", 100), "", true},
		// Impossible lengths, in canonical form too (the fast path used to
		// skip the length check) and formatted.
		{ChannelSMS, "US", "+1202555", "", true},
		{ChannelSMS, "US", "+12025550", "", true}, // local-only length: no area code
		{ChannelSMS, "US", "+120255501234", "", true},
		{ChannelSMS, "US", "+44123456", "", true},
		{ChannelSMS, "US", "+1 202 555", "", true},
		{ChannelWhatsApp, "US", "12025550", "", true},
		{ChannelWhatsApp, "US", "44123456", "", true},
		{ChannelSMS, "US", "555 0123", "", true}, // national, local-only
		{ChannelSMS, "US", "+15145550100", "+15145550100", false},
		{ChannelSMS, "US", "+33612345678", "+33612345678", false},
		{ChannelSMS, "US", "+4915123456789", "+4915123456789", false},
		{ChannelSMS, "US", "+447911123456", "+447911123456", false},
		{ChannelWhatsApp, "US", "4915123456789", "+4915123456789", false},
		// Equivalent forms (equivalentForm): one key per line.
		{ChannelWhatsApp, "US", "5215512345678", "+525512345678", false},
		{ChannelSMS, "US", "+5215512345678", "+525512345678", false},
		{ChannelSMS, "US", "+525512345678", "+525512345678", false},
		{ChannelSMS, "MX", "55 1234 5678", "+525512345678", false},
		{ChannelWhatsApp, "US", "5491123456789", "+5491123456789", false},
		{ChannelSMS, "US", "+541123456789", "+5491123456789", false},
		{ChannelSMS, "US", "+54 11 2345-6789", "+5491123456789", false},
		{ChannelSMS, "AR", "011 15 2345-6789", "+5491123456789", false},
		{ChannelWhatsApp, "US", "551187654321", "+5511987654321", false},
		{ChannelSMS, "US", "+5511987654321", "+5511987654321", false},
		{ChannelSMS, "US", "+551123456789", "+551123456789", false}, // Brazilian landline: no ninth digit
		{ChannelWhatsApp, "US", "552187654321", "+5521987654321", false},
	} {
		got, err := NormalizeRecipient(tc.ch, tc.region, tc.in)
		if tc.err {
			if !errors.Is(err, ErrInvalidNumber) {
				t.Errorf("%q: want ErrInvalidNumber, got %q, %v", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestCanonicalFastPath: every number the fast path accepts as canonical is
// exactly what phonenumbers makes of it (when phonenumbers accepts it at
// all), and real example numbers of every region take the fast path.
func TestCanonicalFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	accepted := 0
	for i := 0; i < 300000; i++ {
		n := 7 + rng.IntN(9)
		var b strings.Builder
		b.WriteByte('+')
		for j := 0; j < n; j++ {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		s := b.String()
		if _, ok := canonicalDigits(ChannelSMS, s); !ok {
			continue
		}
		accepted++
		num, err := phonenumbers.Parse(s, "ZZ")
		if err != nil {
			t.Fatalf("fast path accepts %s but phonenumbers does not parse it: %v", s, err)
		}
		if why := phonenumbers.IsPossibleNumberWithReason(num); why != phonenumbers.IS_POSSIBLE {
			t.Fatalf("fast path accepts %s but phonenumbers says %v", s, why)
		}
		if got := phonenumbers.Format(num, phonenumbers.E164); got != s {
			t.Fatalf("fast path accepts %s but phonenumbers makes it %s", s, got)
		}
	}
	if accepted < 30000 {
		t.Fatalf("fast path accepted only %d random numbers", accepted)
	}
	slow := 0
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range []phonenumbers.PhoneNumberType{phonenumbers.MOBILE, phonenumbers.FIXED_LINE} {
			ex := phonenumbers.GetExampleNumberForType(region, typ)
			if ex == nil {
				continue
			}
			e164 := phonenumbers.Format(ex, phonenumbers.E164)
			if _, ok := canonicalDigits(ChannelSMS, e164); !ok {
				slow++
			}
			want := e164
			if eq, ok := equivalentForm(e164[1:]); ok {
				want = "+" + eq // e.g. an Argentine fixed line keyed in its "+549" form
			}
			got, err := NormalizeRecipient(ChannelSMS, "US", e164)
			if err != nil || got != want {
				t.Errorf("%s %s: %q, %v", region, e164, got, err)
			}
		}
	}
	t.Logf("random accepted %d; example numbers on the slow path: %d", accepted, slow)
}

func FuzzNormalizeRecipient(f *testing.F) {
	for _, s := range []string{"+12025550123", "(202) 555-0123", "447700900123", "+4407700900123", "", "+", "++1",
		"+1 202 555 0123 ext. 5", "tel:+1-202-555-0123", "\xff\xfe", "+" + strconv.Itoa(1<<30),
		"5215512345678", "+525512345678", "541123456789", "5491123456789", "551187654321", "5511987654321"} {
		f.Add(ChannelSMS, s)
		f.Add(ChannelWhatsApp, s)
	}
	f.Fuzz(func(t *testing.T, ch, s string) {
		if ch != ChannelSMS {
			ch = ChannelWhatsApp
		}
		got, err := NormalizeRecipient(ch, "US", s)
		if err != nil {
			if !errors.Is(err, ErrInvalidNumber) {
				t.Fatalf("%q: error %v does not match ErrInvalidNumber", s, err)
			}
			return
		}
		if len(got) < 2 || got[0] != '+' || !allDigits(got[1:]) {
			t.Fatalf("%q: not E.164: %q", s, got)
		}
		// Normalising is idempotent (a fixed point), whatever form came in.
		again, err := NormalizeRecipient(ch, "US", got)
		if err != nil || again != got {
			t.Fatalf("%q: not idempotent: %q -> %q, %v", s, got, again, err)
		}
		if d, ok := canonicalDigits(ch, got); ok && "+"+d != got {
			t.Fatalf("%q: fast path digits %q", got, d)
		}
		// The other channel agrees, and the equivalent forms of the key give
		// the key back: a STOP stored under one is checked under the other.
		other := ChannelSMS
		if ch == ChannelSMS {
			other = ChannelWhatsApp
		}
		if o, err := NormalizeRecipient(other, "US", got); err != nil || o != got {
			t.Fatalf("%q: %s gives %q, %v; %s gave %q", s, other, o, err, ch, got)
		}
		if PersonDigits(got) != got[1:] {
			t.Fatalf("%q: key %q is not canonical for PersonDigits (%q)", s, got, PersonDigits(got))
		}
		for _, alt := range equivalentsOf(got[1:]) {
			if k, err := NormalizeRecipient(ChannelWhatsApp, "US", alt); err != nil || k != got {
				t.Fatalf("%q: equivalent form %s gives %q, %v; want %q", s, alt, k, err, got)
			}
		}
	})
}

// equivalentsOf lists the non-canonical forms that equivalentForm maps onto
// the canonical digits d (for the fuzz test's check of the other direction).
func equivalentsOf(d string) []string {
	var out []string
	switch {
	case strings.HasPrefix(d, "52") && len(d) == 12:
		out = append(out, "521"+d[2:])
	case strings.HasPrefix(d, "549") && len(d) == 13:
		out = append(out, "54"+d[3:])
	case strings.HasPrefix(d, "55") && len(d) == 13 && d[4] == '9':
		out = append(out, d[:4]+d[5:])
	}
	var keep []string
	for _, o := range out {
		if eq, ok := equivalentForm(o); ok && eq == d {
			keep = append(keep, o)
		}
	}
	return keep
}

// TestEquivalentFormsFastPath: no number of a code with equivalent forms
// takes Check's fast path (it would skip the mapping), and ordinary
// numbers still do.
func TestEquivalentFormsFastPath(t *testing.T) {
	for _, s := range []string{"+5215512345678", "+541123456789", "+5491123456789", "+551187654321", "+5511987654321"} {
		if _, ok := canonicalDigits(ChannelSMS, s); ok {
			t.Errorf("%s takes the fast path", s)
		}
		if _, ok := canonicalDigits(ChannelWhatsApp, s[1:]); ok {
			t.Errorf("%s (wa_id) takes the fast path", s[1:])
		}
	}
	for _, s := range []string{"+525512345678", "+12025550123", "+447911123456"} {
		if _, ok := canonicalDigits(ChannelSMS, s); !ok {
			t.Errorf("%s does not take the fast path", s)
		}
	}
}

// TestImpossibleNumbersRefused: every write path refuses a number whose
// length is impossible for its country, and Check answers an error (do not
// send), not "allow".
func TestImpossibleNumbersRefused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, n := range []string{"+1202555", "+12025550", "+120255501234", "+44123456", "+1 202 555"} {
		_, err := h.s.Inbound(ctx, InboundMessage{Tenant: "acme", Channel: ChannelSMS, Sender: senderA, Recipient: n, Text: "STOP"})
		if !errors.Is(err, ErrInvalidNumber) || !strings.Contains(err.Error(), "not a possible number") {
			t.Errorf("Inbound %s: %v", n, err)
		}
		_, err = h.s.OptOut(ctx, OperatorChange{Tenant: "acme", Channel: ChannelSMS, Recipient: n, Operator: "ops"})
		if !errors.Is(err, ErrInvalidNumber) {
			t.Errorf("OptOut %s: %v", n, err)
		}
		_, err = h.s.OptOut(ctx, OperatorChange{Tenant: "acme", Channel: ChannelSMS, Recipient: n, Operator: "ops", API: true})
		if !errors.Is(err, ErrInvalidNumber) {
			t.Errorf("OptOut (API) %s: %v", n, err)
		}
		if d, err := h.s.Check("acme", ChannelSMS, senderA, n, 0); !errors.Is(err, ErrInvalidNumber) {
			t.Errorf("Check %s: %+v, %v", n, d, err)
		}
	}
	rep, err := h.s.Import(ctx, strings.NewReader("recipient\n+1202555\n+12025550\n+120255501234\n+44123456\n+447911123456\n"),
		ImportOptions{Tenant: "acme", Source: "test", Operator: "ops"})
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep.ErrorCount, 4, "import errors")
	testutil.RequireEqual(t, rep.Applied, 1, "import applied")
	for i, e := range rep.Errors {
		testutil.RequireEqual(t, e.Line, i+2, "error line")
		if !errors.Is(e.Err, ErrInvalidNumber) {
			t.Errorf("line %d: %v", e.Line, e.Err)
		}
	}
	for _, n := range []string{"+15145550100", "+33612345678", "+4915123456789", "+447911123456"} {
		h.mo("acme", ChannelSMS, senderA, n, "STOP")
		testutil.RequireEqual(t, h.check("acme", ChannelSMS, senderA, n, 0).Reason, ReasonOptedOut, n)
	}
}

// ValidE164 is the module's one E.164 form check: "+", 7 to 15 digits,
// the first not 0. The edges: 6 and 16 digits are refused, 7 and 15 taken.
func TestValidE164(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"+6831234", true},           // 7 digits: Niue, the shortest in service
		{"+683123", false},           // 6
		{"+123456789012345", true},   // 15: E.164's maximum
		{"+1234567890123456", false}, // 16
		{"+15145550100", true},
		{"+05145550100", false}, // no country code starts with 0
		{"15145550100", false},  // no "+"
		{"+1514555010a", false},
		{"+1 514 555 0100", false}, // the form, not a written number
		{"+", false},
		{"", false},
		{"+12", false}, // the config's old minimum (2 digits) no longer passes
	} {
		testutil.RequireEqual(t, ValidE164(tt.in), tt.want, tt.in)
		if tt.in != "" {
			_, fast := canonicalDigits(ChannelSMS, tt.in)
			if fast && !tt.want {
				t.Fatalf("%q: canonicalDigits takes what ValidE164 refuses", tt.in)
			}
		}
	}
}
