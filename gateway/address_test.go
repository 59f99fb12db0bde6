package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// dcNumber is a second number of acme's, in Washington DC (region US), as
// an SMSC may write it nationally.
const dcNumber = "+12025550199"

// addrEnv is a gateway whose tenant acme owns ourNumber and dcNumber and
// whose SMSC link's region is US (the default), with extra tenants.
func addrEnv(t *testing.T, extraTenants, extraAccounts string) *testEnv {
	t.Helper()
	smsc := newSMSC(t)
	dir := t.TempDir()
	y := configYAML(dir, smsc.Addr(), extraTenants, extraAccounts)
	y = strings.Replace(y, fmt.Sprintf("numbers: [%q]", ourNumber), fmt.Sprintf("numbers: [%q, %q]", ourNumber, dcNumber), 1)
	return startEnv(t, y, smsc, dir)
}

// deliver sends a deliver_sm with the given addresses and text and returns
// the gateway's answer.
func (e *testEnv) deliver(src, dst smpp.Address, text string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return e.smsc.SendDeliver(ctx, "optgate", &smpp.DeliverSM{SM: smpp.SM{Source: src, Dest: dst, ShortMessage: []byte(text)}})
}

// submitAddr sends a submit_sm through c with the given addresses.
func submitAddr(c *smpptest.ESME, src, dst smpp.Address, text string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{Source: src, Dest: dst, ShortMessage: []byte(text)}})
}

func addr(ton uint8, s string) smpp.Address { return smpp.Address{TON: ton, NPI: 1, Addr: []byte(s)} }

var ours = addr(1, ourNumber[1:])

// A STOP whose source comes in any address form an SMSC sends opts out the
// canonical number: it is confirmed there, and a submit to the same person
// written in another form is refused 0x401. A STOP to our number written
// nationally finds the tenant.
func TestMOAddressForms(t *testing.T) {
	env := addrEnv(t, "", "")
	for _, c := range []struct {
		name      string
		src, dst  smpp.Address
		canonical string
		again     smpp.Address // the same person, another form, in a submit
	}{
		{"TON 0 national, to our number written nationally", addr(0, "2025557001"), addr(0, "2025550199"), "+12025557001", addr(1, "12025557001")},
		{"TON 0 with 00", addr(0, "0012025557003"), ours, "+12025557003", addr(0, "2025557003")},
		{"TON 0 with 011", addr(0, "01133612345671"), ours, "+33612345671", addr(1, "0033612345671")},
		{"TON 0 with +", addr(0, "+12025557004"), ours, "+12025557004", addr(4, "2025557004")},
		{"TON 1 with 00", addr(1, "0033612345672"), ours, "+33612345672", addr(0, "+33612345672")},
		{"TON 2 national", addr(2, "2025557005"), addr(2, "5145550199"), "+12025557005", addr(0, "0012025557005")},
		{"TON 4 subscriber", addr(4, "2025557006"), ours, "+12025557006", addr(2, "2025557006")},
		{"to our number written as a short code (TON 6)", addr(1, "12025557007"), addr(6, ourNumber[1:]), "+12025557007", addr(0, "2025557007")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := env.deliver(c.src, c.dst, "STOP"); err != nil {
				t.Fatalf("deliver_sm STOP: %v, want ESME_ROK", err)
			}
			s, text := env.nextSubmitTo(c.canonical)
			if !strings.Contains(strings.ToLower(text), "unsubscribed") && !strings.Contains(strings.ToLower(text), "stop") {
				t.Logf("confirmation text %q", text)
			}
			if s.PDU.Dest.TON != 1 || s.PDU.Dest.NPI != 1 {
				t.Errorf("confirmation dest TON/NPI %d/%d, want 1/1", s.PDU.Dest.TON, s.PDU.Dest.NPI)
			}
			if _, err := submitAddr(env.esme, ours, c.again, "hello again"); smpp.StatusOf(err) != smpp.StatusOptedOut {
				t.Fatalf("submit to %s written as TON %d %q: %v, want 0x401", c.canonical, c.again.TON, c.again.Addr, err)
			}
		})
	}
}

