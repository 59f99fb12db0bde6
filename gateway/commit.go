package gateway

import (
	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/internal/groupcommit"
)

// ErrStoreClosed is returned for writes after the gateway store closed.
var ErrStoreClosed = groupcommit.ErrClosed

// readKey reads key from db: fn, if not nil, sees its value (valid only
// during the call). A missing key is found == false, not an error.
func readKey(db *badger.DB, key []byte, fn func(v []byte)) (found bool, err error) {
	return groupcommit.Read(db, key, fn)
}
