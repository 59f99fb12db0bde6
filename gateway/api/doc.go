// Package api is optgate's HTTP API (fasthttp): its one job is to turn
// HTTP requests into calls on the core and their results into answers.
// It holds the routing table (routes.go), the middleware every request
// goes through once (request id, panic recovery, bearer-token auth before
// the body is read, the per-address lockout, the body limit, the refusal
// of writes while a store is unhealthy, the admin check and the tenant
// resolution), the handlers by resource (messages.go, consent.go,
// admin.go) and the one mapping from a message's outcome or a refusal to
// an HTTP status and error body (answer.go).
//
// # The core interface
//
// The package does not import the root gateway package (the root imports
// it and wires it): what it needs from the core is the Core interface
// (core.go), implemented by the root. Core is shaped after the API's
// routes, not after the gateway's internals:
//
//   - Send takes a request already checked for shape (JSON, number,
//     category, interactive limits: what the API can check alone) and does
//     what needs the gateway's state (channel choice, sender ownership,
//     the MT chain) in one call, so that POST /v1/messages, the hot path,
//     crosses the seam once and allocates nothing more than before: the
//     draft goes by value, the Idempotency-Key reservation as an
//     interface over a pointer the handler already holds.
//   - The consent store is used directly through the Consents interface
//     (a subset of *consent.Store's methods); the core adds only what a
//     consent change sets off (confirmations, webhooks) in ChangeConsent.
//   - Store is the durable key/value the Idempotency-Key records live in
//     (the gateway store, synced writes).
//   - The admin and optional parts (backup, dead letters, the simulator's
//     handset, the WhatsApp webhook receiver, /metrics) are smaller
//     interfaces or handlers in Config, nil when absent, so that a test
//     (or a gateway without them) implements only what it serves.
//
// The WhatsApp content of POST /v1/messages (WAContent, WAInteractive)
// is defined here, as the API's wire types; the root keeps them as
// aliases and carries them on its messages, so that a send is decoded
// once, into what the chain sends.
//
// Tenants are plain values (Tenant) made by the root from its
// configuration; the core finds its own tenant by Tenant.ID.
//
// Outcomes arrive as the core's own status.Outcome (channel-neutral: a
// Kind and a typed Reason); answer.go maps it to the status code and body
// in one place, as the SMPP edge maps it to a command_status in its own.
package api
