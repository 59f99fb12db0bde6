package gateway

import (
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/optgate/optgate/internal/groupcommit"
)

// Idempotency-Key on POST /v1/messages.
//
// A platform that lost the answer to a send (a timeout, a dropped
// connection) retries with the same Idempotency-Key and gets the first
// answer back, replayed (Idempotent-Replayed: true), while nothing is sent
// again. Keys are per tenant and live idemTTL in the gateway store.
//
// The order that makes a crash unable to send twice:
//
//  1. idemBegin claims the key in memory (a second request with it while
//     the first runs is 409 idempotency_in_progress) and reads the store:
//     a stored answer is replayed, or 422 idempotency_key_reused when the
//     body differs.
//  2. Once the request is valid, before the message is handed to the MT
//     chain, idemReserve stores key → (body hash, message id, in
//     progress), synced. If it cannot, the answer is 503 and nothing is
//     sent.
//  3. After the answer is written, idemFinish stores it (synced) in place
//     of the reservation and releases the claim.
//
// A crash between 2 and 3 leaves a reservation no process is working on:
// the message may or may not have reached the carrier. A retry then gets
// 409 idempotency_interrupted with the message id (GET
// /v1/messages/{id} tells what became of it), never a second send;
// sending again takes a new key. Answers to requests refused before step
// 2 (validation errors) are not stored: a retry is validated again.
const (
	idemTTL       = 24 * time.Hour
	idemKeyMaxLen = 255
)

// idemInflight is the in-memory claim on the keys of requests running in
// this process.
type idemInflight struct {
	mu      sync.Mutex
	running map[string]struct{} // store key; guarded by mu
}

// idemClaim is one request's hold on its key.
type idemClaim struct {
	key      string // store key: "idem/" tenant NUL key
	hash     [32]byte
	msgID    string
	reserved bool
}

// idemRecord is the stored value of a key.
type idemRecord struct {
	Hash    []byte    `json:"h"`
	Done    bool      `json:"done"`
	ID      string    `json:"id,omitempty"` // the message id (set at the reservation)
	Status  int       `json:"status,omitempty"`
	Type    string    `json:"type,omitempty"` // Content-Type of the answer
	Body    []byte    `json:"body,omitempty"`
	Created time.Time `json:"created"`
}

func idemStoreKey(tenant string, key []byte) string {
	return "idem/" + tenant + "\x00" + string(key)
}

// validIdemKey reports whether k is 1 to 255 printable ASCII characters.
func validIdemKey(k []byte) bool {
	if len(k) == 0 || len(k) > idemKeyMaxLen {
		return false
	}
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// idemBegin reads the request's Idempotency-Key. It returns nil, true
// without one; a claim, true for a new key; and false when it answered
// the request itself (a bad key, a replay, a reused or busy key).
func (g *Gateway) idemBegin(ctx *fasthttp.RequestCtx, t *Tenant) (*idemClaim, bool) {
	all := ctx.Request.Header.PeekAll("Idempotency-Key")
	if len(all) == 0 {
		return nil, true
	}
	if len(all) > 1 || !validIdemKey(all[0]) {
		writeErr(ctx, 400, "invalid_request", "Idempotency-Key", "Idempotency-Key must be one header of 1 to 255 printable ASCII characters")
		return nil, false
	}
	c := &idemClaim{key: idemStoreKey(t.ID, all[0]), hash: sha256.Sum256(ctx.PostBody())}
	g.idem.mu.Lock()
	if _, busy := g.idem.running[c.key]; busy {
		g.idem.mu.Unlock()
		ctx.Response.Header.Set("Retry-After", "1")
		writeErr(ctx, 409, "idempotency_in_progress", "Idempotency-Key", "a request with this Idempotency-Key is still running; retry later")
		return nil, false
	}
	if g.idem.running == nil {
		g.idem.running = map[string]struct{}{}
	}
	g.idem.running[c.key] = struct{}{}
	g.idem.mu.Unlock()

	var rec idemRecord
	var decErr error
	found, err := readKey(g.db, []byte(c.key), func(v []byte) { decErr = json.Unmarshal(v, &rec) })
	if err == nil {
		err = decErr
	}
	switch {
	case err != nil:
		g.idemRelease(c)
		g.log.Error("idempotency key read", "err", err, "request_id", requestID(ctx))
		writeErr(ctx, 503, "store_unavailable", "", "the gateway store could not be read; nothing was sent")
		return nil, false
	case !found:
		return c, true
	}
	g.idemRelease(c)
	switch {
	case string(rec.Hash) != string(c.hash[:]):
		writeErr(ctx, 422, "idempotency_key_reused", "Idempotency-Key", "this Idempotency-Key was used with another request body")
	case !rec.Done:
		writeJSON(ctx, 409, apiError{Error: apiErrorBody{Code: "idempotency_interrupted", Field: "Idempotency-Key", ID: rec.ID,
			Message: "the gateway stopped while this request ran: the message may or may not have been sent; GET /v1/messages/" +
				rec.ID + " tells what is known; send again only with a new Idempotency-Key"}})
	default:
		ctx.SetStatusCode(rec.Status)
		ctx.SetContentType(rec.Type)
		ctx.SetBody(rec.Body)
		ctx.Response.Header.Set("Idempotent-Replayed", "true")
	}
	return nil, false
}

// idemReserve durably records that the claim's request is handed to the
// chain as message id, before it is.
func (g *Gateway) idemReserve(c *idemClaim, id string) error {
	v, err := json.Marshal(idemRecord{Hash: c.hash[:], ID: id, Created: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := g.commit.Write(groupcommit.Op{Key: []byte(c.key), Value: v, TTL: idemTTL}); err != nil {
		return err
	}
	c.msgID, c.reserved = id, true
	return nil
}

// idemFinish stores the answer of a reserved request (synced) and
// releases the claim.
func (g *Gateway) idemFinish(ctx *fasthttp.RequestCtx, c *idemClaim) {
	defer g.idemRelease(c)
	if !c.reserved {
		return
	}
	if ctx.Response.StatusCode() == 200 || len(ctx.Response.Body()) == 0 {
		// No answer was written (a panic on the way: the send never
		// answers 200): the reservation stays, so a retry learns that the
		// outcome is unknown instead of getting an empty answer.
		return
	}
	rec := idemRecord{Hash: c.hash[:], Done: true, ID: c.msgID, Status: ctx.Response.StatusCode(),
		Type: string(ctx.Response.Header.ContentType()), Body: ctx.Response.Body(), Created: time.Now().UTC()}
	v, err := json.Marshal(rec)
	if err == nil {
		err = g.commit.Write(groupcommit.Op{Key: []byte(c.key), Value: v, TTL: idemTTL})
	}
	if err != nil {
		// The reservation stays: a retry is told the outcome is unknown
		// (409 idempotency_interrupted), never sent twice.
		g.log.Error("idempotency answer not stored", "err", err, "request_id", requestID(ctx))
	}
}

func (g *Gateway) idemRelease(c *idemClaim) {
	g.idem.mu.Lock()
	delete(g.idem.running, c.key)
	g.idem.mu.Unlock()
}
