package consent

import "github.com/dgraph-io/badger/v4"

// BadgerDB returns the store's database for online backups
// (backup.Write reads it in one snapshot). Callers must not write to it:
// every write goes through the Store, which keeps its memory index in step.
func (s *Store) BadgerDB() *badger.DB { return s.db }
