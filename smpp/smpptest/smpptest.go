// Package smpptest provides a scriptable SMSC simulator and a recording
// ESME for tests and benchmarks: binds, configurable submit latency,
// delivery receipts, mobile-originated messages, and injected faults
// (throttling, generic_nack, ignored requests, dropped connections).
//
//	s := smpptest.NewServer(smpptest.Config{Receipts: true})
//	defer s.Close()
//	// bind a client to s.Addr(), submit, then:
//	sub, _ := s.NextSubmit(ctx)
//	s.SendMO(ctx, "", "+15145550100", "+15145550199", "STOP")
package smpptest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
	"github.com/optgate/optgate/smpp/dlr"
)

// Config configures the simulator. The zero value accepts any bind and
// answers every submit at once with decimal message ids.
type Config struct {
	Addr     string // listen address (default "127.0.0.1:0")
	SystemID string // if set, binds must use it
	Password string // if set, binds must use it

	// Latency, if set, gives the delay before each submit_sm_resp.
	Latency func() time.Duration
	// Receipts sends a delivery receipt for every submit that asks for one
	// (registered_delivery bits 0–1), after ReceiptDelay.
	Receipts     bool
	ReceiptDelay time.Duration
	// ReceiptFirst sends the receipt, and waits for its deliver_sm_resp,
	// before answering the submit (as SMSCs that send receipts on another
	// bind can appear to do). It ignores ReceiptDelay.
	ReceiptFirst bool
	// ReceiptStat, if set, chooses the receipt's stat (default "DELIVRD").
	ReceiptStat func(sm *smpp.SubmitSM) string
	// HexIDs makes message ids hexadecimal (as some SMSCs do).
	HexIDs bool
	// Record keeps every submit for NextSubmit (default true unless
	// NoRecord); benchmarks turn it off.
	NoRecord bool
	// Window bounds deliver_sm outstanding per session (default 256).
	Window int
	Logger *slog.Logger
}

// Submit is a recorded submit_sm (or data_sm) with the id the simulator
// gave it. Its PDU owns its bytes.
type Submit struct {
	Account   string
	MessageID string
	PDU       *smpp.SubmitSM
	Received  time.Time
}

// Server is the SMSC simulator.
type Server struct {
	cfg Config
	srv *smpp.Server
	ln  net.Listener
	log *slog.Logger

	nextID    atomic.Uint64
	submits   atomic.Int64
	receipts  atomic.Int64
	throttleN atomic.Int64 // answer the next n submits with RTHROTTLED
	nackN     atomic.Int64 // answer the next n submits with generic_nack
	ignoreN   atomic.Int64 // never answer the next n submits
	failN     atomic.Int64 // answer the next n submits with failStatus
	failSt    atomic.Uint32

	mu      sync.Mutex
	onPDU   func(r *smpp.Request) bool // guarded by mu
	latency func() time.Duration       // guarded by mu

	subs     chan Submit
	binds    chan smpp.BindInfo
	receiptQ chan func() // receipts wait for a window slot here, never on a session's read goroutine
	wg       sync.WaitGroup
	done     chan struct{}
}

// NewServer starts a simulator on cfg.Addr (default 127.0.0.1:0).
func NewServer(cfg Config) *Server {
	s := NewUnstartedServer(cfg)
	if err := s.Start(); err != nil {
		panic("smpptest: " + err.Error())
	}
	return s
}

// NewUnstartedServer returns a simulator that Start starts.
func NewUnstartedServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Window <= 0 {
		cfg.Window = 256
	}
	s := &Server{cfg: cfg, log: cfg.Logger, latency: cfg.Latency, done: make(chan struct{}),
		subs: make(chan Submit, 100000), binds: make(chan smpp.BindInfo, 1000), receiptQ: make(chan func(), 1<<16)}
	s.srv = &smpp.Server{
		Authenticate:       s.authenticate,
		Handler:            smpp.HandlerFunc(s.serve),
		Conn:               smpp.ConnConfig{Window: cfg.Window, MaxInflight: 1 << 16, Logger: cfg.Logger},
		MaxBindsPerAccount: 1 << 10,
		MaxFailedBinds:     1 << 20,
		MaxConnsPerIP:      -1, // a lab SMSC: every bind comes from loopback
		AccountLockAfter:   -1,
		Logger:             cfg.Logger,
	}
	return s
}

// Start listens and serves.
func (s *Server) Start() error {
	addr := s.cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.StartListener(ln)
}