// submit_sm destinations in each form: valid ones reach the SMSC as the
// canonical international number (TON 1, NPI 1), never another number;
// ambiguous and invalid ones are refused ESME_RINVDSTADR with the reason.
func TestSubmitDestinationForms(t *testing.T) {
	env := addrEnv(t, "", "")
	for _, c := range []struct {
		name string
		dst  smpp.Address
		want string // canonical number at the SMSC, or "" for a refusal
		why  error
	}{
		{"TON 0 national", addr(0, "2025551001"), "+12025551001", nil},
		{"TON 4 subscriber", addr(4, "2025551002"), "+12025551002", nil},
		{"TON 2 national", addr(2, "2025551003"), "+12025551003", nil},
		{"TON 1 with 00", addr(1, "0012025551004"), "+12025551004", nil},
		{"TON 0 with 00", addr(0, "0033612345673"), "+33612345673", nil},
		{"TON 0 with +", addr(0, "+12025551005"), "+12025551005", nil},
		{"TON 1 plain", addr(1, "12025551006"), "+12025551006", nil},
		{"French national from a US tenant", addr(2, "0612345601"), "", consent.ErrInvalidNumber},
		{"French national as TON 0 from a US tenant", addr(0, "0612345601"), "", consent.ErrInvalidNumber},
		{"ambiguous: Singapore mobile or a US number", addr(0, "6596123456"), "", consent.ErrAmbiguousNumber},
		{"invalid", addr(0, "999"), "", consent.ErrInvalidNumber},
		{"alphanumeric", addr(5, "Someone"), "", consent.ErrInvalidNumber},
		{"short code", addr(6, "12345"), "", consent.ErrInvalidNumber},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.want == "" {
				_, err := submitAddr(env.esme, ours, c.dst, "hi")
				if smpp.StatusOf(err) != smpp.StatusInvDstAdr {
					t.Fatalf("submit to %q (TON %d): %v, want ESME_RINVDSTADR", c.dst.Addr, c.dst.TON, err)
				}
				// The Outcome says why (GET /v1/messages is per id; the
				// normalisation's error is checked here directly).
				if _, err := env.g.smppDest(env.g.tenants["acme"], c.dst); !errors.Is(err, c.why) {
					t.Fatalf("smppDest: %v, want %v", err, c.why)
				}
				return
			}
			if _, err := submitAddr(env.esme, ours, c.dst, "hi"); err != nil {
				t.Fatalf("submit: %v", err)
			}
			s, _ := env.nextSubmitTo(c.want)
			if s.PDU.Dest.TON != 1 || s.PDU.Dest.NPI != 1 {
				t.Errorf("SMSC got TON/NPI %d/%d, want 1/1", s.PDU.Dest.TON, s.PDU.Dest.NPI)
			}
		})
	}
	// The STOP from +12025551001 (as the issue reproduced it) blocks a TON 0
	// and a TON 4 national submit to the same person.
	if err := env.deliver(addr(1, "12025551001"), ours, "STOP"); err != nil {
		t.Fatal(err)
	}
	for _, ton := range []uint8{0, 4} {
		if _, err := submitAddr(env.esme, ours, addr(ton, "2025551001"), "hi"); smpp.StatusOf(err) != smpp.StatusOptedOut {
			t.Fatalf("TON %d national after a STOP: %v, want 0x401", ton, err)
		}
	}
}

