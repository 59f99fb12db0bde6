package receipt

import (
	"encoding/binary"
	"strconv"
)

// appendStoreKey appends the store's key of the mapping of canon, an id
// of SMSC smsc in dlr.CanonicalKey form: "rc/" smsc NUL canon.
func appendStoreKey(dst []byte, smsc, canon string) []byte {
	dst = append(dst, "rc/"...)
	dst = append(dst, smsc...)
	dst = append(dst, 0)
	return append(dst, canon...)
}

// receiptFormat is the first byte of a stored mapping.
const receiptFormat = 1

// appendTarget appends the stored form of a mapping: receiptFormat, our
// id (uvarint), origin, part, parts, then the tenant's id, the account's
// system_id, from and to, each as a uvarint length and its bytes.
// Tenants and accounts are stored by name, not by index, so a mapping
// survives a restart with a reordered configuration.
func appendTarget(dst []byte, p packedTarget, names Names) []byte {
	dst = append(dst, receiptFormat)
	dst = binary.AppendUvarint(dst, p.msgID)
	dst = append(dst, byte(p.origin), p.part, p.parts)
	str := func(v string) {
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	tenant, account := names.Names(p.tenant, p.account)
	str(tenant)
	str(account)
	dst = binary.AppendUvarint(dst, uint64(p.fromLen))
	dst = append(dst, p.from[:p.fromLen]...)
	dst = binary.AppendUvarint(dst, uint64(p.toLen))
	return append(dst, p.to[:p.toLen]...)
}

// decodeTarget reads appendTarget's form; ok is false for a malformed
// value or one whose tenant or account is unknown now.
func decodeTarget(v []byte, names Names) (t Target, ok bool) {
	if len(v) < 1 || v[0] != receiptFormat {
		return t, false
	}
	v = v[1:]
	id, n := binary.Uvarint(v)
	if n <= 0 || len(v) < n+3 {
		return t, false
	}
	v = v[n:]
	t.MsgID = strconv.FormatUint(id, 16)
	t.Origin, t.Part, t.Parts = v[0], int(v[1]), int(v[2])
	v = v[3:]
	var fields [4]string
	for i := range fields {
		l, n := binary.Uvarint(v)
		if n <= 0 || uint64(len(v)-n) < l {
			return t, false
		}
		fields[i] = string(v[n : n+int(l)])
		v = v[n+int(l):]
	}
	t.From, t.To = fields[2], fields[3]
	t.Tenant, t.Account, ok = names.Resolve(t.Origin, fields[0], fields[1])
	return t, ok
}
