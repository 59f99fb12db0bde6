package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
	"github.com/optgate/optgate/smpp/dlr"
)

// smscLink is our binds to one operator SMSC.
type smscLink struct {
	name   string
	cfg    SMSCConfig
	client *smpp.Client
	idBase dlr.IDBase
	srcTON uint8
	srcNPI uint8
	up     atomic.Int32 // bound sessions
	idx    int          // position in Gateway.linkList; bit idx of Message.tried

	latency prometheus.Observer // submit latency, resolved once

	// dc0 and dc1 are what this SMSC means by data_coding 0 and 1
	// (SMSCConfig.DataCoding0/1): GSM7, IA5 or Latin1.
	dc0, dc1 coding.DataCoding
}

// readAs is the data_coding whose alphabet the octets this SMSC labels dc
// are in: its data_coding 0 and 1 overrides, dc itself otherwise.
func (l *smscLink) readAs(dc coding.DataCoding) coding.DataCoding {
	switch dc {
	case coding.GSM7:
		return l.dc0
	case coding.IA5:
		return l.dc1
	}
	return dc
}

// charsetOr parses an SMSCConfig charset name, def when it is empty or
// not one (the config check reports a bad one).
func charsetOr(name string, def coding.DataCoding) coding.DataCoding {
	if dc, err := coding.ParseCharset(name); err == nil {
		return dc
	}
	return def
}

func parseIDBase(s string) dlr.IDBase {
	switch s {
	case "resp_hex_dlr_dec":
		return dlr.RespHexDLRDec
	case "resp_dec_dlr_hex":
		return dlr.RespDecDLRHex
	}
	return dlr.Same
}

func clientTLS(t TLSConfig) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates in %s", t.CA)
		}
		c.RootCAs = pool
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func (g *Gateway) newSMSCLink(cfg SMSCConfig) (*smscLink, error) {
	mode, err := smpp.ParseBindMode(cfg.Mode)
	if err != nil {
		return nil, err
	}
	tc, err := clientTLS(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("smsc %s: tls: %w", cfg.Name, err)
	}
	l := &smscLink{name: cfg.Name, cfg: cfg, idBase: parseIDBase(cfg.IDBase), srcTON: consent.TONInternational, srcNPI: npiISDN,
		latency: g.metrics.submitLatency.WithLabelValues(cfg.Name),
		dc0:     charsetOr(cfg.DataCoding0, coding.GSM7), dc1: charsetOr(cfg.DataCoding1, coding.IA5)}
	if l.cfg.MORetryWindow <= 0 { // a link not built from a checked config (the simulator's)
		l.cfg.MORetryWindow = 10 * time.Minute
	}
	if cfg.SourceTON != nil {
		l.srcTON = *cfg.SourceTON
	}
	if cfg.SourceNPI != nil {
		l.srcNPI = *cfg.SourceNPI
	}
	l.client = smpp.NewClient(smpp.ClientConfig{
		Addr: cfg.Address, TLS: tc, SystemID: cfg.SystemID, Password: cfg.Password, SystemType: cfg.SystemType,
		Mode: mode, Binds: cfg.Binds, Rate: cfg.Rate,
		Conn: smpp.ConnConfig{
			Window: cfg.Window, RequestExpiry: cfg.Timeout, MaxInflight: 4096,
			Logger: g.log.With("smsc", cfg.Name), OnPDU: g.metrics.pduObserver("smsc"),
		},
		Handler: smpp.HandlerFunc(func(r *smpp.Request) { g.serveSMSC(l, r) }),
		Logger:  g.log.With("smsc", cfg.Name),
		OnState: func(bind int, up bool) {
			if up {
				l.up.Add(1)
			} else {
				l.up.Add(-1)
			}
			n := l.up.Load()
			g.metrics.smscSessions.WithLabelValues(cfg.Name).Set(float64(n))
			isUp := 0.0
			if n > 0 {
				isUp = 1
			}
			g.metrics.smscUp.WithLabelValues(cfg.Name).Set(isUp)
		},
	})
	return l, nil
}