// StartListener serves on ln (Config.Addr is then not used); the server
// closes ln when it is closed.
func (s *Server) StartListener(ln net.Listener) error {
	s.ln = ln
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.srv.Serve(ln) }()
	for i := 0; i < 4; i++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				select {
				case f := <-s.receiptQ:
					f()
				case <-s.done:
					return
				}
			}
		}()
	}
	return nil
}

// Addr returns the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SMPP returns the underlying smpp.Server.
func (s *Server) SMPP() *smpp.Server { return s.srv }

// Close stops the simulator at once.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
		close(s.done)
	}
	s.srv.Close()
	s.wg.Wait()
}

// Submits returns how many submits were accepted.
func (s *Server) Submits() int64 { return s.submits.Load() }

// Receipts returns how many receipts were acknowledged by the ESME.
func (s *Server) Receipts() int64 { return s.receipts.Load() }

// OnPDU sets a hook that sees every request from a bound ESME first; if
// it returns true it has answered (or deliberately not answered) the request.
func (s *Server) OnPDU(fn func(r *smpp.Request) bool) {
	s.mu.Lock()
	s.onPDU = fn
	s.mu.Unlock()
}

// SetLatency replaces the submit latency distribution.
func (s *Server) SetLatency(fn func() time.Duration) {
	s.mu.Lock()
	s.latency = fn
	s.mu.Unlock()
}

// Throttle answers the next n submits with ESME_RTHROTTLED.
func (s *Server) Throttle(n int) { s.throttleN.Store(int64(n)) }

// Nack answers the next n submits with generic_nack.
func (s *Server) Nack(n int) { s.nackN.Store(int64(n)) }

// Ignore leaves the next n submits unanswered (a hung SMSC).
func (s *Server) Ignore(n int) { s.ignoreN.Store(int64(n)) }

// Fail answers the next n submits with status.
func (s *Server) Fail(n int, status smpp.CommandStatus) {
	s.failSt.Store(uint32(status))
	s.failN.Store(int64(n))
}

// DropConnections closes every session without unbinding.
func (s *Server) DropConnections() {
	for _, c := range s.srv.Sessions() {
		c.Close()
	}
}

// Bound returns the number of bound sessions.
func (s *Server) Bound() int {
	n := 0
	for _, c := range s.srv.Sessions() {
		if c.State().Bound() {
			n++
		}
	}
	return n
}

// NextSubmit waits for the next recorded submit.
func (s *Server) NextSubmit(ctx context.Context) (Submit, error) {
	select {
	case sub := <-s.subs:
		return sub, nil
	case <-ctx.Done():
		return Submit{}, ctx.Err()
	}
}

// NextBind waits for the next successful bind.
func (s *Server) NextBind(ctx context.Context) (smpp.BindInfo, error) {
	select {
	case b := <-s.binds:
		return b, nil
	case <-ctx.Done():
		return smpp.BindInfo{}, ctx.Err()
	}
}

func (s *Server) authenticate(_ context.Context, b smpp.BindInfo) (*smpp.Account, smpp.CommandStatus) {
	if s.cfg.SystemID != "" && b.SystemID != s.cfg.SystemID {
		return nil, smpp.StatusInvSysID
	}
	if s.cfg.Password != "" && b.Password != s.cfg.Password {
		return nil, smpp.StatusInvPaswd
	}
	select {
	case s.binds <- b:
	default:
	}
	return &smpp.Account{ID: b.SystemID}, smpp.StatusOK
}

func take(n *atomic.Int64) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

