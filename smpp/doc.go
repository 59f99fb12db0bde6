// Package smpp is optgate's SMPP 3.4 stack: a codec for every PDU, a
// session layer with request windows, an ESME-side Client and an
// SMSC-side Server.
//
// # Codec
//
// Each PDU is a plain struct in the specification's field order
// (SubmitSM, DeliverSM, DataSM, Bind, ...). AppendBinary appends its body
// to a caller-owned buffer and checks every field's maximum length;
// UnmarshalBinary decodes a body without copying (byte fields alias the
// input) and never panics. Decode and AppendPDU handle whole PDUs, header
// included. Optional parameters stay in their wire form (TLVs) so unknown
// and vendor tags pass through byte-exact; typed accessors read the tags
// optgate uses. A field that breaks the specification is a *StatusError
// carrying the command_status to answer with.
//
//	b, err := smpp.AppendPDU(buf[:0], smpp.StatusOK, seq, &smpp.SubmitSM{SM: smpp.SM{...}})
//	h, p, err := smpp.Decode(frame)
//
// # Sessions
//
// A Conn runs one read and one write goroutine per connection. The reader
// frames PDUs by command_length (a length outside 16..MaxPDUSize closes the
// connection: the stream cannot be trusted after it), answers from the
// header alone where it can (generic_nack ESME_RINVCMDID for unknown
// commands, ESME_RINVBNDSTS for the wrong bind state, ESME_RTHROTTLED past
// MaxInflight), answers enquire_link and unbind itself, and hands other
// requests to a Handler. The writer coalesces queued PDUs into few writes.
// A handler that must know whether its answer left us (an SMSC resends a
// deliver_sm whose response it did not get) answers with
// Request.RespondNotify: its WrittenFunc learns whether the response was
// written to the socket or the session closed first.
// Requests we send go through a Window: bounded, keyed by sequence number,
// each expiring after RequestExpiry.
//
// # The life of a submit
//
// Client.SubmitAsync picks a bound session round robin (skipping binds
// paused after ESME_RTHROTTLED, preferring one with a free window slot),
// takes a window slot, queues the PDU for the
// writer and returns. The SMSC's submit_sm_resp is read by the session's
// reader, matched to its window entry by sequence number, and the done
// callback runs on the reader goroutine with the message id or a
// *StatusError. A throttled or queue-full answer is retried with back-off
// on a goroutine of its own; a timeout reports ErrTimeout and is not
// resubmitted blindly (the SMSC may have the message). When the connection
// drops, a submit that never reached the wire (ErrNotWritten) is sent on
// another bind; one that was written fails with ErrUnknownOutcome and is
// left to the caller.
//
// On the Server, a bind is authenticated through Server.Authenticate,
// which maps it to an Account whose window and rate apply across its
// binds (when Authenticate returns the same *Account for each). Server.Deliver pushes deliver_sm to an account's receivers.
// Before Authenticate runs, every bind is checked against the locks: a
// remote IP past MaxFailedBinds and an account past AccountLockAfter
// failures (with a growing lock) are refused with ESME_RBINDFAIL, the
// right password too; connections are capped in total (MaxConns) and per
// IP (MaxConnsPerIP) and closed if unbound after BindTimeout. OnGuard
// reports each of these actions for metrics.
// Shutdown stops accepting, drains the windows both ways and unbinds.
package smpp
