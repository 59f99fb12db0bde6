package api

import (
	"context"
	"io"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/gateway/status"
)

// Core is what the API needs from the gateway's core. Its methods are
// safe for concurrent use.
type Core interface {
	// Send hands a message to the MT chain for tenant t and waits for its
	// outcome, at most the core's send wait (then Sent.Pending). A
	// refusal before the chain (channel, sender) comes back as a
	// *Refusal, nothing sent. When res is not nil, res.Reserve(id) runs
	// before the message enters the chain; its refusal is returned as is.
	Send(t *Tenant, d Draft, res Reserver) (Sent, *Refusal)
	// MessageStatus is GET /v1/messages/{id}'s answer body and the tenant
	// the message belongs to.
	MessageStatus(id string) (st any, tenant string, found bool)
	// ChangeConsent records an operator's opt-out (optIn false) or opt-in
	// durably and sends what the change sets off (confirmations, webhooks).
	ChangeConsent(ctx context.Context, t *Tenant, oc consent.OperatorChange, optIn bool) (consent.Result, error)
	// OwnSender normalises a consent request's sender in the tenant's
	// region and checks that it is one of the tenant's own numbers on
	// channel; a refusal is invalid_sender or sender_not_allowed.
	OwnSender(t *Tenant, channel, sender string) (string, *Refusal)
	// Ready reports whether the gateway serves (GET /readyz) and why not.
	Ready() (bool, string)
	// StoresOK reports whether every store takes writes (hot path: cheap).
	StoresOK() bool
	// StoreProblem is why a store refuses writes now, "" when none does.
	StoreProblem() string
}

// Consents is the part of the consent store the API uses directly:
// reads, imports and exports, which set nothing else off (*consent.Store
// implements it). A change that does goes through Core.ChangeConsent.
type Consents interface {
	Get(tenant, channel, recipient string) (consent.Status, error)
	HistoryPage(tenant, channel, recipient string, q consent.HistoryQuery) ([]consent.Evidence, []byte, error)
	Import(ctx context.Context, r io.Reader, opt consent.ImportOptions) (consent.ImportReport, error)
	Export(ctx context.Context, w io.Writer, opt consent.ExportOptions) (int, error)
	ExportEvidence(ctx context.Context, w io.Writer, opt consent.ExportOptions) (int, error)
	ExportPage(ctx context.Context, w io.Writer, opt consent.ExportOptions) (int, []byte, error)
	ExportEvidencePage(ctx context.Context, w io.Writer, opt consent.ExportOptions) (int, []byte, error)
}

// Store is the durable key/value store the Idempotency-Key records live
// in.
type Store interface {
	// Read calls fn with key's value if it is stored.
	Read(key []byte, fn func(v []byte)) (found bool, err error)
	// Write stores key (synced before it returns), expiring after ttl.
	Write(key, val []byte, ttl time.Duration) error
}

// Admin is what the admin routes need.
type Admin interface {
	// Backup writes a backup archive of every store to w.
	Backup(w io.Writer, req BackupRequest, version string) error
	// BackupRunning reports whether a backup is being taken.
	BackupRunning() bool
	// CheckBackupParent checks that an incremental backup may follow the
	// archive whose SHA-256 is parent.
	CheckBackupParent(parent string) error
	// DeadLetters returns the first limit kept dead letters, oldest first
	// (encoded as JSON as they are), and how many are kept.
	DeadLetters(limit int) (list any, total int, err error)
}

// Simulator is the built-in SMSC simulator's handset (POST
// /v1/simulator/mo).
type Simulator interface {
	// SimulatorReady reports whether the route exists: the simulator runs
	// and the API listens on loopback only.
	SimulatorReady() bool
	// SimulateMO makes the simulator deliver a handset's message from to
	// to; t is the caller's tenant (nil for the admin), who must own to.
	SimulateMO(ctx context.Context, t *Tenant, from, to, text string) *Refusal
}

// Tenant is a tenant as the API sees it.
type Tenant struct {
	ID string
	// Region is the tenant's default region, for national numbers.
	Region string
	// Webhook reports whether the tenant has a webhook URL (receipts are
	// asked for by default then).
	Webhook bool
}

// Draft is a POST /v1/messages request checked for shape: To is in E.164,
// Channel is the caller's choice ("" for the gateway's), Interactive
// means WhatsApp.
type Draft struct {
	To, From, Text, Channel string
	Marketing               bool
	Bulk                    bool
	Receipt                 bool // ask for delivery receipts
	Template                *WAContent
	Interactive             *WAInteractive
}

// Sent is the answer of Core.Send.
type Sent struct {
	ID, Channel, To string
	// Pending is set when the outcome did not come within the send wait:
	// the send goes on and Outcome is empty.
	Pending bool
	Outcome status.Outcome
}

// Reserver durably reserves an Idempotency-Key for message id.
type Reserver interface {
	Reserve(id string) *Refusal
}

// Refusal is a request refused before (or instead of) doing anything:
// an error code (a key of the one code-to-status mapping, answer.go),
// the offending field and a message for the caller.
type Refusal struct {
	Code, Field, Message string
}

// Handlers are the routes served by other parts of the gateway.
type Handlers struct {
	// Metrics serves /metrics (nil: not on this listener).
	Metrics fasthttp.RequestHandler
	// WhatsApp serves /webhooks/whatsapp (signed by Meta; not
	// authenticated by token).
	WhatsApp fasthttp.RequestHandler
}
