package consent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"
)

// Key layout (all keys in one Badger keyspace; fields are separated by 0x00,
// which no field may contain; timestamps are big-endian Unix nanoseconds so
// that byte order is time order):
//
//	c 0 tenant 0 channel 0 recipient 0 scope          consent record (scope "" = tenant-wide, else the sender)
//	e 0 tenant 0 channel 0 recipient 0 ts8 seq8       evidence, append-only; reverse prefix scan = newest first
//	d 0 tenant 0 channel 0 sender 0 messageID         MO dedupe marker (Badger TTL)
//	a 0 due8 tenant 0 channel 0 recipient 0 scope     archive schedule, in due order
//	h 0 tenant 0 channel 0 recipient 0 id             held message
//	x 0 expires8 tenant 0 channel 0 recipient 0 id    held-message expiry index, in expiry order
//
// A Check needs the two consent records (sender scope and tenant scope) of
// one (tenant, channel, recipient); History is a reverse scan of one
// evidence prefix; Sweep scans the a and x prefixes from the start up to now.
const (
	pfxRecord   = 'c'
	pfxEvidence = 'e'
	pfxDedupe   = 'd'
	pfxArchive  = 'a'
	pfxHeld     = 'h'
	pfxExpiry   = 'x'
	pfxReply    = 'r'
)

// replyKey is a pending reply (see Reply).
func replyKey(id string) []byte { return append([]byte{pfxReply, 0}, id...) }

func appendFields(b []byte, fields ...string) []byte {
	for i, f := range fields {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, f...)
	}
	return b
}

func recordKey(tenant, ch, rcpt, scope string) []byte {
	b := make([]byte, 0, 2+len(tenant)+len(ch)+len(rcpt)+len(scope)+4)
	return appendFields(append(b, pfxRecord, 0), tenant, ch, rcpt, scope)
}

// recordPrefix covers every scope of one recipient on one channel.
func recordPrefix(tenant, ch, rcpt string) []byte {
	return append(appendFields([]byte{pfxRecord, 0}, tenant, ch, rcpt), 0)
}

func evidencePrefix(tenant, ch, rcpt string) []byte {
	return append(appendFields([]byte{pfxEvidence, 0}, tenant, ch, rcpt), 0)
}

func evidenceKey(tenant, ch, rcpt string, ts int64, seq uint64) []byte {
	b := evidencePrefix(tenant, ch, rcpt)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	return binary.BigEndian.AppendUint64(b, seq)
}

func dedupeKey(tenant, ch, sender, id string) []byte {
	return appendFields([]byte{pfxDedupe, 0}, tenant, ch, sender, id)
}

func archiveKey(due int64, tenant, ch, rcpt, scope string) []byte {
	b := binary.BigEndian.AppendUint64([]byte{pfxArchive, 0}, uint64(due))
	return appendFields(b, tenant, ch, rcpt, scope)
}

func heldPrefix(tenant, ch, rcpt string) []byte {
	return append(appendFields([]byte{pfxHeld, 0}, tenant, ch, rcpt), 0)
}

func heldKey(tenant, ch, rcpt, id string) []byte {
	return append(heldPrefix(tenant, ch, rcpt), id...)
}

func expiryKey(exp int64, tenant, ch, rcpt, id string) []byte {
	b := binary.BigEndian.AppendUint64([]byte{pfxExpiry, 0}, uint64(exp))
	return appendFields(b, tenant, ch, rcpt, id)
}

var errBadKey = errors.New("consent: malformed key")

// parseTimedKey splits an a or x key into its time and four fields.
func parseTimedKey(k []byte) (ts int64, f [4]string, err error) {
	if len(k) < 10 {
		return 0, f, errBadKey
	}
	ts = int64(binary.BigEndian.Uint64(k[2:10]))
	parts := bytes.SplitN(k[10:], []byte{0}, 4)
	if len(parts) != 4 {
		return 0, f, errBadKey
	}
	for i, p := range parts {
		f[i] = string(p)
	}
	return ts, f, nil
}

// parseRecordKey splits a c key.
func parseRecordKey(k []byte) (tenant, ch, rcpt, scope string, err error) {
	if len(k) < 2 || k[0] != pfxRecord {
		return "", "", "", "", errBadKey
	}
	parts := bytes.SplitN(k[2:], []byte{0}, 4)
	if len(parts) != 4 {
		return "", "", "", "", errBadKey
	}
	return string(parts[0]), string(parts[1]), string(parts[2]), string(parts[3]), nil
}

