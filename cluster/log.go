package cluster

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// maxRecordSize bounds a record's Data.
const maxRecordSize = 64 << 10

// Errors of Append. The gateway answers ESME_RX_T_APPN / HTTP 503 for
// ErrNotAcknowledged, as for a local store failure, and the source retries.
var (
	ErrNotAcknowledged = errors.New("cluster: consent change not acknowledged by a quorum")
	ErrBadRecord       = errors.New("cluster: bad record")
)

// Record is one consent change in the replicated log. The payload is
// opaque here: the gateway encodes and decodes it.
type Record struct {
	// Tenant is the tenant's subject token: 1-64 letters, digits, '-' or
	// '_'.
	Tenant string
	// Key selects the shard subject (the recipient, for example); it is
	// hashed with the subject key and not sent: put whatever Apply needs in
	// Data. Records with the same tenant and key share a subject.
	Key []byte
	// ID de-duplicates (Nats-Msg-Id): a record whose ID the stream saw in
	// the last 2 minutes is acknowledged without being stored again. Empty:
	// Append makes one and reuses it across its own retries; a caller that
	// retries a failed Append itself should set it.
	ID string
	// Data is the payload, at most 64 KiB.
	Data []byte
	// Time is when the stream stored the record; set on the records given
	// to Apply, ignored by Append.
	Time time.Time
}

// Log appends consent changes to the replicated stream. It is safe for
// concurrent use; concurrent Appends share the connection's bounded window
// of asynchronous publishes.
type Log struct {
	c *Conn
}

// Log is the consent log on this connection.
func (c *Conn) Log() *Log { return &Log{c: c} }

// Append publishes the records (each on optgate.consent.<tenant>.<shard>)
// and returns nil only once every one of them is acknowledged by the
// stream, that is held by a quorum of its replicas (and, on embedded
// servers, synced to their disks). The publishes are asynchronous and
// share the connection's bounded window, so a batch costs about one round
// trip. A record whose acknowledgement failed or timed out is published
// again with the same Nats-Msg-Id, so a record the stream did store is not
// stored twice.
//
// Order: records with the same Tenant and Key are stored in the order
// given (a later one is published only once the earlier one is
// acknowledged); records with different keys may be stored in any order,
// since a retried record lands after others of its batch. A change that
// must not be reordered with anything (a tenant-wide one) goes in an
// Append of its own.
//
// Past cfg.AckTimeout or ctx, Append returns an error wrapping
// ErrNotAcknowledged: some records may have been stored anyway (a caller
// that retries keeps their IDs). A record that can never be stored gives
// ErrBadRecord before anything is published.
func (l *Log) Append(ctx context.Context, recs ...Record) error {
	_, err := l.AppendSeq(ctx, recs...)
	return err
}

// AppendSeq is Append that also returns the stream sequence of each record
// (seqs[i] for recs[i]; a record the stream had already stored, a retry
// within the de-duplication window, has its first sequence): the consent
// store uses them to apply the log in its order (consent/replicate.go).
func (l *Log) AppendSeq(ctx context.Context, recs ...Record) ([]uint64, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	start := time.Now()
	index := make(map[*nats.Msg]int, len(recs))
	gens, err := l.generations(recs, index)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.c.cfg.AckTimeout)
	defer cancel()
	seqs := make([]uint64, len(recs))
	for _, msgs := range gens {
		if n, cause := l.c.publishAll(ctx, l.c.cfg.Stream, msgs, func(m *nats.Msg, seq uint64) { seqs[index[m]] = seq }); n > 0 {
			err = l.notAcked(ctx, n, cause)
			break
		}
	}
	l.c.metrics.appendDone(len(recs), time.Since(start), err)
	if err != nil {
		return nil, err
	}
	return seqs, nil
}

