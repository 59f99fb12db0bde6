package gateway

import "errors"

// The sentinel errors of the gateway package, matched with errors.Is.
// Exported ones reach callers of New, Shutdown and the HTTP API; the
// unexported ones are wrapped inside the package. (errNoPrealloc differs
// per OS and stays in diskfault_*.go; ErrStoreClosed belongs to the
// committer in commit.go.)
var (
	// ErrShutdownTimeout is returned by Shutdown when ctx ended before the
	// gateway had stopped: it gave up waiting (for the stores to close, most
	// often) and left the rest running.
	ErrShutdownTimeout = errors.New("gateway: shutdown did not complete in time")

	// ErrStoresNotClosed is returned by Shutdown when a store was unhealthy
	// (diskfault.go) and so was left open rather than closed: nothing
	// acknowledged is lost, the next start replays the write-ahead logs.
	ErrStoresNotClosed = errors.New("gateway: stores left open on a failing disk")

	// ErrStoreUnhealthy is the error of a message or request refused while a
	// store is unhealthy.
	ErrStoreUnhealthy = errors.New("gateway: store unhealthy (disk full, read-only, missing or slow); writes refused, retry later")

	// ErrWhatsAppDisabled is returned when no WhatsApp number is configured.
	ErrWhatsAppDisabled = errors.New("gateway: WhatsApp is not configured")

	// ErrSenderNotOwned is returned by senderFor for a source the tenant may
	// not send from.
	ErrSenderNotOwned = errors.New("gateway: sender not the tenant's")

	// ErrNoRoute is returned for a destination no route covers.
	ErrNoRoute = errors.New("gateway: no route to destination")

	// errBadPart wraps the reassembler's refusal of a part (invalid numbers,
	// a set over the memory bound): retrying the same part cannot help.
	errBadPart = errors.New("gateway: MO part refused")

	// errDirInUse is wrapped by lockDataDir's error when another process holds
	// the data directory.
	errDirInUse = errors.New("in use by another process")

	// errNotQueued wraps the error of a message of an ack: store account
	// that could not be queued: the platform gets ESME_RMSGQFUL (smppStatus).
	errNotQueued = errors.New("gateway: message not queued")

	// errNoSimulator is returned by Start when a simulator is enabled but
	// Options carried nothing to start it with (simulators.go).
	errNoSimulator = errors.New("not wired: Options.StartSMSCSimulator and Options.StartWhatsAppMock start the built-in simulators (cmd/optgate sets them)")

	// errBackupBusy and errShuttingDown refuse a backup (backup.go).
	errBackupBusy   = errors.New("a backup is already running")
	errShuttingDown = errors.New("the gateway is shutting down")
)