// Record flags (stored, and mirrored in the memory index).
const (
	fAll        uint8 = 1 << iota // plain opt-out: blocks everything
	fAllFamily                    // set by the STOPALL family
	fMkt                          // marketing-only opt-out (keyword, operator, import)
	fMktWA                        // marketing-only opt-out set by WhatsApp
	fDisclaimed                   // disclaimer sent
)

// rec is the stored consent record.
type rec struct {
	state       State
	flags       uint8
	prompts     uint8
	lang        string
	updated     int64 // Unix ns
	optedOutAt  int64
	lastConfirm int64
	archiveDue  int64
}

func (r *rec) empty() bool { return r.state == StateNone && r.flags == 0 && r.prompts == 0 }

const recVersion = 1

func (r *rec) marshal() []byte {
	b := make([]byte, 0, 32+len(r.lang))
	b = append(b, recVersion, byte(r.state), r.flags, r.prompts, byte(len(r.lang)))
	b = append(b, r.lang...)
	for _, v := range [...]int64{r.updated, r.optedOutAt, r.lastConfirm, r.archiveDue} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

var errBadRecord = errors.New("consent: malformed record")

func (r *rec) unmarshal(b []byte) error {
	if len(b) < 5 || b[0] != recVersion {
		return errBadRecord
	}
	r.state, r.flags, r.prompts = State(b[1]), b[2], b[3]
	n := int(b[4])
	b = b[5:]
	if len(b) < n || r.state > StateOptedOut {
		return errBadRecord
	}
	r.lang, b = string(b[:n]), b[n:]
	for _, p := range [...]*int64{&r.updated, &r.optedOutAt, &r.lastConfirm, &r.archiveDue} {
		v, m := binary.Varint(b)
		if m <= 0 {
			return errBadRecord
		}
		*p, b = v, b[m:]
	}
	return nil
}

// packed is the memory-index form of a record: flags in the low 5 bits,
// state in bits 5–6.
func (r *rec) packed() uint8 { return r.flags&0x1f | uint8(r.state)<<5 }

func unpack(v uint8) (State, uint8) { return State(v >> 5 & 3), v & 0x1f }

func (r *rec) public() Record {
	t := func(ns int64) time.Time {
		if ns == 0 {
			return time.Time{}
		}
		return time.Unix(0, ns).UTC()
	}
	return Record{
		State: r.state, OptedOut: r.flags&fAll != 0, OptedOutAll: r.flags&fAllFamily != 0,
		Marketing: r.flags&fMkt != 0, MarketingWA: r.flags&fMktWA != 0, Disclaimed: r.flags&fDisclaimed != 0,
		Prompts: int(r.prompts), Lang: r.lang, Updated: t(r.updated), OptedOutAt: t(r.optedOutAt),
		LastConfirm: t(r.lastConfirm), ArchiveDue: t(r.archiveDue),
	}
}

// held message value: varint-prefixed sender, heldAt, expiresAt, payload.
func marshalHeld(h *HeldMessage) []byte {
	b := make([]byte, 0, 32+len(h.Sender)+len(h.Payload))
	b = binary.AppendUvarint(b, uint64(len(h.Sender)))
	b = append(b, h.Sender...)
	b = binary.AppendVarint(b, h.HeldAt.UnixNano())
	b = binary.AppendVarint(b, h.ExpiresAt.UnixNano())
	return append(b, h.Payload...)
}

func unmarshalHeld(b []byte, h *HeldMessage) error {
	n, m := binary.Uvarint(b)
	if m <= 0 || uint64(len(b)-m) < n {
		return errBadRecord
	}
	b = b[m:]
	h.Sender, b = string(b[:n]), b[n:]
	at, m := binary.Varint(b)
	if m <= 0 {
		return errBadRecord
	}
	b = b[m:]
	exp, m := binary.Varint(b)
	if m <= 0 {
		return errBadRecord
	}
	h.HeldAt, h.ExpiresAt = time.Unix(0, at).UTC(), time.Unix(0, exp).UTC()
	h.Payload = append([]byte(nil), b[m:]...)
	return nil
}
