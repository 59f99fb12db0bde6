package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/smpp/coding"
)

// Parts of a concatenated MO are acknowledged to the SMSC only once they
// are stored: a part that is not the last of its set is written to the
// gateway store (synced, like every write there) before its deliver_sm_resp,
// and kept for as long as the reassembler waits for the rest. A crash in
// the middle of a set loses nothing the SMSC was told is received: at start
// the stored parts go back into the reassembler, and the set completes
// when the SMSC delivers the parts it was not told about. The part that
// completes a set is not stored: the reassembled message goes through the
// consent engine and is answered like any MO, and only once that answer
// is ESME_ROK are the set's stored parts removed. When it is not (the
// store failed), the stored parts go back into the reassembler, so the
// SMSC's retry of the last part completes the set again.
//
// Keys: "mp/" set-key NUL width NUL ref NUL seq, where the set key is the
// reassembler's (source|destination) and width is 8 or 16 (an 8-bit and a
// 16-bit reference with the same number are different sets). Value:
// partFormat, total, seq, data_coding, then the part's octets.
const (
	partPrefix = "mp/"
	partFormat = 1
)

// part is one stored part of a concatenated MO.
type part struct {
	set   string // the reassembler's key
	ref   uint16
	ref8  bool
	total uint8
	seq   uint8
	dc    coding.DataCoding
	data  []byte
}

func partSetPrefix(set string, ref uint16, ref8 bool) []byte {
	w := "16"
	if ref8 {
		w = "8"
	}
	k := make([]byte, 0, len(partPrefix)+len(set)+12)
	k = append(k, partPrefix...)
	k = append(k, set...)
	k = append(k, 0)
	k = append(k, w...)
	k = append(k, 0)
	k = strconv.AppendUint(k, uint64(ref), 10)
	return append(k, 0)
}

func (p *part) key() []byte {
	return strconv.AppendUint(partSetPrefix(p.set, p.ref, p.ref8), uint64(p.seq), 10)
}

func (p *part) value() []byte {
	v := make([]byte, 0, 4+len(p.data))
	v = append(v, partFormat, p.total, p.seq, byte(p.dc))
	return append(v, p.data...)
}

// decodePart reads a stored part back; ok is false for a malformed one.
func decodePart(key, val []byte) (p part, ok bool) {
	if len(val) < 4 || val[0] != partFormat || len(key) <= len(partPrefix) {
		return p, false
	}
	rest := string(key[len(partPrefix):])
	var fields [4]string
	for i := range 3 {
		j := indexNUL(rest)
		if j < 0 {
			return p, false
		}
		fields[i], rest = rest[:j], rest[j+1:]
	}
	fields[3] = rest
	ref, err := strconv.ParseUint(fields[2], 10, 16)
	if err != nil || (fields[1] != "8" && fields[1] != "16") {
		return p, false
	}
	p = part{set: fields[0], ref: uint16(ref), ref8: fields[1] == "8", total: val[1], seq: val[2],
		dc: coding.DataCoding(val[3]), data: append([]byte(nil), val[4:]...)}
	return p, p.total > 1 && p.seq >= 1 && p.seq <= p.total
}

func indexNUL(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// addPart gives a part to the reassembler. A part that does not complete
// its set is stored (synced) before addPart returns; err is then the
// store's error (or errBadPart), and the caller asks the SMSC to retry (the part is a
// duplicate in memory by then, which the reassembler tolerates). For the
// part that completes a set, msg is the set and done must be called with
// the SMSC's answer once the message was handled.
func (g *Gateway) addPart(p part) (msg *coding.Message, done func(ok bool), err error) {
	msg, complete, err := g.reassemble(p)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadPart, err)
	}
	if !complete {
		if err := g.commit.Write(groupcommit.Op{Key: p.key(), Value: p.value(), TTL: g.reasm.Timeout + time.Minute}); err != nil {
			return nil, nil, err
		}
		return nil, nil, nil
	}
	return msg, func(ok bool) { g.finishParts(p, ok) }, nil
}

func (g *Gateway) reassemble(p part) (*coding.Message, bool, error) {
	if p.ref8 {
		return g.reasm.AddUDH(p.set, coding.UDH{Concat: true, Ref: p.ref, Total: p.total, Seq: p.seq}, p.dc, p.data)
	}
	return g.reasm.Add(p.set, p.ref, p.total, p.seq, p.dc, p.data)
}

// finishParts removes the stored parts of a handled set (ok), or puts them
// back into the reassembler (not ok: the SMSC resends the last part).
func (g *Gateway) finishParts(last part, ok bool) {
	parts, keys, err := g.storedParts(partSetPrefix(last.set, last.ref, last.ref8))
	if err != nil {
		g.log.Warn("stored MO parts not read", "err", err)
		return
	}
	if ok {
		ops := make([]groupcommit.Op, len(keys))
		for i, k := range keys {
			ops[i] = groupcommit.Op{Key: k, Delete: true}
		}
		if len(ops) > 0 {
			if err := g.commit.WriteLazy(ops...); err != nil && !errors.Is(err, ErrStoreClosed) {
				g.log.Warn("stored MO parts not removed (they expire)", "err", err)
			}
		}
		return
	}
	for _, p := range parts {
		if p.seq == last.seq {
			continue
		}
		if _, complete, err := g.reassemble(p); err != nil || complete {
			// complete cannot happen without the last part; either way
			// the stored parts stay until they expire.
			g.log.Warn("stored MO part not restored", "err", err)
		}
	}
}

// storedParts reads the stored parts under prefix.
func (g *Gateway) storedParts(prefix []byte) (parts []part, keys [][]byte, err error) {
	err = g.db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.KeyCopy(nil)
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			keys = append(keys, k)
			if p, ok := decodePart(k, v); ok {
				parts = append(parts, p)
			}
		}
		return nil
	})
	return parts, keys, err
}

// restoreParts puts the parts a previous run stored back into the
// reassembler (at start). A set they complete by themselves cannot exist
// (the completing part is never stored); a malformed part is skipped and
// expires.
func (g *Gateway) restoreParts() (int, error) {
	parts, _, err := g.storedParts([]byte(partPrefix))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range parts {
		if _, complete, err := g.reassemble(p); err == nil && !complete {
			n++
		}
	}
	return n, nil
}
