package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// HeadFile, in a data folder (store.dir), names the last archive taken of
// it or restored into it: the only archive an incremental backup of that
// folder may follow. Versions are numbers local to a store's history: after
// a restore from an older archive, or on a fresh data folder, new commits
// reuse version numbers that a newer archive already covers, and an
// incremental backup "since" that archive would silently miss them.
const HeadFile = "backup-head"

// ErrNotHead refuses an incremental backup whose parent is not the data
// folder's last archive.
var ErrNotHead = errors.New("backup: incremental backup refused")

// CheckParent returns nil when parent is the archive the data folder's
// history continues from (see HeadFile), else an ErrNotHead error saying
// why and that a full backup is needed.
func CheckParent(dataDir, parent string) error {
	b, err := os.ReadFile(filepath.Join(dataDir, HeadFile))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s records no earlier backup of this data folder (new, or restored by an older optgate): take a full backup", ErrNotHead, dataDir)
	}
	if err != nil {
		return err
	}
	head := strings.TrimSpace(string(b))
	if head != parent {
		return fmt.Errorf("%w: the last backup of %s (or the archive it was restored from) is sha256 %s, not the parent %s: take a full backup", ErrNotHead, dataDir, short(head), short(parent))
	}
	return nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// WriteHead records sha as the data folder's last archive (written to a
// temporary file, synced and renamed into place).
func WriteHead(dataDir, sha string) error {
	tmp := filepath.Join(dataDir, "."+HeadFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(sha + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dataDir, HeadFile))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dataDir)
}
