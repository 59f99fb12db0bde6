package consent

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is; the concrete errors returned
// usually wrap one of these with the offending input.
var (
	// ErrUnknownTenant is returned for a tenant ID that is not configured.
	ErrUnknownTenant = errors.New("consent: unknown tenant")
	// ErrUnknownChannel is returned for a channel other than "sms" or "whatsapp".
	ErrUnknownChannel = errors.New("consent: unknown channel")
	// ErrInvalidNumber is returned when a recipient cannot be normalised to E.164.
	ErrInvalidNumber = errors.New("consent: invalid number")
	// ErrInvalidSender is returned for an empty or malformed sender (our number).
	ErrInvalidSender = errors.New("consent: invalid sender")
	// ErrTooLong is returned by ApplyFooter when the text exceeds the tenant's
	// maximum length; the concrete error is a *TooLongError.
	ErrTooLong = errors.New("consent: message too long")
	// ErrEvidenceRequired is returned for an operator opt-in without a consent
	// source and proof reference, or an operator change without an operator.
	ErrEvidenceRequired = errors.New("consent: evidence of express consent required")
	// ErrStorage wraps every failure to make a change durable. Nothing of the
	// change is visible in memory when it is returned.
	ErrStorage = errors.New("consent: storage failure")
	// ErrStoreFailed is returned for every write after an fsync failed: what
	// reached the disk is unknown, so the store refuses further writes until
	// it is reopened (reads keep answering from the last synced state).
	ErrStoreFailed = errors.New("consent: store failed, reopen required")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("consent: store closed")
	// ErrInvalidInput is returned for malformed arguments (empty IDs, NUL bytes,
	// oversized fields).
	ErrInvalidInput = errors.New("consent: invalid input")
)

// TooLongError reports a message that does not fit the tenant's maximum
// length once the opt-out footer is added. It matches ErrTooLong.
type TooLongError struct {
	Length       int // characters (runes) of the final text, footer included
	Max          int // the tenant's maximum
	FooterLength int // characters the footer added (0 when none was added)
}

func (e *TooLongError) Error() string {
	return fmt.Sprintf("consent: message too long: %d characters (footer %d) exceeds maximum %d",
		e.Length, e.FooterLength, e.Max)
}

// Is makes errors.Is(err, ErrTooLong) true.
func (e *TooLongError) Is(target error) bool { return target == ErrTooLong }

// RowError is one malformed row of a CSV import.
type RowError struct {
	Line int // 1-based line number in the input (the header is line 1)
	Err  error
}

func (e RowError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e RowError) Unwrap() error { return e.Err }
