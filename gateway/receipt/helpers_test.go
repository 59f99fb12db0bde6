package receipt

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/smpp"
)

// Origins as the gateway numbers them (gateway.Origin): the book keeps
// them as given, testNames gives them meaning.
const (
	originSMPP uint8 = 1
	originHTTP uint8 = 2
)

// testNames is a configuration of two tenants and one account, by
// 1-based index, with the gateway's rule: a target of an SMPP message
// needs its tenant and account, one of an HTTP message its tenant.
type testNames struct{ tenants, accounts []string }

var names = testNames{tenants: []string{"acme", "globex"}, accounts: []string{"acme-esme"}}

func (n testNames) Names(tenant, account uint16) (tenantID, accountID string) {
	if tenant > 0 && int(tenant) <= len(n.tenants) {
		tenantID = n.tenants[tenant-1]
	}
	if account > 0 && int(account) <= len(n.accounts) {
		accountID = n.accounts[account-1]
	}
	return tenantID, accountID
}

func (n testNames) Resolve(origin uint8, tenantID, accountID string) (tenant, account uint16, ok bool) {
	for i, id := range n.tenants {
		if id == tenantID {
			tenant = uint16(i + 1)
		}
	}
	for i, id := range n.accounts {
		if accountID != "" && id == accountID {
			account = uint16(i + 1)
		}
	}
	switch origin {
	case originSMPP:
		return tenant, account, tenant != 0 && account != 0
	case originHTTP:
		return tenant, account, tenant != 0
	}
	return tenant, account, true
}

// delivery is one call of Config.Deliver.
type delivery struct {
	t Target
	r Report
}

// recorder keeps what a book delivered and counted.
type recorder struct {
	mu        sync.Mutex
	delivered []delivery
	counts    map[string]int // "smsc/outcome"
}

func (rec *recorder) deliveries() []delivery {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]delivery(nil), rec.delivered...)
}

func (rec *recorder) count(smsc, outcome string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.counts[smsc+"/"+outcome]
}

// newBook returns a book without a store, with a grace period of grace
// and a TTL of an hour, and what it delivers and counts.
func newBook(max int, grace time.Duration) (*Book, *recorder) {
	rec := &recorder{counts: map[string]int{}}
	b := New(Config{Max: max, TTL: time.Hour, Grace: grace, Names: names, Log: slog.Default(),
		Deliver: func(t Target, r Report, answer func(smpp.CommandStatus)) {
			rec.mu.Lock()
			rec.delivered = append(rec.delivered, delivery{t, r})
			rec.mu.Unlock()
			answer(smpp.StatusOK)
		},
		Count: func(smsc, outcome string) {
			rec.mu.Lock()
			rec.counts[smsc+"/"+outcome]++
			rec.mu.Unlock()
		}})
	return b, rec
}

// openDB opens a Badger store in dir, closed when the test ends.
func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// openStore makes b durable in db through a group committer of its own,
// as the gateway's; b's store and then the committer close when the test
// ends, before db.
func openStore(t *testing.T, b *Book, db *badger.DB) *groupcommit.Committer {
	t.Helper()
	c := groupcommit.New(db, groupcommit.Options{})
	t.Cleanup(c.Close)
	t.Cleanup(b.CloseStore)
	b.OpenStore(db, c, nil)
	return c
}

// target is an SMPP message's target for tenant acme, account acme-esme.
func target(id string) Target {
	return Target{MsgID: id, Tenant: 1, Account: 1, Origin: originSMPP, From: "+15145550199", To: "+15145550123", Part: 1, Parts: 1}
}
