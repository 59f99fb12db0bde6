package smpp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	requireNoErr(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smsc.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	requireNoErr(t, err)
	cert, err := x509.ParseCertificate(der)
	requireNoErr(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func TestTLSBindAndSubmit(t *testing.T) {
	cert, pool := selfSigned(t)
	srv, _ := testServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err)
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
	c := testClient(t, ln.Addr().String(), func(c *ClientConfig) { c.TLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"} })
	id, err := c.Submit(context.Background(), &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("15145550100")}, ShortMessage: []byte("over TLS")}})
	requireNoErr(t, err)
	if id == "" {
		t.Fatal("no message id")
	}
	// A client that does not trust the certificate never binds.
	bad := NewClient(ClientConfig{Addr: ln.Addr().String(), SystemID: "acct", Password: "secret", TLS: &tls.Config{ServerName: "127.0.0.1"}, ReconnectMin: time.Hour})
	bad.Start()
	defer bad.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := bad.WaitBound(ctx, 1); err == nil {
		t.Fatal("bound without trusting the server certificate")
	}
}

func TestAccountRateThrottled(t *testing.T) {
	_, addr := testServer(t, func(s *Server) {
		s.Authenticate = func(context.Context, BindInfo) (*Account, CommandStatus) {
			return &Account{ID: "acct", Rate: 1}, StatusOK // one a second, burst 1
		}
	})
	r := dialRaw(t, addr)
	r.bind()
	r.send(0, 10, &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("1")}}})
	r.send(0, 11, &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("1")}}})
	got := map[uint32]CommandStatus{}
	for i := 0; i < 2; i++ {
		h, _, err := r.read()
		requireNoErr(t, err)
		got[h.Sequence] = h.Status
	}
	testutil.RequireEqual(t, got, map[uint32]CommandStatus{10: StatusOK, 11: StatusThrottled})
}

// A TLS config that sets only RootCAs verifies the SMSC's certificate
// against the host of Addr (an IP or a name); the caller's config is not
// changed.
func TestTLSServerNameFromAddr(t *testing.T) {
	cert, pool := selfSigned(t)
	srv, _ := testServer(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	requireNoErr(t, err)
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: pool}
			c := testClient(t, net.JoinHostPort(host, port), func(c *ClientConfig) { c.TLS = cfg })
			_, err := c.Submit(context.Background(), &SubmitSM{SM: SM{Dest: Address{1, 1, []byte("1")}, ShortMessage: []byte("x")}})
			requireNoErr(t, err)
			testutil.RequireEqual(t, cfg.ServerName, "")
		})
	}
}