func (s *Server) serve(r *smpp.Request) {
	s.mu.Lock()
	hook, lat := s.onPDU, s.latency
	s.mu.Unlock()
	if hook != nil && hook(r) {
		return
	}
	switch r.Header.ID {
	case smpp.SubmitSMID, smpp.DataSMID:
	case smpp.QuerySMID:
		q := r.PDU.(*smpp.QuerySM)
		r.Respond(smpp.StatusOK, &smpp.QuerySMResp{MessageID: append([]byte(nil), q.MessageID...), MessageState: 2})
		return
	default:
		r.Respond(smpp.StatusOK, nil)
		return
	}
	switch {
	case take(&s.ignoreN):
		r.Forget()
		return
	case take(&s.throttleN):
		r.Respond(smpp.StatusThrottled, nil)
		return
	case take(&s.nackN):
		r.Nack(smpp.StatusSysErr)
		return
	case take(&s.failN):
		r.Respond(smpp.CommandStatus(s.failSt.Load()), nil)
		return
	}
	n := s.nextID.Add(1)
	var id string
	if s.cfg.HexIDs {
		id = strconv.FormatUint(n, 16)
	} else {
		id = strconv.FormatUint(n, 10)
	}
	var sm *smpp.SubmitSM
	switch p := r.PDU.(type) {
	case *smpp.SubmitSM:
		sm = p
	case *smpp.DataSM:
		sm = &smpp.SubmitSM{SM: smpp.SM{Source: p.Source, Dest: p.Dest, ESMClass: p.ESMClass, RegisteredDelivery: p.RegisteredDelivery, DataCoding: p.DataCoding, TLVs: p.TLVs}}
	}
	s.submits.Add(1)
	acct := r.Conn.SystemID()
	if !s.cfg.NoRecord {
		select {
		case s.subs <- Submit{Account: acct, MessageID: id, PDU: cloneSubmit(sm), Received: time.Now()}:
		default:
		}
	}
	answer := func() {
		var resp smpp.PDU = &smpp.SubmitSMResp{}
		if r.Header.ID == smpp.DataSMID {
			resp = &smpp.DataSMResp{MessageID: []byte(id)}
		} else {
			resp.(*smpp.SubmitSMResp).MessageID = []byte(id)
		}
		wantReceipt := s.cfg.Receipts && sm.RegisteredDelivery&smpp.RegisteredDeliveryMask != 0
		if wantReceipt && s.cfg.ReceiptFirst {
			s.sendReceipt(acct, id, sm, func() { r.Respond(smpp.StatusOK, resp) })
			return
		}
		r.Respond(smpp.StatusOK, resp)
		if wantReceipt {
			s.sendReceipt(acct, id, sm, nil)
		}
	}
	if lat != nil {
		if d := lat(); d > 0 {
			time.AfterFunc(d, answer)
			return
		}
	}
	answer()
}

func cloneSubmit(sm *smpp.SubmitSM) *smpp.SubmitSM {
	c := *sm
	c.ServiceType = append([]byte(nil), sm.ServiceType...)
	c.Source.Addr = append([]byte(nil), sm.Source.Addr...)
	c.Dest.Addr = append([]byte(nil), sm.Dest.Addr...)
	c.ShortMessage = append([]byte(nil), sm.ShortMessage...)
	c.ScheduleDeliveryTime = append([]byte(nil), sm.ScheduleDeliveryTime...)
	c.ValidityPeriod = append([]byte(nil), sm.ValidityPeriod...)
	c.TLVs = smpp.TLVs{}
	_ = c.TLVs.SetBytes(sm.TLVs.Bytes())
	return &c
}

// Receipt builds the delivery receipt deliver_sm for a message, in both
// the text form and the TLV form (receipted_message_id, message_state).
func Receipt(id string, sm *smpp.SubmitSM, stat string, now time.Time) *smpp.DeliverSM {
	text := sm.ShortMessage
	if len(text) > 20 {
		text = text[:20]
	}
	if sm.ESMClass&smpp.ESMClassUDHI != 0 {
		text = nil
	}
	st := dlr.StateFromStat(stat)
	body := dlr.Format(dlr.Receipt{ID: id, Submitted: 1, Delivered: boolInt(stat == "DELIVRD"), SubmitDate: now, DoneDate: now,
		Stat: stat, Err: "000", Text: string(text)})
	d := &smpp.DeliverSM{SM: smpp.SM{
		Source:       smpp.Address{TON: sm.Dest.TON, NPI: sm.Dest.NPI, Addr: append([]byte(nil), sm.Dest.Addr...)},
		Dest:         smpp.Address{TON: sm.Source.TON, NPI: sm.Source.NPI, Addr: append([]byte(nil), sm.Source.Addr...)},
		ESMClass:     smpp.ESMClassReceipt,
		ShortMessage: []byte(body),
	}}
	_ = d.TLVs.SetCString(smpp.TagReceiptedMessageID, id)
	_ = d.TLVs.SetUint8(smpp.TagMessageState, uint8(st))
	return d
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sendReceipt queues the receipt for a message; then, if not nil, runs
// once the receipt was answered (or could not be sent).
func (s *Server) sendReceipt(account, id string, sm *smpp.SubmitSM, then func()) {
	stat := "DELIVRD"
	if s.cfg.ReceiptStat != nil {
		stat = s.cfg.ReceiptStat(sm)
	}
	d := Receipt(id, sm, stat, time.Now())
	send := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.srv.DeliverAsync(ctx, account, d, func(r smpp.Result) {
			cancel()
			if r.Err == nil {
				s.receipts.Add(1)
			}
			if then != nil {
				then()
			}
		})
		if err != nil {
			cancel()
			s.log.Debug("smpptest: receipt not delivered", "id", id, "err", err)
			if then != nil {
				then()
			}
		}
	}
	queue := func() {
		select {
		case s.receiptQ <- send:
		case <-s.done:
		default:
			go send() // queue full: still never block the caller
		}
	}
	if s.cfg.ReceiptDelay > 0 && then == nil {
		time.AfterFunc(s.cfg.ReceiptDelay, queue)
		return
	}
	queue()
}