// route maps destination prefixes to SMSC groups; the longest prefix wins.
type route struct {
	prefix string
	links  []*smscLink // failover order
}

func buildRoutes(cfg []RouteConfig, links map[string]*smscLink) []route {
	rs := make([]route, 0, len(cfg))
	for _, rc := range cfg {
		r := route{prefix: rc.Prefix}
		for _, n := range rc.SMSCs {
			if l := links[n]; l != nil {
				r.links = append(r.links, l)
			}
		}
		rs = append(rs, r)
	}
	sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].prefix) > len(rs[j].prefix) })
	return rs
}

// pickLink returns the first SMSC of the destination's route with a bound
// session that can submit, failing over in configured order. With none
// bound it returns the first, so the submit waits for a rebind within its
// timeout.
func (g *Gateway) pickLink(to string) (*smscLink, error) {
	for _, r := range g.routes {
		if strings.HasPrefix(to, r.prefix) {
			for _, l := range r.links {
				if l.up.Load() > 0 && l.cfg.Mode != "receiver" {
					return l, nil
				}
			}
			if len(r.links) > 0 {
				return r.links[0], nil
			}
		}
	}
	return nil, ErrNoRoute
}

// nextLink returns the next SMSC of to's route, in failover order, that is
// bound, can submit and is not in tried (a bit set of smscLink.idx).
func (g *Gateway) nextLink(to string, tried uint64) *smscLink {
	for _, r := range g.routes {
		if strings.HasPrefix(to, r.prefix) {
			for _, l := range r.links {
				if l.idx < 64 && tried&(1<<l.idx) == 0 && l.up.Load() > 0 && l.cfg.Mode != "receiver" {
					return l
				}
			}
			return nil
		}
	}
	return nil
}

// failoverable reports whether a submit that failed with err certainly did
// not reach the SMSC's queue, so sending it to another SMSC cannot make a
// duplicate: the SMSC answered a temporary refusal (ESME_RMSGQFUL or
// ESME_RTHROTTLED after the client's retries, ESME_RSYSERR,
// ESME_RX_T_APPN), or the request was never written (no bound session, the
// client closed, the window full, smpp.ErrNotWritten). A request written
// but unanswered (ErrTimeout, smpp.ErrUnknownOutcome, a bare ErrClosed)
// has an unknown outcome and is never resent.
func failoverable(err error) bool {
	var se *smpp.StatusError
	if errors.As(err, &se) {
		switch se.Status {
		case smpp.StatusMsgQFul, smpp.StatusThrottled, smpp.StatusSysErr, smpp.StatusXTAppn:
			return true
		}
		return false
	}
	if errors.Is(err, smpp.ErrTimeout) || errors.Is(err, smpp.ErrUnknownOutcome) {
		return false
	}
	return errors.Is(err, smpp.ErrNotWritten) || errors.Is(err, smpp.ErrNotBound) || errors.Is(err, smpp.ErrClientClosed) ||
		errors.Is(err, smpp.ErrWindowFull)
}

func (g *Gateway) startLinks() {
	for _, l := range g.links {
		l.client.Start()
	}
}

func (g *Gateway) stopLinks(ctx context.Context) {
	for _, l := range g.links {
		if err := l.client.Shutdown(ctx); err != nil {
			g.log.Warn("smsc shutdown", "smsc", l.name, "err", err)
		}
	}
}

// linksReady reports whether every route has at least one bound SMSC.
func (g *Gateway) linksReady() (bool, string) {
	for _, r := range g.routes {
		ok := false
		for _, l := range r.links {
			if l.up.Load() > 0 {
				ok = true
				break
			}
		}
		if !ok {
			return false, "no bound SMSC for route " + r.prefix
		}
	}
	return true, ""
}
