package api

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"

	"github.com/optgate/optgate/consent"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// testCore is a small implementation of the core interface (Core, Store,
// Admin) for the API's own tests: the interface is the package's seam,
// and these tests are about what the API does on its side of it.
type testCore struct {
	mu     sync.Mutex
	sends  []string // tenant ID of each Send
	sent   Sent     // what Send answers
	refuse *Refusal // what Send refuses with, if set
	kv     map[string][]byte
	// problem is why the stores refuse writes ("" when they do not).
	problem string
}

func (c *testCore) Send(t *Tenant, d Draft, res Reserver) (Sent, *Refusal) {
	c.mu.Lock()
	c.sends = append(c.sends, t.ID)
	c.mu.Unlock()
	if c.refuse != nil {
		return Sent{}, c.refuse
	}
	if res != nil {
		if r := res.Reserve("m1"); r != nil {
			return Sent{}, r
		}
	}
	s := c.sent
	s.To, s.Channel = d.To, "sms"
	return s, nil
}

func (c *testCore) sendsTo() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.sends...)
}

func (c *testCore) MessageStatus(string) (any, string, bool) { return nil, "", false }
func (c *testCore) ChangeConsent(context.Context, *Tenant, consent.OperatorChange, bool) (consent.Result, error) {
	return consent.Result{}, nil
}
func (c *testCore) OwnSender(_ *Tenant, _, s string) (string, *Refusal) { return s, nil }
func (c *testCore) Ready() (bool, string)                               { return true, "" }
func (c *testCore) StoresOK() bool                                      { return c.problem == "" }
func (c *testCore) StoreProblem() string                                { return c.problem }

func (c *testCore) Read(key []byte, fn func([]byte)) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.kv[string(key)]
	if ok {
		fn(v)
	}
	return ok, nil
}

func (c *testCore) Write(key, val []byte, _ time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kv == nil {
		c.kv = map[string][]byte{}
	}
	c.kv[string(key)] = append([]byte(nil), val...)
	return nil
}

func (c *testCore) Backup(io.Writer, BackupRequest, string) error { return nil }
func (c *testCore) BackupRunning() bool                           { return false }
func (c *testCore) CheckBackupParent(string) error                { return nil }
func (c *testCore) DeadLetters(int) (any, int, error)             { return []string{}, 0, nil }

const (
	adminToken = "admin-token-0123456789"
	acmeToken  = "acme-token-0123456789"
	betaToken  = "beta-token-0123456789"
)

// startServer serves an API over core on 127.0.0.1:0 with the tenants
// acme and beta (or only acme with one) and returns its address.
func startServer(t *testing.T, core *testCore, one bool, edit func(*Config)) string {
	t.Helper()
	acme := &Tenant{ID: "acme", Region: "CA"}
	beta := &Tenant{ID: "beta", Region: "CA"}
	cfg := Config{AdminToken: adminToken, Tenants: []*Tenant{acme, beta},
		Tokens:       map[string]*Tenant{acmeToken: acme, betaToken: beta},
		MaxBodyBytes: 1 << 20, MaxImportBytes: 1 << 20, ReadTimeout: 10 * time.Second,
		Core: core, Store: core, Admin: core}
	if one {
		cfg.Tenants, cfg.Tokens = cfg.Tenants[:1], map[string]*Tenant{acmeToken: acme}
	}
	if edit != nil {
		edit(&cfg)
	}
	s := New(cfg)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// answer is an HTTP answer: status, headers and the JSON body's error
// code and field, if any.
type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (a answer) errCode() string {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (a answer) errField() string {
	e, _ := a.body["error"].(map[string]any)
	f, _ := e["field"].(string)
	return f
}

func do(t *testing.T, addr, method, path, token, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(b, &a.body)
	return a
}