// An MO whose source or destination cannot be keyed is kept in the
// dead-letter store, counted, answered ESME_ROK, listed to the operator,
// and still there after a restart.
func TestUnkeyedMODeadLettered(t *testing.T) {
	env := addrEnv(t, "", "")
	cases := []struct {
		src, dst smpp.Address
		reason   string
	}{
		{addr(5, "Promo"), ours, unkeyedNotANumber},
		{addr(0, "6596123456"), ours, unkeyedAmbiguousSource},
		{addr(2, "0612345601"), ours, unkeyedInvalidSource},
		{addr(1, "12025557010"), addr(1, "12025550000"), unkeyedUnknownDest},
		{addr(1, "12025557011"), addr(0, "999"), unkeyedInvalidDest},
	}
	for _, c := range cases {
		if err := env.deliver(c.src, c.dst, "STOP"); err != nil {
			t.Fatalf("%s: %v, want ESME_ROK once dead-lettered", c.reason, err)
		}
		if got := promtest.ToFloat64(env.g.metrics.unkeyed.WithLabelValues(ChannelSMS, c.reason)); got != 1 {
			t.Fatalf("optgate_inbound_unkeyed_total{reason=%q} = %v, want 1", c.reason, got)
		}
	}
	list := func(e *testEnv) []any {
		t.Helper()
		code, m := e.http("GET", "/v1/admin/deadletter", adminTok, "")
		if code != 200 {
			t.Fatalf("GET /v1/admin/deadletter: %d %v", code, m)
		}
		l, _ := m["dead_letters"].([]any)
		if int(m["total"].(float64)) != len(l) {
			t.Fatalf("total %v, listed %d", m["total"], len(l))
		}
		return l
	}
	got := list(env)
	if len(got) != len(cases) {
		t.Fatalf("%d dead letters, want %d: %v", len(got), len(cases), got)
	}
	for i, d := range got {
		m := d.(map[string]any)
		if m["reason"] != cases[i].reason || m["smsc"] != "carrier" || m["pdu"] == "" {
			t.Errorf("dead letter %d: %v", i, m)
		}
		// The raw PDU decodes to the deliver_sm that came.
		raw, _ := unjsonBytes([]byte(fmt.Sprintf("%q", m["pdu"])))
		if _, p, err := smpp.Decode(raw); err != nil || string(p.(*smpp.DeliverSM).Source.Addr) != string(cases[i].src.Addr) {
			t.Errorf("dead letter %d: PDU %x: %v", i, raw, err)
		}
	}
	if code, _ := env.http("GET", "/v1/admin/deadletter", acmeToken, ""); code != 403 {
		t.Errorf("a tenant token lists dead letters: %d", code)
	}
	// Nothing was applied to consent: the ambiguous sender is not opted
	// out under either reading.
	env.stop()
	env2 := startEnv(t, env.yaml, env.smsc, env.dir)
	if n := len(list(env2)); n != len(cases) {
		t.Fatalf("after a restart: %d dead letters, want %d", n, len(cases))
	}
	if got := promtest.ToFloat64(env2.g.metrics.unkeyed.WithLabelValues(ChannelSMS, unkeyedStoreFailed)); got != 0 {
		t.Fatalf("store failures counted: %v", got)
	}
}

const twoMoreTenants = `  - id: beta
    brand: Beta
    help_contact: help@beta.example
    api_token: beta-test-api-token
    numbers: ["+15145550288"]
  - id: nonum
    brand: NoNum
    help_contact: help@nonum.example
    api_token: nonum-test-token
    sender_ids: ["NoNum"]
`

const nonumAccount = `  - {system_id: nonum, password: nonumpw, tenant: nonum}
`