// generations builds the records' messages and splits them so that no two
// records with the same tenant and key are in one generation: the k-th
// record of a key goes to generation k. Most batches are one generation.
// index maps each message to its record's index.
func (l *Log) generations(recs []Record, index map[*nats.Msg]int) ([][]*nats.Msg, error) {
	gens := [][]*nats.Msg{make([]*nats.Msg, 0, len(recs))}
	var seen map[string]int // only built when a batch has two records
	for i := range recs {
		m, err := l.message(&recs[i])
		if err != nil {
			return nil, err
		}
		index[m] = i
		g := 0
		if len(recs) > 1 {
			if seen == nil {
				seen = make(map[string]int, len(recs))
			}
			k := recs[i].Tenant + "\x00" + string(recs[i].Key)
			g = seen[k]
			seen[k] = g + 1
		}
		if g == len(gens) {
			gens = append(gens, nil)
		}
		gens[g] = append(gens[g], m)
	}
	return gens, nil
}

// publishAll publishes msgs to stream until all are acknowledged or ctx
// ends, telling acked (if not nil) each one's stream sequence, then
// returns how many were not acknowledged (0: all were) and the last error
// seen. A message whose acknowledgement failed is published again as it
// was (same Nats-Msg-Id), after a short back-off.
func (c *Conn) publishAll(ctx context.Context, stream string, msgs []*nats.Msg, acked func(m *nats.Msg, seq uint64)) (int, error) {
	expect := jetstream.WithExpectStream(stream)
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var lastErr error
	for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, 250*time.Millisecond) {
		var failed []*nats.Msg
		futures = futures[:0]
		for i, m := range msgs {
			if c.nc.IsClosed() {
				return len(msgs), errClosed
			}
			f, err := c.js.PublishMsgAsync(m, expect)
			if err != nil {
				// The window stayed full for the stall wait, or the
				// connection is down: retry the rest after the acks.
				lastErr = err
				failed = append(failed, msgs[i:]...)
				break
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case ack := <-f.Ok():
				if acked != nil {
					acked(f.Msg(), ack.Sequence)
				}
			case err := <-f.Err():
				lastErr = err
				failed = append(failed, f.Msg())
			case <-ctx.Done():
				return len(msgs), lastErr
			}
		}
		if len(failed) == 0 {
			return 0, nil
		}
		msgs = failed
		select {
		case <-ctx.Done():
			return len(msgs), lastErr
		case <-time.After(backoff):
		}
	}
}

func (l *Log) notAcked(ctx context.Context, n int, lastErr error) error {
	cause := lastErr
	if cause == nil {
		cause = ctx.Err()
	}
	return fmt.Errorf("%w: %d record(s) without acknowledgement after %v (stream %s): %v",
		ErrNotAcknowledged, n, l.c.cfg.AckTimeout, l.c.cfg.Stream, cause)
}

// message builds a record's message; it does not keep rec.
func (l *Log) message(rec *Record) (*nats.Msg, error) {
	if !nameRE.MatchString(rec.Tenant) {
		return nil, fmt.Errorf("%w: tenant %q is not a subject token (1-64 letters, digits, '-' or '_')", ErrBadRecord, rec.Tenant)
	}
	if len(rec.Data) > maxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes of data, at most %d", ErrBadRecord, len(rec.Data), maxRecordSize)
	}
	id := rec.ID
	if id == "" {
		id = nuid.Next()
	}
	return &nats.Msg{
		Subject: Subject(l.c.cfg, rec.Tenant, rec.Key),
		Data:    rec.Data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{id}},
	}, nil
}

// Subject is the subject of a record of tenant with key under cfg:
// optgate.consent.<tenant>.<shard>, where shard is a keyed hash
// (HMAC-SHA-256 with cfg.SubjectKey) of tenant and key modulo cfg.Shards,
// in hex. A phone number is never in a subject; few subjects keep the
// servers' memory small (about 250 B per subject per server).
func Subject(cfg *Config, tenant string, key []byte) string {
	h := hmac.New(sha256.New, []byte(cfg.SubjectKey))
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write(key)
	var sum [sha256.Size]byte
	shard := binary.BigEndian.Uint64(h.Sum(sum[:0])) % uint64(cfg.Shards)
	return subjectPrefix + tenant + "." + strconv.FormatUint(shard, 16)
}
