package gateway

import (
	"testing"
)

// The gateway store must sync every commit: an unsynced commit followed by
// db.Sync is not durable across a memtable rotation (see groupcommit.Committer.apply).
func TestGatewayStoreSyncsEveryWrite(t *testing.T) {
	env := newEnv(t)
	if !env.g.db.Opts().SyncWrites {
		t.Fatal("the gateway store is opened without SyncWrites: a write told stored can be lost in a crash")
	}
}
