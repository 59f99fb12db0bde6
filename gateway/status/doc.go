// Package status is what became of a message: the Outcome of its submit
// (a Kind, a typed Reason), the State it is in afterwards, and the status
// book that remembers those states for GET /v1/messages/{id} and query_sm,
// durably (Store) so the answer survives a restart.
//
// One job: keep the vocabulary of message fates in one place, so that
// every edge maps it the same way. The MT chain finishes a message with an
// Outcome; the SMPP edge (the gateway's answerSubmit) turns it into a
// command_status, the HTTP API into a status code and error code, and the
// status book into a State. Nothing here knows SMPP command statuses or
// HTTP codes: Outcome is channel-neutral. (States do read and give SMPP
// receipt states, smpp/dlr: an SMSC receipt is the main source of a
// message's later states, and query_sm asks for one.) Where a status code depends on
// what only the carrier knew (an SMSC's own command_status, relayed to the
// platform), the Outcome carries it as CarrierCode, which the edge
// passes on untouched.
//
// The small interfaces:
//
//   - Outcome{Kind, Reason, Retry, CarrierCode, Err, ...} is a plain value.
//   - State has one ranking (Replaces): which state may replace which, as
//     receipts and WhatsApp statuses arrive out of order.
//   - Reason's String is the wire and API name ("opted_out",
//     "invalid_number"...); a consent.Reason becomes one once, with
//     FromConsent. A carrier's own error text ("err:0B") is a Reason too
//     (CarrierReason), so the book stores one small number per message.
//   - Book is written for every message (Put, Update) and read by the
//     API (Get); it knows tenants only through the Tenants interface (a
//     tenant id and its small index), never the gateway itself.
//
// The package is named status rather than outcome because what outlives
// the submit, and what the API serves, is the message's status; the
// Outcome is the first one.
package status