// SendMO delivers a mobile-originated message from a handset (from) to a
// number of ours (to) to the bound receivers of account (any bound
// receiver when account is empty). Text that does not fit one message is
// sent as concatenated parts with a UDH; the text is encoded as GSM-7 when
// it can be, UCS-2 otherwise. It returns the ESME's status for each part.
func (s *Server) SendMO(ctx context.Context, account, from, to, text string) error {
	parts, err := coding.Split(text, coding.SplitOptions{Method: coding.UDH8, Ref: uint16(rand.N(256))})
	if err != nil {
		return err
	}
	for _, p := range parts {
		d := &smpp.DeliverSM{SM: smpp.SM{
			Source:       smpp.Address{TON: 1, NPI: 1, Addr: []byte(trimPlus(from))},
			Dest:         smpp.Address{TON: 1, NPI: 1, Addr: []byte(trimPlus(to))},
			DataCoding:   uint8(p.Coding),
			ShortMessage: p.Data,
		}}
		if p.UDHI {
			d.ESMClass |= smpp.ESMClassUDHI
		}
		if err := s.SendDeliver(ctx, account, d); err != nil {
			return err
		}
	}
	return nil
}

// SendDeliver sends one deliver_sm and waits for the answer; a non-zero
// status comes back as *smpp.StatusError.
func (s *Server) SendDeliver(ctx context.Context, account string, d *smpp.DeliverSM) error {
	if account == "" {
		for _, c := range s.srv.Sessions() {
			if c.State().Bound() && c.Mode().CanReceive() {
				account = c.SystemID()
				break
			}
		}
		if account == "" {
			return smpp.ErrNotBound
		}
	}
	_, _, err := s.srv.Deliver(ctx, account, d)
	return err
}

func trimPlus(s string) string {
	if len(s) > 0 && s[0] == '+' {
		return s[1:]
	}
	return s
}

// ESME is a recording client for tests: a smpp.Client whose handler keeps
// every deliver_sm it receives.
type ESME struct {
	*smpp.Client
	delivers chan *smpp.DeliverSM
	// Status answers each deliver_sm (default ESME_ROK).
	Status atomic.Uint32
}

// NewESME binds to addr and waits until bound.
func NewESME(ctx context.Context, cfg smpp.ClientConfig) (*ESME, error) {
	e := &ESME{delivers: make(chan *smpp.DeliverSM, 10000)}
	cfg.Handler = smpp.HandlerFunc(func(r *smpp.Request) {
		if d, ok := r.PDU.(*smpp.DeliverSM); ok {
			c := cloneSubmit(&smpp.SubmitSM{SM: d.SM})
			select {
			case e.delivers <- &smpp.DeliverSM{SM: c.SM}:
			default:
			}
		}
		r.Respond(smpp.CommandStatus(e.Status.Load()), nil)
	})
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin = 50 * time.Millisecond
	}
	e.Client = smpp.NewClient(cfg)
	e.Start()
	if err := e.WaitBound(ctx, max(cfg.Binds, 1)); err != nil {
		e.Close()
		return nil, fmt.Errorf("smpptest: bind to %s: %w", cfg.Addr, err)
	}
	return e, nil
}

// Pending is the number of deliver_sm received and not yet taken by
// NextDeliver.
func (e *ESME) Pending() int { return len(e.delivers) }

// NextDeliver waits for the next deliver_sm received.
func (e *ESME) NextDeliver(ctx context.Context) (*smpp.DeliverSM, error) {
	select {
	case d := <-e.delivers:
		return d, nil
	case <-ctx.Done():
		return nil, errors.Join(errors.New("smpptest: no deliver_sm"), ctx.Err())
	}
}
