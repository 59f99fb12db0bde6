package receipt

import (
	"log/slog"
	"time"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// SMSC is the carrier link a mapping or a receipt comes from: Name keys
// the book and the store, IDBase says how the ids of its submit_sm_resp
// and of its receipts relate (dlr.CanonicalKey).
type SMSC struct {
	Name   string
	IDBase dlr.IDBase
}

// Target is where a carrier's delivery receipt for one part goes. Tenant
// and Account are the caller's 1-based indices (0: none) and Origin its
// message origin, kept as given; Names turns them into ids for the store.
type Target struct {
	MsgID           string // our message id, hex
	Tenant, Account uint16
	Origin          uint8
	From, To        string
	Part, Parts     int
}

// Report is what a receipt says about a message.
type Report struct {
	ID    string // the SMSC's id (ours in a receipt optgate makes itself)
	State dlr.State
	Stat  string // the stat: word as written
	Err   string // the err: field as written, or three digits
	Done  time.Time
}

// Names resolves the tenants and accounts of targets for the store, which
// keeps them by id so a mapping survives a restart with a reordered
// configuration.
type Names interface {
	// Names returns the ids of a tenant and an account by index ("" for
	// none).
	Names(tenant, account uint16) (tenantID, accountID string)
	// Resolve returns the indices of the tenant and account named by a
	// stored target of origin; ok is false when the configuration no
	// longer has what such a target needs.
	Resolve(origin uint8, tenantID, accountID string) (tenant, account uint16, ok bool)
}

// Config is what a Book is built with. Every field but Log is required.
type Config struct {
	Max   int           // mappings kept in memory (two generations of Max/2)
	TTL   time.Duration // how long a mapping is kept (receipts.ttl)
	Grace time.Duration // how long a receipt waits for its mapping (receipts.grace)
	Names Names
	// Deliver forwards a correlated receipt to t and calls answer once
	// with the status for the SMSC. It runs on the SMSC session's read
	// goroutine, on a store lookup worker, or on the goroutine of the Add
	// that a parked receipt waited for (answer does nothing then): it
	// must not wait for a peer.
	Deliver func(t Target, r Report, answer func(smpp.CommandStatus))
	// Miss, when set (several nodes), takes each receipt found neither
	// in memory nor in the store, instead of the book answering it
	// ESME_ROK: it asks the other nodes and ends with one of the Missed's
	// methods, which answers the SMSC. It runs where Deliver does and must
	// not wait. Nil: such a receipt stays parked, answered ESME_ROK.
	Miss func(*Missed)
	// Count counts one receipt of an SMSC by outcome: correlated, parked
	// (it waits for its mapping, or Add delivered it meanwhile),
	// uncorrelated, or with Miss claimed (another node forwarded it) and
	// retried (the SMSC was asked to send it again).
	Count func(smsc, outcome string)
	Log   *slog.Logger // store errors, rate-limited (default slog.Default())
}
