package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
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
	if code != 400 || errCode(m) != ReasonTooLong.String() {
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
	testutil.CheckFor(t, 20*time.Second, func() error {
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

// rawConn is a bare TCP connection to the gateway's SMPP port.
type rawConn struct {
	t   *testing.T
	c   net.Conn
	seq uint32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

func (r *rawConn) send(p smpp.PDU) {
	r.t.Helper()
	r.seq++
	b, err := smpp.AppendPDU(nil, smpp.StatusOK, r.seq, p)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

func (r *rawConn) write(b []byte) {
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Logf("write: %v", err) // the server may have closed it: read tells
	}
}

// read returns the next PDU's header, or an error once the server closed.
func (r *rawConn) read() (smpp.Header, error) {
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [smpp.HeaderLen]byte
	if _, err := io.ReadFull(r.c, h[:]); err != nil {
		return smpp.Header{}, err
	}
	hd := smpp.Header{Length: binary.BigEndian.Uint32(h[0:]), ID: smpp.CommandID(binary.BigEndian.Uint32(h[4:])),
		Status: smpp.CommandStatus(binary.BigEndian.Uint32(h[8:])), Sequence: binary.BigEndian.Uint32(h[12:])}
	if hd.Length > smpp.HeaderLen {
		if _, err := io.CopyN(io.Discard, r.c, int64(hd.Length-smpp.HeaderLen)); err != nil {
			return hd, err
		}
	}
	return hd, nil
}

// readAnswer skips enquire_links and returns the next response.
func (r *rawConn) readAnswer() (smpp.Header, error) {
	for {
		h, err := r.read()
		if err != nil || h.ID != smpp.EnquireLinkID {
			return h, err
		}
	}
}

func bindPDU(sys, pw string) *smpp.Bind {
	return &smpp.Bind{Mode: smpp.BindTransceiver, SystemID: []byte(sys), Password: []byte(pw), InterfaceVersion: 0x34}
}

// A bind flood with wrong passwords from one address: the first binds get
// ESME_RBINDFAIL (smpp.distinct_bind_errors is off), then that address is locked out (its connections are
// closed; the lockout is per remote IP, smpp.max_failed_binds a minute, so
// it also locks out the real account from that IP), the sessions do not
// pile up, a session bound before goes on, and the real account binds
// from another address.
func TestBindFlood(t *testing.T) {
	env := newEnv(t)
	const n = 200
	refused, closed := 0, 0
	for i := 0; i < n; i++ {
		r := dialRaw(t, env.g.SMPPAddr())
		r.send(bindPDU("acme", fmt.Sprintf("bad%d", i)))
		h, err := r.readAnswer()
		switch {
		case err != nil:
			closed++
		case h.ID == smpp.BindTransceiverRespID && h.Status == smpp.StatusBindFail:
			refused++
		default:
			t.Fatalf("bad bind %d answered %v", i, h)
		}
		r.c.Close()
	}
	max := env.g.cfg.SMPP.MaxFailedBinds
	if max <= 0 {
		max = 5 // smpp.Server's default
	}
	if refused == 0 || refused > max+1 || closed < n-max-1 {
		t.Fatalf("%d refused with ESME_RBINDFAIL, %d closed: want at most %d refused, then closed", refused, closed, max)
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		if s := len(env.g.smppSrv.Sessions()); s > 1 {
			return fmt.Errorf("%d sessions open after the flood", s)
		}
		return nil
	})
	// The session bound before the flood (from the flooding address) goes on.
	if _, err := env.submit(handset, "still bound"); err != nil {
		t.Fatalf("bound session after the flood: %v", err)
	}
	// The real account from the locked-out address is refused too...
	r := dialRaw(t, env.g.SMPPAddr())
	r.send(bindPDU("acme", "acmepw"))
	if h, err := r.readAnswer(); err == nil && h.Status == smpp.StatusOK {
		t.Fatal("the locked-out address bound")
	}
	// ...and works from another.
	other := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	e2 := env.bindAs("acme", "acmepw", func(c *smpp.ClientConfig) { // the real account from 127.0.0.2
		c.Dial = func(ctx context.Context, addr string) (net.Conn, error) { return other.DialContext(ctx, "tcp", addr) }
	})
	if _, err := submitVia(e2, handset, "from elsewhere"); err != nil {
		t.Fatalf("submit from 127.0.0.2: %v", err)
	}
}

// Garbage bytes and malformed PDUs into the SMPP port: a bad frame closes
// that connection, an unknown command gets generic_nack, a malformed body
// an error response; other binds are served throughout.
func TestGarbageIntoSMPPPort(t *testing.T) {
	env := newEnv(t)
	// Random bytes: command_length out of range, the connection is closed.
	g := dialRaw(t, env.g.SMPPAddr())
	g.write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if h, err := g.read(); err == nil {
		t.Fatalf("garbage answered with %v, want the connection closed", h)
	}
	// command_length over the maximum.
	g2 := dialRaw(t, env.g.SMPPAddr())
	g2.write(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(
		binary.BigEndian.AppendUint32(nil, 0xFFFFFFF0), uint32(smpp.SubmitSMID)), 0), 1))
	if h, err := g2.read(); err == nil && h.ID != smpp.GenericNackID {
		t.Fatalf("a huge command_length answered with %v", h)
	}
	// A bound raw session: unknown command → generic_nack; a submit_sm with
	// a truncated body → an error response; it stays bound.
	r := dialRaw(t, env.g.SMPPAddr())
	r.send(bindPDU("acme", "acmepw"))
	if h, err := r.readAnswer(); err != nil || h.Status != smpp.StatusOK {
		t.Fatalf("raw bind: %v %v", h, err)
	}
	unknown := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(
		binary.BigEndian.AppendUint32(nil, smpp.HeaderLen), 0x00000077), 0), 50)
	r.write(unknown)
	if h, err := r.readAnswer(); err != nil || h.ID != smpp.GenericNackID || h.Sequence != 50 {
		t.Fatalf("unknown command: %v %v, want generic_nack", h, err)
	}
	bad := binary.BigEndian.AppendUint32(nil, smpp.HeaderLen+6)
	bad = binary.BigEndian.AppendUint32(bad, uint32(smpp.SubmitSMID))
	bad = binary.BigEndian.AppendUint32(bad, 0)
	bad = binary.BigEndian.AppendUint32(bad, 51)
	bad = append(bad, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) // no NULs: unterminated fields
	r.write(bad)
	if h, err := r.readAnswer(); err != nil || h.Status == smpp.StatusOK || h.Sequence != 51 {
		t.Fatalf("malformed submit_sm: %v %v, want an error response", h, err)
	}
	// Oversize short_message (sm_length 255): ESME_RINVMSGLEN.
	sm := &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
		Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(handset[1:])}, ShortMessage: make([]byte, smpp.MaxShortMessage)}}
	raw, err := smpp.AppendPDU(nil, smpp.StatusOK, 52, sm)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-smpp.MaxShortMessage-1] = 255 // sm_length
	raw = append(raw, 'x')
	binary.BigEndian.PutUint32(raw, uint32(len(raw)))
	r.write(raw)
	if h, err := r.readAnswer(); err != nil || h.Status != smpp.StatusInvMsgLen || h.Sequence != 52 {
		t.Fatalf("sm_length 255: %v %v, want ESME_RINVMSGLEN", h, err)
	}
	// Still bound, and the other bind unaffected.
	r.send(&smpp.EnquireLink{})
	if h, err := r.readAnswer(); err != nil || h.ID != smpp.EnquireLinkRespID {
		t.Fatalf("raw session after bad PDUs: %v %v", h, err)
	}
	if _, err := env.submit(handset, "fine"); err != nil {
		t.Fatalf("other bind after the garbage: %v", err)
	}
}

