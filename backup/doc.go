// Package backup writes, verifies and restores optgate backup archives:
// online copies of the Badger stores a gateway opens (the consent store and
// the gateway store, which also holds the WhatsApp spool and window), taken
// while the gateway serves.
//
// # Consistency
//
// Each store is copied from ONE Badger read snapshot (one read transaction:
// Write streams with a single producer, so every key range is read at the
// same timestamp; Badger's DB.Backup reads each range in its own
// transaction, at different timestamps). The copy of a store therefore holds
// exactly the commits that finished before its snapshot was taken, and no
// part of a later one.
//
// The stores are copied one after the other, so the archive is consistent
// per store, not at one instant across stores. What matters is the consent
// store, which is copied first: an opt-out is acknowledged (deliver_sm_resp
// ESME_ROK, API "stored":true) only after its synced commit returned, so
// every opt-out acknowledged before a backup started is in that backup. The
// gateway store (queues, receipt mappings, WhatsApp spool) is copied a moment
// later; a restored gateway screens every queued message against the consent
// store again before sending it, so a message queued after the consent
// snapshot cannot reach someone whose opt-out the snapshot holds.
//
// # Incremental backups
//
// A store's section records Since and Until: it holds every entry version v
// with Since < v <= Until. A full backup has Since 0; an incremental backup
// takes Since from the Until of the archive it follows (its parent) and names
// that parent's checksum, so Restore can refuse a broken chain. (Badger's
// iterator treats SinceTs as exclusive, so the "pass the returned version
// plus one" advice of DB.Backup would skip the commit right after a backup;
// Write passes the returned version itself.)
//
// Versions are numbers local to a store's history. A data folder restored
// from an older archive, or started afresh, reuses numbers a newer archive
// already covers, and an incremental backup since that archive would miss
// its new commits. So the data folder records its last archive (HeadFile,
// written by every backup and by Restore), and an incremental backup must
// name that archive as its parent (CheckParent); otherwise a full backup is
// needed.
//
// # Format
//
// An archive is the magic line "OPTGATE-BACKUP 1\n" followed by frames: one
// type byte, a big-endian uint32 payload length (at most 4 MiB) and the
// payload. 'H' (JSON Header) comes first; then per store 'S' (JSON
// StoreStart), any number of 'D' (Badger backup stream bytes) and 'E' (JSON
// StoreInfo with the section's byte count and SHA-256); the last frame is 'Z'
// (JSON Index: the header, every store's StoreInfo and the SHA-256 of every
// archive byte before the 'Z' frame). The index is a trailer because the
// archive is streamed while it is taken; a copy cut short has no 'Z' frame
// and is refused.
package backup