// Sender ownership over SMPP: every source form is normalised before the
// check, a numeric-looking alphanumeric source is a number, and a tenant
// without numbers sends only from its sender_ids.
func TestSenderOwnershipSMPP(t *testing.T) {
	env := addrEnv(t, twoMoreTenants, nonumAccount)
	nonum := env.bindAs("nonum", "nonumpw")
	to := addr(1, "12025552001")
	for _, c := range []struct {
		name   string
		via    *smpptest.ESME
		src    smpp.Address
		wantAt string // the source the SMSC gets, or "" for a refusal
	}{
		{"beta's number as TON 1", env.esme, addr(1, "15145550288"), ""},
		{"beta's number as TON 5", env.esme, addr(5, "15145550288"), ""},
		{"beta's number as TON 5 with +", env.esme, addr(5, "+15145550288"), ""},
		{"beta's number with 00 as TON 0", env.esme, addr(0, "0015145550288"), ""},
		{"beta's number national TON 2", env.esme, addr(2, "5145550288"), ""},
		{"beta's number with + as TON 0", env.esme, addr(0, "+15145550288"), ""},
		{"nobody's number", env.esme, addr(1, "15145550277"), ""},
		{"a numeric TON 5 that is nobody's", env.esme, addr(5, "15145550277"), ""},
		{"another tenant's sender id", env.esme, addr(5, "NoNum"), ""},
		{"a short code", env.esme, addr(6, "12345"), ""},
		{"own number national TON 2", env.esme, addr(2, "5145550199"), "15145550199"},
		{"own number TON 0 with 00", env.esme, addr(0, "0012025550199"), "12025550199"},
		{"own number as numeric TON 5", env.esme, addr(5, "12025550199"), "12025550199"},
		{"alphanumeric of a tenant with numbers and no sender_ids", env.esme, addr(5, "Acme"), "Acme"},
		{"no numbers: any TON 1 number", nonum, addr(1, "15145550277"), ""},
		{"no numbers: acme's number", nonum, addr(1, "15145550199"), ""},
		{"no numbers: an unlisted id", nonum, addr(5, "Other"), ""},
		{"no numbers: its sender id", nonum, addr(5, "NoNum"), "NoNum"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := submitAddr(c.via, c.src, to, c.name)
			if c.wantAt == "" {
				if smpp.StatusOf(err) != smpp.StatusInvSrcAdr {
					t.Fatalf("submit from TON %d %q: %v, want ESME_RINVSRCADR", c.src.TON, c.src.Addr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("submit: %v", err)
			}
			s, _ := env.nextSubmitTo("+12025552001")
			if string(s.PDU.Source.Addr) != c.wantAt {
				t.Fatalf("SMSC got source %q (TON %d), want %q", s.PDU.Source.Addr, s.PDU.Source.TON, c.wantAt)
			}
		})
	}
}

// The same rule over HTTP POST /v1/messages.
func TestSenderOwnershipHTTP(t *testing.T) {
	env := addrEnv(t, twoMoreTenants, "")
	for _, c := range []struct {
		token, from string
		code        int
		errCode     string
	}{
		{acmeToken, "+15145550288", 403, "sender_not_allowed"},
		{acmeToken, "0015145550288", 403, "sender_not_allowed"},
		{acmeToken, "5145550288", 403, "sender_not_allowed"},
		{acmeToken, "NoNum", 403, "sender_not_allowed"},
		{acmeToken, "ACME?!", 400, "invalid_sender"},
		{acmeToken, "0012025550199", 202, ""},
		{"nonum-test-token", "+15145550277", 403, "sender_not_allowed"},
		{"nonum-test-token", "Other", 403, "sender_not_allowed"},
		{"nonum-test-token", "NoNum", 202, ""},
	} {
		code, m := env.http("POST", "/v1/messages", c.token, `{"to":"+12025552002","from":"`+c.from+`","text":"x"}`)
		if code != c.code || c.errCode != "" && errCode(m) != c.errCode {
			t.Errorf("%s from %q: %d %v, want %d %s", c.token, c.from, code, m, c.code, c.errCode)
		}
	}
	// A tenant without numbers has no default sender.
	if code, m := env.http("POST", "/v1/messages", "nonum-test-token", `{"to":"+12025552002","text":"x"}`); code != 400 {
		t.Errorf("nonum without from: %d %v", code, m)
	}
}

// FuzzSourceAddress: any source in any TON/NPI either is refused or is
// the tenant's own number or an alphanumeric id it may use; never another
// tenant's number; and the answer is stable when read again.
func FuzzSourceAddress(f *testing.F) {
	cfgs := []TenantConfig{
		{ID: "acme", DefaultRegion: "US", Numbers: []string{"+15145550199", "+12025550199"}},
		{ID: "beta", DefaultRegion: "FR", Numbers: []string{"+33612345671"}, SenderIDs: []string{"Beta"}},
		{ID: "nonum", DefaultRegion: "US", SenderIDs: []string{"NoNum"}},
	}
	g := &Gateway{byNumber: map[string]*Tenant{}, ourNumbers: map[string]string{}}
	for _, tc := range cfgs {
		t := &Tenant{ID: tc.ID, cfg: tc}
		g.tenantList = append(g.tenantList, t)
		for _, n := range tc.Numbers {
			g.byNumber[n] = t
			g.ourNumbers[n[1:]] = n
		}
	}
	for _, s := range []string{"15145550199", "+15145550199", "0015145550199", "5145550199", "33612345671", "0033612345671",
		"0612345671", "Beta", "NoNum", "Acme", "", "+", "\x00", "12345"} {
		for _, ton := range []uint8{0, 1, 2, 4, 5, 6} {
			f.Add(s, ton, uint8(1), uint8(ton%3))
		}
	}
	f.Fuzz(func(t *testing.T, s string, ton, npi, who uint8) {
		tn := g.tenantList[int(who)%len(g.tenantList)]
		got, err := g.senderFor(tn, s, ton, npi)
		if err != nil {
			if !errors.Is(err, ErrSenderNotOwned) && !errors.Is(err, consent.ErrInvalidNumber) && !errors.Is(err, consent.ErrAmbiguousNumber) && !errors.Is(err, consent.ErrInvalidSender) {
				t.Fatalf("%q: unexpected error %v", s, err)
			}
			return
		}
		if o := g.byNumber[got]; o != nil && o != tn {
			t.Fatalf("%s sends %q (TON %d) as %s's number %s", tn.ID, s, ton, o.ID, got)
		}
		if strings.HasPrefix(got, "+") && g.byNumber[got] != tn {
			t.Fatalf("%s sends %q as a number it does not own: %s", tn.ID, s, got)
		}
		again, err := g.senderFor(tn, got, httpSenderTON(got), npi)
		if err != nil || again != got {
			t.Fatalf("%q -> %q -> %q, %v", s, got, again, err)
		}
	})
}

// When an unkeyed MO cannot be dead-lettered (here: the dead-letter store
// is full) the SMSC is asked to retry (ESME_RX_T_APPN) and it is counted.
func TestUnkeyedMONotStoredIsRetried(t *testing.T) {
	env := addrEnv(t, "", "")
	// The series exist at 0 from the start, for the alert's increase().
	mfs, err := env.g.gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0 // the SMS channel's
	for _, mf := range mfs {
		if mf.GetName() == "optgate_inbound_unkeyed_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "channel" && l.GetValue() == ChannelSMS {
						series++
					}
				}
			}
		}
	}
	if series != len(unkeyedReasons) {
		t.Fatalf("optgate_inbound_unkeyed_total has %d series at start, want %d", series, len(unkeyedReasons))
	}
	env.g.deadletters.n(env.g).Store(deadLetterMax)
	err = env.deliver(addr(5, "Promo"), ours, "STOP")
	if smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("deliver_sm: %v, want ESME_RX_T_APPN", err)
	}
	if got := promtest.ToFloat64(env.g.metrics.unkeyed.WithLabelValues(ChannelSMS, unkeyedStoreFailed)); got != 1 {
		t.Fatalf("deadletter_failed counted %v times, want 1", got)
	}
}

// HTTP POST /v1/messages reads "to" like an SMPP destination of unknown
// type: national numbers in the tenant's region, 00 prefixes, separators;
// a French national number from a US tenant and an ambiguous number are
// refused rather than sent to someone else.
func TestHTTPDestinationForms(t *testing.T) {
	env := addrEnv(t, "", "")
	for _, c := range []struct{ to, want string }{
		{"2025553001", "+12025553001"},
		{"(202) 555-3002", "+12025553002"},
		{"0012025553003", "+12025553003"},
		{"+33 6 12 34 56 74", "+33612345674"},
		{"0612345601", ""},
		{"6596123456", ""},
	} {
		code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+c.to+`","text":"x"}`)
		if c.want == "" {
			if code != 400 || errCode(m) != "invalid_number" {
				t.Errorf("to %q: %d %v, want 400 invalid_number", c.to, code, m)
			}
			continue
		}
		if code != 202 || m["to"] != c.want {
			t.Errorf("to %q: %d %v, want 202 to %s", c.to, code, m, c.want)
			continue
		}
		env.nextSubmitTo(c.want)
	}
}
