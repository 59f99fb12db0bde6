package bench

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// miniSMSC is a bare smpp.Server that accepts every bind and submit,
// refusing submits to dest "refuse" with 0x401, for tests that must not
// depend on the simulator.
type miniSMSC struct {
	srv     *smpp.Server
	ln      net.Listener
	submits atomic.Int64
	next    atomic.Uint64
}

func newMiniSMSC(t testing.TB, receipts bool) *miniSMSC {
	t.Helper()
	m := &miniSMSC{}
	m.srv = &smpp.Server{
		Authenticate: func(context.Context, smpp.BindInfo) (*smpp.Account, smpp.CommandStatus) {
			return &smpp.Account{ID: "t"}, smpp.StatusOK
		},
		Handler: smpp.HandlerFunc(func(r *smpp.Request) {
			sm, ok := r.PDU.(*smpp.SubmitSM)
			if !ok {
				r.Respond(smpp.StatusOK, nil)
				return
			}
			m.submits.Add(1)
			if string(sm.Dest.Addr) == "refuse" || (len(sm.Dest.Addr) > 4 && string(sm.Dest.Addr[1:4]) == "438") {
				r.Respond(smpp.StatusOptedOut, nil)
				return
			}
			id := strconv.FormatUint(m.next.Add(1), 10)
			resp := &smpp.SubmitSMResp{}
			resp.MessageID = []byte(id)
			r.Respond(smpp.StatusOK, resp)
			if receipts && sm.RegisteredDelivery != 0 {
				d := &smpp.DeliverSM{SM: smpp.SM{ESMClass: smpp.ESMClassReceipt,
					ShortMessage: []byte("id:" + id + " sub:001 dlvrd:001 submit date:2411221030 done date:2411221031 stat:DELIVRD err:000 text:")}}
				go r.Conn.Send(context.Background(), d)
			}
		}),
		Conn:               smpp.ConnConfig{Window: 1024, MaxInflight: 4096},
		MaxBindsPerAccount: 64,
		MaxConnsPerIP:      -1,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.ln = ln
	go m.srv.Serve(ln)
	t.Cleanup(func() { m.srv.Close() })
	return m
}

func (m *miniSMSC) Addr() string { return m.ln.Addr().String() }

// upstream is the simulator (smpp/smpptest) with a hook that refuses
// submits to "refuse" with 0x401, for the relay tests.
type upstream struct {
	*smpptest.Server
	submits atomic.Int64
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	u := &upstream{Server: smpptest.NewServer(smpptest.Config{NoRecord: true})}
	u.OnPDU(func(r *smpp.Request) bool {
		sm, ok := r.PDU.(*smpp.SubmitSM)
		if !ok {
			return false
		}
		u.submits.Add(1)
		if string(sm.Dest.Addr) == "refuse" {
			r.Respond(smpp.StatusOptedOut, nil)
			return true
		}
		return false
	})
	t.Cleanup(u.Close)
	return u
}
