package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

func TestBadInputSMPP(t *testing.T) {
	env := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Wrong password and unknown account.
	for _, tc := range []struct {
		sys, pw string
		want    smpp.CommandStatus
	}{{"acme", "nope", smpp.StatusInvPaswd}, {"ghost", "x", smpp.StatusInvSysID}} {
		c := smpp.NewClient(smpp.ClientConfig{Addr: env.g.SMPPAddr(), SystemID: tc.sys, Password: tc.pw, ReconnectMin: time.Hour})
		var got error
		bindCtx, bc := context.WithTimeout(ctx, 3*time.Second)
		c.Start()
		_ = c.WaitBound(bindCtx, 1)
		bc()
		c.Close()
		if c.Bound() != 0 {
			t.Fatalf("%s/%s bound", tc.sys, tc.pw)
		}
		_ = got
	}
	// Invalid destination, oversize short_message, valid after all that.
	sm := func(dest string, body []byte) *smpp.SubmitSM {
		return &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
			Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(dest)}, ShortMessage: body}}
	}
	if _, err := env.esme.Submit(ctx, sm("12ab", []byte("x"))); smpp.StatusOf(err) != smpp.StatusInvDstAdr {
		t.Fatalf("invalid number: %v", err)
	}
	if _, err := env.esme.Submit(ctx, sm("", []byte("x"))); smpp.StatusOf(err) != smpp.StatusInvDstAdr {
		t.Fatalf("empty number: %v", err)
	}
	// submit_multi is refused clearly rather than half-screened.
	_, _, err := env.esme.Send(ctx, &smpp.SubmitMulti{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte("1")},
		Dests: []smpp.MultiDest{{Flag: smpp.DestSME, Addr: smpp.Address{TON: 1, NPI: 1, Addr: []byte("15145550100")}}}})
	if smpp.StatusOf(err) != smpp.StatusSubmitFail {
		t.Fatalf("submit_multi: %v", err)
	}
	// A sender that is not one of the tenant's numbers.
	foreign := sm(handset[1:], []byte("x"))
	foreign.Source.Addr = []byte("15145550000")
	if _, err := env.esme.Submit(ctx, foreign); smpp.StatusOf(err) != smpp.StatusInvSrcAdr {
		t.Fatalf("foreign sender: %v", err)
	}
	if _, err := env.submit(handset, "fine"); err != nil {
		t.Fatalf("good submit after bad ones: %v", err)
	}
}

// An SMSC that never answers: the upstream gets a temporary error after
// the SMSC timeout, and other traffic is unaffected once it answers again.
func TestSMSCNeverAnswers(t *testing.T) {
	env := newEnv(t)
	env.smsc.Ignore(1)
	_, err := env.submit(handset, "into the void")
	if smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("hung SMSC: got %v (%s), want ESME_RX_T_APPN", err, smpp.StatusOf(err))
	}
	if _, err := env.submit(handset, "next one"); err != nil {
		t.Fatalf("after the hang: %v", err)
	}
}

func TestFooterAndMaxLength(t *testing.T) {
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	dir := t.TempDir()
	y := configYAML(dir, smsc.Addr(), "", "  - {system_id: bulk, password: bulkpw, tenant: acme, bulk: true}\n")
	y = strings.Replace(y, "    api_token:", "    max_length: 200\n    api_token:", 1)
	env := startEnv(t, y, smsc, dir)
	code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"Big sale this weekend","bulk":true}`)
	if code != 202 {
		t.Fatalf("bulk: %d %v", code, m)
	}
	_, text := env.nextSubmitTo(handset)
	if !strings.Contains(text, "STOP") {
		t.Fatalf("no footer: %q", text)
	}
	code, m = env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"Big sale. Reply STOP to opt out","bulk":true}`)
	if code != 202 {
		t.Fatal(code, m)
	}
	if _, text = env.nextSubmitTo(handset); strings.Count(text, "STOP") != 1 {
		t.Fatalf("footer added twice: %q", text)
	}
	code, m = env.http("POST", "/v1/messages", acmeToken, `{"to":"`+handset+`","text":"`+strings.Repeat("x", 195)+`","bulk":true}`)
	if code != 400 || errCode(m) != ReasonTooLong {
		t.Fatalf("too long after footer: %d %v", code, m)
	}
}

// A peer sending made-up command ids and statuses cannot grow the PDU
// metric's label values (or the observer's cache) without bound.
func TestPDUMetricLabelsBoundedOnHostileInput(t *testing.T) {
	env := newEnv(t)
	conn, err := net.Dial("tcp", env.g.SMPPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go io.Copy(io.Discard, conn) // the answers (generic_nack, refusals)
	const n = 1500
	buf := make([]byte, 0, n*smpp.HeaderLen)
	for i := range uint32(n) {
		id := 0x00010000 + i // no such command
		if i%2 == 0 {
			id = uint32(smpp.EnquireLinkID) // a known command with a status nobody named
		}
		buf = binary.BigEndian.AppendUint32(buf, smpp.HeaderLen)
		buf = binary.BigEndian.AppendUint32(buf, id)
		buf = binary.BigEndian.AppendUint32(buf, 0x00100000+i)
		buf = binary.BigEndian.AppendUint32(buf, i+1)
	}
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	var series []string
	waitFor(t, 20*time.Second, func() error {
		_, m := env.http("GET", "/metrics", "", "")
		series = series[:0]
		var seen float64
		for line := range strings.Lines(m["raw"].(string)) {
			if !strings.HasPrefix(line, `optgate_smpp_pdus_total{`) || !strings.Contains(line, `side="upstream"`) || !strings.Contains(line, `dir="in"`) {
				continue
			}
			series = append(series, line)
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			seen += v
		}
		if seen < n {
			return fmt.Errorf("%v of %d PDUs counted", seen, n)
		}
		return nil
	})
	if len(series) > 4 {
		t.Fatalf("%d upstream inbound PDU series from made-up ids and statuses:\n%s", len(series), strings.Join(series, ""))
	}
	raw := strings.Join(series, "")
	if !strings.Contains(raw, `command="unknown"`) || !strings.Contains(raw, `status="other"`) {
		t.Fatalf("made-up values not folded:\n%s", raw)
	}
}
