package whatsapp

import (
	"net"

	"github.com/valyala/fasthttp"
)

// trackConn is the standalone servers' ConnState hook: it keeps the set of
// open connections for closeConns. Requests on a connection (StateActive,
// StateIdle) take no lock.
func (r *Receiver) trackConn(c net.Conn, st fasthttp.ConnState) {
	switch st {
	case fasthttp.StateNew:
		r.srvMu.Lock()
		if r.conns == nil {
			r.conns = make(map[net.Conn]struct{})
		}
		r.conns[c] = struct{}{}
		r.srvMu.Unlock()
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		r.srvMu.Lock()
		delete(r.conns, c)
		r.srvMu.Unlock()
	}
}

// closeConns closes the connections still open after the servers' shutdown:
// when its context ends first, fasthttp's ShutdownWithContext returns
// without closing connections that were not idle, and they would go on
// serving (their goroutines alive) until their idle timeout.
func (r *Receiver) closeConns() {
	r.srvMu.Lock()
	open := make([]net.Conn, 0, len(r.conns))
	for c := range r.conns {
		open = append(open, c)
	}
	r.srvMu.Unlock() // srvMu is a leaf: the closes (and their StateClosed hooks) run without it
	for _, c := range open {
		_ = c.Close()
	}
}
