// Package consent is optgate's consent engine: per tenant, channel (sms,
// whatsapp) and recipient it keeps opt-outs, opt-ins and attestation state
// durably on Badger, screens inbound messages for consent keywords, answers
// the outbound check on the hot path, and keeps an append-only evidence log
// of every change (TCPA/FCC 24-24, CTIA, CWTA; see
// shared/reference/consent.md).
//
// # Usage
//
//	s, err := consent.Open(consent.Config{
//		Dir:     "/var/lib/optgate/consent",
//		Logger:  logger,
//		Tenants: []consent.TenantConfig{{ID: "acme", Brand: "Acme", HelpContact: "help@acme.example"}},
//		OnEvent: publish, // conversation.archived, message.held_expired
//		Registerer: prometheus.DefaultRegisterer,
//	})
//	if err != nil { ... } // every config problem, joined
//	defer s.Close()
//	go s.Run(ctx, time.Minute) // archive and held-message expiry
//
//	// MO (deliver_sm, WhatsApp message): screen it.
//	res, err := s.Inbound(ctx, consent.InboundMessage{Tenant: "acme", Channel: "sms",
//		Sender: "12345", Recipient: "+12025550123", Text: "STOP", MessageID: id})
//	if err != nil { /* answer the SMSC with a temporary error: it retries */ }
//	for _, r := range res.Replies { send(r) }      // at once: one confirmation per transition
//	for _, m := range res.Released { send(m) }     // attestation accepted
//	for _, m := range res.Dropped { fail(m) }      // opted out while held
//
//	// MT: check before sending.
//	d, err := s.Check("acme", "sms", "12345", "+12025550123", consent.CategoryMarketing)
//	switch {
//	case err != nil || d.Action == consent.ActionBlock: refuse(d.Reason)
//	case d.Action == consent.ActionHold:          hr, _ := s.Hold(ctx, msg); if hr.Prompt != nil { send(*hr.Prompt) }
//	case d.Action == consent.ActionDisclaimFirst: if r, _ := s.Disclaim(ctx, ...); r != nil { send(*r) }; send(msg)
//	default: send(msg)
//	}
//	text, err := s.ApplyFooter("acme", "en", text, bulk) // "Reply STOP to opt out", MaxLength
//
// # The life of an opt-out
//
// A recipient texts "STOP" to the tenant's short code. The SMPP layer
// decodes the deliver_sm (UCS-2 "ARRÊT" is text by now) and calls Inbound.
// Inbound validates the tenant, channel and sender, normalises the
// recipient to E.164 (phonenumbers with the tenant's default region; a
// canonical "+…" form is taken as is) and matches the text with the
// tenant's keyword.Matcher: STOP is class opt_out, language en, universal.
//
// It then takes the recipient's stripe lock (one of 1024 mutexes keyed by
// tenant and recipient), so that concurrent messages of the same person are
// applied one after the other, and opens a Badger read snapshot. A message
// id already seen (a retried deliver_sm; or an MO applied without an id
// that the gateway named afterwards with RememberMessage because its
// answer may have been lost) ends here with Result.Duplicate and no reply.
// A text without a keyword is screened in InboundMessage.AltText, another
// reading of the carrier's octets, and the evidence's Decoding says which
// reading matched. Otherwise the transition is computed: the record at the
// tenant's scope (the sender's own record for scope "sender", the
// tenant-wide one for scope "tenant" and always for STOPALL) gets the
// opted-out flag, on every channel if the tenant is cross-channel; held
// messages of a pending attestation are dropped; an archive event is
// scheduled ArchiveAfter later; an evidence entry records old and new
// state, the keyword as received and normalised, its language, the raw
// text and the message id; and, because this is a transition (or the last
// confirmation is older than RepeatConfirmWindow), one confirmation in the
// keyword's language (the tenant's default for universal words) is added to
// the result.
//
// All these writes go to the committer (internal/groupcommit) as one
// request. The committer is a single goroutine that takes every request
// queued at that moment (group commit, as many as fit in one Badger
// transaction), writes them in that one transaction and commits it; Badger
// runs with SyncWrites on, so the commit returns once the transaction is
// fsynced in its memtable's WAL. Only then does it update the in-memory
// suppression index and wake the waiting callers. A thousand concurrent
// STOPs thus share one fsync. If the fsync fails, every caller of the
// batch gets an error wrapping ErrStorage, nothing reaches the memory
// index, and the store refuses further writes (ErrStoreFailed) until
// reopened, since what reached the disk is unknown. A change too big for
// a transaction fails alone (ErrStorage) without fencing the store.
//
// Inbound returns after the sync: the gateway sends the confirmation at
// once (well inside the FCC's 5 minutes) and acknowledges the deliver_sm.
// From that moment every Check for the recipient sees the opt-out: Check
// reads only the memory index, two records (sender-scoped and tenant-wide)
// found in one probe sequence, allocation-free for canonical E.164 input.
// Seven days later, unless the recipient texted START meanwhile (which
// cancels the schedule), Sweep emits conversation.archived to the tenant.
//
// # Storage
//
// Key layout, suppression index, group commit, import semantics and the
// evidence log are described on keys.go (layout), memIndex (index),
// commit.go and internal/groupcommit (group commit), Store.Import (CSV) and Evidence.
// Recipients are E.164; WhatsApp wa_ids are stored as "+" and the digits.
// Senders are stored as given, minus the "+" of an all-digit number.
//
// # Addresses
//
// NormalizeAddress reads an address as SMSCs and platforms write it (SMPP
// TON 0/1/2/4/5/6, "+", 00/011 and the region's international prefix,
// national numbers in a region) into the same canonical E.164 as
// NormalizeRecipient, so that every form of a person's number is one key;
// what reads as two numbers is ErrAmbiguousNumber, never a guess.
//
// # Several nodes
//
// With Config.Replicator set (the gateway's cluster: section), submit,
// the one path of every change (MO keywords, operator changes, imports,
// attestation answers, marketing preferences, WhatsApp 131050, number
// moves, sweeps), appends the change after its synced local commit and
// returns only once the replicator says a quorum holds it; a failed
// Append is ErrStorage for the caller, and the local change stays (it
// only blocks more) and is kept, synced, for ReplicatePending, which the
// gateway calls every second until the log takes it; meanwhile a retried
// MO is refused with ErrStorage rather than answered Duplicate, so its
// source retries until the change is held by a quorum. A change appended
// late may land in the log after a newer change of the same recipient
// made elsewhere (see the last paragraph). What is replicated: consent records,
// evidence, MO de-duplication markers (so a retried STOP on another
// node is a duplicate there) and held messages (so a YES on any node
// releases them there, once: the release deletes them everywhere, and a
// STOP anywhere drops them), encoded as the Badger ops the change made
// plus the origin node (replicate.go); recipients travel only in the
// payload. Archive schedules, the held messages' expiry index and pending
// replies stay on their node, so that sweeps and replies run once: a hold
// expires on the node that held it (while that node is down, at its
// return), and a held message's payload is at most 40 KiB (one log
// record).
//
// ApplyReplicated applies one log record: under the stripes of the
// recipients it touches, it reads whether each record exists, then writes
// the ops and the applied sequence (key "n\x00applied") in one synced
// group-commit request, and the committer updates the memory index after
// the sync exactly as for a local change. A record at or below AppliedSeq
// is ignored, so a restart resumes after it. A change carries whole
// records, not deltas, and every node applies every record, its own too,
// so the log's order decides: two nodes changing the same recipient at
// the same moment both end with the change later in the log. A node never
// applies an older record over a newer change of its own to the same key
// (own.go): Append returns each replica's log sequence, noted under the
// recipient's stripe before any record of that recipient can be applied,
// and an op whose key this node changed later (or whose own change waits
// for ReplicatePending) is skipped, since that change comes later in the
// log. Without this, a record from another node made before a local STOP
// but applied after it undid that STOP on this node.
//
// # What is not here
//
// Keyword tables and normalisation live in consent/keyword. Sending the
// replies, the footer's segment budget and SMSC/WhatsApp status codes
// belong to the gateway, smpp and whatsapp packages.
package consent
