package api

import (
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
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
//     chain, Reserve (run by Core.Send) stores key → (body hash, message id, in
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

	s   *Server              // for Reserve
	ctx *fasthttp.RequestCtx // for Reserve's log
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
func (s *Server) idemBegin(ctx *fasthttp.RequestCtx, t *Tenant) (*idemClaim, bool) {
	all := ctx.Request.Header.PeekAll("Idempotency-Key")
	if len(all) == 0 {
		return nil, true
	}
	if len(all) > 1 || !validIdemKey(all[0]) {
		WriteError(ctx, 400, "invalid_request", "Idempotency-Key", "Idempotency-Key must be one header of 1 to 255 printable ASCII characters")
		return nil, false
	}
	c := &idemClaim{key: idemStoreKey(t.ID, all[0]), hash: sha256.Sum256(ctx.PostBody())}
	s.idem.mu.Lock()
	if _, busy := s.idem.running[c.key]; busy {
		s.idem.mu.Unlock()
		ctx.Response.Header.Set("Retry-After", "1")
		WriteError(ctx, 409, "idempotency_in_progress", "Idempotency-Key", "a request with this Idempotency-Key is still running; retry later")
		return nil, false
	}
	if s.idem.running == nil {
		s.idem.running = map[string]struct{}{}
	}
	s.idem.running[c.key] = struct{}{}
	s.idem.mu.Unlock()

	var rec idemRecord
	var decErr error
	found, err := s.cfg.Store.Read([]byte(c.key), func(v []byte) { decErr = json.Unmarshal(v, &rec) })
	if err == nil {
		err = decErr
	}
	switch {
	case err != nil:
		s.idemRelease(c)
		s.log.Error("idempotency key read", "err", err, "request_id", requestID(ctx))
		WriteError(ctx, 503, "store_unavailable", "", "the gateway store could not be read; nothing was sent")
		return nil, false
	case !found:
		return c, true
	}
	s.idemRelease(c)
	switch {
	case string(rec.Hash) != string(c.hash[:]):
		WriteError(ctx, 422, "idempotency_key_reused", "Idempotency-Key", "this Idempotency-Key was used with another request body")
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

// Reserve is Reserver for Core.Send: it durably records that the claim's
// request is handed to the chain as message id, before it is; when it
// cannot, the refusal is 503 and nothing is sent.
func (c *idemClaim) Reserve(id string) *Refusal {
	if err := c.s.idemReserve(c, id); err != nil {
		c.s.log.Error("idempotency key not stored", "err", err, "request_id", requestID(c.ctx))
		return &Refusal{"store_unavailable", "", "the Idempotency-Key could not be stored; nothing was sent"}
	}
	return nil
}

func (s *Server) idemReserve(c *idemClaim, id string) error {
	v, err := json.Marshal(idemRecord{Hash: c.hash[:], ID: id, Created: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := s.cfg.Store.Write([]byte(c.key), v, idemTTL); err != nil {
		return err
	}
	c.msgID, c.reserved = id, true
	return nil
}

// ReserveIdempotencyKey stores tenant's key as reserved for message id
// with body's hash, as a send does before the message enters the chain:
// what a gateway that crashed before its answer leaves (tests).
func (s *Server) ReserveIdempotencyKey(tenant, key string, body []byte, id string) error {
	return s.idemReserve(&idemClaim{key: idemStoreKey(tenant, []byte(key)), hash: sha256.Sum256(body)}, id)
}

// idemFinish stores the answer of a reserved request (synced) and
// releases the claim.
func (s *Server) idemFinish(ctx *fasthttp.RequestCtx, c *idemClaim) {
	defer s.idemRelease(c)
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
		err = s.cfg.Store.Write([]byte(c.key), v, idemTTL)
	}
	if err != nil {
		// The reservation stays: a retry is told the outcome is unknown
		// (409 idempotency_interrupted), never sent twice.
		s.log.Error("idempotency answer not stored", "err", err, "request_id", requestID(ctx))
	}
}

func (s *Server) idemRelease(c *idemClaim) {
	s.idem.mu.Lock()
	delete(s.idem.running, c.key)
	s.idem.mu.Unlock()
}