// An oversize message_payload is refused ESME_RINVMSGLEN before any SMSC
// sees it.
func TestOversizeMessagePayload(t *testing.T) {
	env := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sm := &smpp.SubmitSM{SM: smpp.SM{Source: smpp.Address{TON: 1, NPI: 1, Addr: []byte(ourNumber[1:])},
		Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(handset[1:])}}}
	_ = sm.TLVs.Set(smpp.TagMessagePayload, []byte(strings.Repeat("x", 2000))) // over 2 × 480, under the PDU limit
	before := env.smsc.Submits()
	if _, err := env.esme.Submit(ctx, sm); smpp.StatusOf(err) != smpp.StatusInvMsgLen {
		t.Fatalf("2,000-octet message_payload: %v, want ESME_RINVMSGLEN", err)
	}
	if env.smsc.Submits() != before {
		t.Fatal("the oversize message reached the SMSC")
	}
	ok := &smpp.SubmitSM{SM: sm.SM}
	ok.TLVs = smpp.TLVs{}
	_ = ok.TLVs.Set(smpp.TagMessagePayload, []byte(strings.Repeat("y", 300)))
	if _, err := env.esme.Submit(ctx, ok); err != nil {
		t.Fatalf("300-octet message_payload: %v", err)
	}
}

// A tenant whose webhook endpoint hangs (accepts, never answers) keeps its
// events, retries them, and does not delay another tenant's webhooks: one
// tenant holds at most half the webhook workers.
func TestUnreachableWebhookIsolated(t *testing.T) {
	hole, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var holeMu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := hole.Accept()
			if err != nil {
				return
			}
			holeMu.Lock()
			held = append(held, c)
			holeMu.Unlock()
		}
	}()
	var betaGot atomic.Int32
	beta := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { betaGot.Add(1) }))
	defer beta.Close()
	smsc := newSMSC(t)
	dir := t.TempDir()
	bt := strings.Replace(betaTenant, "    numbers:", "    webhook: {url: \""+beta.URL+"\", secret: b}\n    numbers:", 1)
	y := configYAML(dir, smsc.Addr(), bt, "")
	y = strings.Replace(y, "    numbers: [\""+ourNumber, "    webhook: {url: \"http://"+hole.Addr().String()+"/hook\", secret: a}\n    numbers: [\""+ourNumber, 1)
	y += "webhooks: {workers: 2, timeout: 30s, max_backoff: 100ms}\n"
	env := startEnv(t, y, smsc, dir)
	t.Cleanup(func() { // before the gateway stops: let the hung attempts end
		hole.Close()
		holeMu.Lock()
		for _, c := range held {
			c.Close()
		}
		holeMu.Unlock()
	})
	for i := range 4 {
		if err := env.mo(fmt.Sprintf("+1514555017%d", i), "hello acme"); err != nil {
			t.Fatal(err)
		}
	}
	testutil.CheckFor(t, 10*time.Second, func() error {
		holeMu.Lock()
		defer holeMu.Unlock()
		if len(held) == 0 {
			return errors.New("acme's endpoint not tried yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := smsc.SendMO(ctx, "optgate", handset, "+15145550288", "hello beta"); err != nil {
		t.Fatal(err)
	}
	// Each attempt at acme's endpoint hangs 30 s; beta's event must not
	// wait for one to end.
	testutil.CheckFor(t, 15*time.Second, func() error {
		if betaGot.Load() == 0 {
			return errors.New("beta's webhook not delivered while acme's endpoint hangs")
		}
		return nil
	})
	holeMu.Lock()
	concurrent := len(held)
	holeMu.Unlock()
	if concurrent > 1 {
		t.Fatalf("%d attempts at acme's endpoint at once: want at most half the 2 workers", concurrent)
	}
	// acme's events are kept and retried: its endpoint now refuses
	// connections. (Counted by tenant: beta's delivered item may still be
	// on its way out of the store.)
	acmeItems := queuedFor(env.g, "webhook", "acme")
	if acmeItems < 4 {
		t.Fatalf("%d webhook items kept, want acme's (at least 4)", acmeItems)
	}
	hole.Close()
	holeMu.Lock()
	for _, c := range held {
		c.Close()
	}
	holeMu.Unlock()
	testutil.CheckFor(t, 20*time.Second, func() error {
		_, m := env.http("GET", "/metrics", "", "")
		for line := range strings.Lines(m["raw"].(string)) {
			if strings.HasPrefix(line, `optgate_gateway_webhook_attempts_total{tenant="acme"}`) {
				f := strings.Fields(line)
				if v, _ := strconv.ParseFloat(f[len(f)-1], 64); v >= 3 {
					return nil
				}
			}
		}
		return errors.New("acme's webhooks not retried")
	})
	if got := queuedFor(env.g, "webhook", "acme"); got < acmeItems {
		t.Fatalf("acme's events dropped: %d kept of %d", got, acmeItems)
	}
}
