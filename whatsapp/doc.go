// Package whatsapp connects optgate to Meta's WhatsApp Cloud API: a Client that sends text,
// template and reply-button messages, a Receiver for the webhooks, the 24-hour customer
// service Window and ChooseChannel. whatsapp.md in the shared reference is the source of truth
// for wire formats, error codes and webhook semantics.
//
// # Sending
//
// Client.Send validates the message, refuses free-form messages outside the customer service
// window (ErrWindowClosed, Meta is not called), waits for the per-number token bucket (80/s by
// default) and the per-recipient pair bucket (1 per 6 s after a burst), and posts to
// {BaseURL}/{Version}/{phone-number-id}/messages. Failures are classified by error.code, never
// by HTTP status (Classify, ErrorClass): transient errors, 5xx and timeouts are retried with
// jittered exponential back-off, 130429 pauses the whole number, 131056 pauses only that
// recipient for 4^X seconds; 131026, 131047, 131050, 132xxx and the token errors 0/190 are
// permanent (190 also increments optgate_whatsapp_token_errors_total). The result is a wamid
// or an *APIError.
//
// # The life of an inbound webhook
//
//  1. Meta POSTs to /webhooks/whatsapp (any other path gets 404). Receiver.HandleFastHTTP
//     checks the body size (413), then X-Hub-Signature-256 = "sha256=" + hex(HMAC-SHA256(app
//     secret, raw body)) in constant time (401, nothing processed, on a missing or wrong
//     signature).
//  2. The body is parsed once into owned Event values: not a JSON object → 400; an "object"
//     other than "whatsapp_business_account" → 200, counted (result other_object) and ignored;
//     malformed entries or items are skipped and counted; changes for phone-number ids not configured are
//     counted, logged and acknowledged with 200 without processing, so Meta stops retrying.
//  3. The raw body is copied out of the RequestCtx (fasthttp's no-retention rule) and handed
//     to the single committer goroutine, which writes every body waiting at that moment under
//     "wa/spool/<seq>" in one Badger transaction, with the Window records of their user messages
//     (so the window is open before any handler runs, and a STOP can be confirmed free-form
//     inside it), and syncs once: a group commit. Only then does each waiting request get
//     its 200. A failed commit answers 500 and Meta redelivers.
//  4. Committed bodies go, with their already parsed events, to a bounded in-memory queue,
//     one per worker, chosen by the sender's wa_id, so one sender's events keep spool order.
//     If it is full, the body stays only in the spool and a sweeper goroutine queues it later,
//     in order; the sweeper also resumes bodies left by an earlier process at start-up.
//  5. A worker takes a batch from its queue (different senders handled concurrently), claims each
//     event's dedup key in memory (concurrent duplicates), looks it up under "wa/dedup/"
//     (duplicates within 7 days are dropped and counted), and calls Handler.HandleEvent. A
//     failing handler is retried with back-off, up to MaxAttempts, then the body moves to
//     "wa/dead/" (see Receiver.Replay).
//  6. The batch's outcome goes back to the committer, which writes it in its next group commit
//     (with the bodies arriving then): the handled keys with a 7-day TTL, then the deletions of
//     the finished spool entries; until that commit the batch's keys stay claimed. A failed
//     status with 131047 closes the Window at the status's timestamp (its own commit), unless
//     the user wrote after it.
//
// A crash between steps 3 and 6 loses nothing: the body is in the spool and is processed on the
// next start. A crash between HandleEvent returning and step 6 delivers those events again, so
// handlers must be idempotent.
//
// # Consent hooks
//
// Events carry what the consent engine needs; Event.Signal summarises it: the text to screen
// for keywords (InboundMessage.KeywordText: text body, button label, reply title), a marketing
// opt-out (the "Stop promotions" quick reply, user_preferences stop, a 131050 failure), a
// marketing resume (user_preferences resume), and 131047 window failures.
//
// # Storage
//
// The caller opens the *badger.DB and closes it after the Receiver. The package owns the key
// prefixes "wa/spool/", "wa/dead/", "wa/dedup/" and "wa/window/". The spool is written through
// internal/groupcommit (ReceiverConfig.Committer, or one the Receiver starts on the DB): its
// group commits, its failure policy (a failed commit fences the committer) and its durability.
// Durability of the 200: when the DB is opened with SyncWrites the commit itself syncs;
// otherwise the syncer calls DB.Sync, which syncs the active memtable's WAL and the value log.
// In that mode a memtable rotated between the commit and the Sync is only made durable by its
// flush to L0 moments later; open the DB with SyncWrites for the strictest guarantee.
package whatsapp
