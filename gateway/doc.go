// Package gateway is the running optgate: the SMPP server platforms bind
// to, the HTTP API, the binds to operators' SMSCs, the WhatsApp channel,
// the consent store and the durable queues, wired together.
//
//	cfg, err := gateway.ParseConfig(data, "optgate.yaml", nil) // every problem, with file:line
//	g, err := gateway.New(cfg, gateway.Options{Logger: log})
//	err = g.Start()
//	defer g.Shutdown(ctx)
//
// The built-in SMSC simulator and WhatsApp mock are started through
// Options.StartSMSCSimulator and Options.StartWhatsAppMock (simulators.go):
// cmd/optgate wires the test doubles in (cmd/optgate/simulators), so this
// package imports none.
//
// # The life of an outbound message
//
// A submit_sm from a bound platform (or a POST /v1/messages) becomes a
// Message, its destination read in the tenant's region and its sender
// checked by the one ownership rule (address.go, senderFor), and enters the MT chain (chain.go, where the order is written
// down): validate, the consent screen against the suppression index, the
// bulk footer and length rules, the WhatsApp window, the durable queue for
// ack: store accounts (queue.go over gateway/outbox), and send. A refused message is answered at once:
// submit_sm_resp 0x00000401..0x00000404 or HTTP 403/409. An accepted one is
// routed by destination prefix to an SMSC (failing over within its group),
// and the platform is answered with our message id when the SMSC accepted
// it; the SMSC's id is mapped to ours so its receipt can be sent back.
//
// # The life of an opt-out
//
// A deliver_sm's source and destination are read in the SMSC link's region
// (address.go, consent.NormalizeAddress); an MO either of which cannot be
// keyed is dead-lettered durably, counted and answered (deadletter.go).
// A deliver_sm from an SMSC (or a signed WhatsApp webhook) is reassembled
// if it is multipart and handed to the consent engine, which matches
// keywords and records the change with group commit: the deliver_sm_resp
// ESME_ROK goes back only once the change is synced and the MO is durably
// queued for the tenant; a storage failure answers ESME_RX_T_APPN so the
// SMSC retries. The confirmation is then sent from the number that
// received the keyword, through the SMSC it came from, and the MO and the
// consent event reach the tenant (deliver_sm to its bound ESMEs, signed
// webhooks kept on disk until delivered, gateway/outbox).
//
// Both channels go through one MO consent core, moConsent (mo_core.go):
// the consent call, the tenant's durable copy, the counting, the
// last-channel note and the replies (replies.go). Its adapters are the
// SMS one (mo.go: reads the text, answers the SMSC, keeps the retry
// memory) and the WhatsApp one (whatsapp_mo.go, waperson.go: keys the
// person, orders keywords by event time).
//
// The text is decoded by data_coding, as the SMSC's data_coding_0 and
// data_coding_1 say it means them; octets that make sense only in another
// alphabet (GSM 03.38 labelled IA5, as node-smpp sends) are screened in
// that reading too. An MO whose answer may not have reached the SMSC (an
// error answer, a connection closed before the answer was written) is
// remembered for the SMSC's mo_retry_window, so that its retry is answered
// without a second confirmation or copy (moretry.go).
//
// # Who may do what
//
// SECURITY.md is the model. In code: the HTTP API's middleware (package
// gateway/api, middleware.go) checks a bearer token before a request's
// body is read, and its httpSec (sec.go) locks out addresses that keep
// failing, counts imports and keeps the callers; apiCore.OwnSender
// (apicore.go) holds a consent request's sender to the tenant's own
// numbers; checkExposure (config_validate.go) refuses dev secrets and mocks on a
// listener that is not loopback.
//
// # Backups
//
// Backup (backup.go, POST /v1/admin/backup) streams an archive of the
// consent and gateway stores while the gateway serves; package backup
// defines the format and what consistency it gives. metrics.listen moves
// /metrics (and, with metrics.pprof, /debug/pprof) to a listener of its
// own (metrics_listener.go).
//
// # The HTTP API's contract
//
// Package gateway/api serves the API over the core interface apicore.go
// implements. api/openapi.yaml describes the API (served at GET
// /v1/openapi.yaml; the tests validate answers against it).
// Idempotency-Key on POST /v1/messages (gateway/api/idempotency.go) is
// reserved in the gateway store, synced, before the
// message reaches the chain, and the answer stored after, so a retry is
// replayed and a crash cannot send twice. Every answer has an X-Request-Id
// (gateway/api/requestid.go); listings page with opaque cursors
// (gateway/api/page.go). The status book (gateway/status) records every
// outcome and receipt as a message State by one ranking; its records are
// written to the gateway store asynchronously so GET /v1/messages/{id}
// answers after a restart.
//
// # Outcomes at the edges
//
// The chain finishes every message with a channel-neutral status.Outcome
// (Kind, typed Reason, Retry, the carrier's own code). The SMPP edge maps
// it to a command_status in one function (outcome.go, smppStatus: 0x401
// to 0x404 for consent refusals, the account's overrides, ESME_RX_T_APPN
// for what may be retried); the HTTP API maps it to a status and error
// code in one function too (gateway/api/answer.go).
//
// # Several nodes
//
// With a cluster: section (cluster.Config; cluster.go) this process is one
// node of several sharing one replicated consent log over NATS JetStream;
// without it nothing of this runs (no NATS, the same code path: the MT
// chain pays one nil check). New starts the embedded NATS server, so a
// taken port fails at once; Start connects (waiting at most
// cluster.start_wait for JetStream), follows the consent log from
// consent.Store.AppliedSeq and returns only once it has caught up, before
// any listener serves. consent appends each committed change through
// consent.Config.Replicator (clusterLog) and answers its caller only
// after the local sync and the quorum ack, so a deliver_sm_resp
// ESME_ROK, a webhook 200 or an API 200 means "on a majority's disks";
// an Append failure answers as a local store failure (ESME_RX_T_APPN,
// 503). The follower applies every other node's changes with
// consent.Store.ApplyReplicated. The screen stage refuses every MT with
// a temporary outcome (ESME_RX_T_APPN; 503 store_unavailable with
// Retry-After: 1) while Follower.Current(cluster.max_lag) is false, and
// /readyz is false while Follower.Healthy says why. Shutdown stops the
// follower before the stores close and the connection and the server
// after them. WhatsApp windows and last channels go through the
// cluster's Shared bucket (cluster_shared.go): whatsapp.Window.Observe
// and noteChannel put this node's facts, and every node applies every
// fact in the bucket's order (Window.Apply, the last-channel key). A
// receipt the receipt book finds nowhere is claimed from the other nodes,
// and the node whose book has its mapping forwards it
// (cluster_receipt.go; cluster/doc.go, "Receipts: ownership by claim").
// Queued MT (ack: store) and spooled deliver_sm (MOs and receipts for an
// ESME not bound on the node that has them) go to the cluster's work
// queue (cluster_queue.go over cluster.Queue) instead of the node's
// outbox: any node sends a queued message, screened again there
// (afterQueue), and a node where the ESME is not bound hands a deliver_sm
// on at once (cluster.Elsewhere) to one where it is; the direct path to
// an ESME bound on this node comes first, as on a single node. What a
// node's outbox held when it started clustered is moved into the work
// queue. Webhook events stay in each node's outbox. What is and is not
// cluster-wide yet: consent/doc.go, "Several nodes", docs/cluster.md and
// cluster/doc.go.
package gateway
