package backup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Ext is the file name extension of archives written into a folder.
const Ext = ".ogbak"

// FileName is the name an archive created at the index's time gets in a
// backup folder; names sort in creation order.
func FileName(idx *Index) string {
	return "optgate-" + idx.Created.UTC().Format("20060102T150405.000Z") + "-" + idx.Kind + Ext
}

// ReadFile reads and checks the archive at path (see Read).
func ReadFile(path string, load func(store string, since uint64, data io.Reader) error) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	idx, err := Read(f, load)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return idx, nil
}

// Archives lists the archives in dir, oldest first.
func Archives(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasPrefix(e.Name(), "optgate-") && strings.HasSuffix(e.Name(), Ext) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// LatestChain returns the newest full archive in dir and the incremental
// archives written after it, in order: what Restore needs to rebuild the
// newest state the folder holds.
func LatestChain(dir string) ([]string, error) {
	all, err := Archives(dir)
	if err != nil {
		return nil, err
	}
	for i := len(all) - 1; i >= 0; i-- {
		if strings.HasSuffix(all[i], "-full"+Ext) {
			return all[i:], nil
		}
	}
	return nil, fmt.Errorf("%s: no full backup (optgate-*-full%s)", dir, Ext)
}

// CheckChain reads every archive (checking its checksums) and checks that
// they form a chain: the first is full, each next one is an incremental
// archive whose parent is the one before it and whose stores continue where
// the parent's ended. It returns the indexes in order.
func CheckChain(files []string) ([]*Index, error) {
	if len(files) == 0 {
		return nil, errors.New("no archive given")
	}
	idxs := make([]*Index, 0, len(files))
	for i, path := range files {
		idx, err := ReadFile(path, nil)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if idx.Kind != "full" || idx.Parent != "" {
				return nil, fmt.Errorf("%s: an incremental backup: a restore starts from a full one", path)
			}
		} else {
			prev := idxs[i-1]
			if idx.Parent != prev.SHA256 {
				return nil, fmt.Errorf("%s does not follow %s (its parent is another archive): give the archives in the order they were taken, with none missing", path, files[i-1])
			}
			if !slices.Equal(idx.Stores, prev.Stores) {
				return nil, fmt.Errorf("%s holds stores %v, %s holds %v", path, idx.Stores, files[i-1], prev.Stores)
			}
			for _, s := range idx.Sections {
				p, _ := prev.Section(s.Store)
				if s.Since != p.Until {
					return nil, fmt.Errorf("%s: store %s starts after version %d, its parent ended at %d", path, s.Store, s.Since, p.Until)
				}
			}
		}
		idxs = append(idxs, idx)
	}
	return idxs, nil
}

// Empty reports whether dir is missing or an empty folder.
func Empty(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return len(ents) == 0, nil
}

// openOptions are the Badger options stores are rebuilt with.
func openOptions(dir string) badger.Options {
	return badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).
		WithNumVersionsToKeep(1).WithMemTableSize(16 << 20).WithValueLogFileSize(64 << 20)
}

// Restore rebuilds a data folder (store.dir) from a chain of archives (a
// full one, then incremental ones in the order they were taken): it checks
// the chain and every checksum first, then loads each store in a staging
// folder inside dir and moves it into place once every archive loaded. dir
// must be missing or empty. It returns the archives' indexes.
func Restore(dir string, files []string) ([]*Index, error) {
	if ok, err := Empty(dir); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("%s is not empty: restore only into a new or empty folder (move the old data aside first)", dir)
	}
	idxs, err := CheckChain(files)
	if err != nil {
		return nil, err
	}
	staging := filepath.Join(dir, ".restoring")
	if err := os.MkdirAll(staging, 0o700); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(staging)
		}
	}()
	dbs := map[string]*badger.DB{}
	closeAll := func() error {
		var errs []error
		for name, db := range dbs {
			if err := db.Close(); err != nil {
				errs = append(errs, fmt.Errorf("store %s: %w", name, err))
			}
		}
		clear(dbs)
		return errors.Join(errs...)
	}
	defer closeAll()
	for _, name := range idxs[0].Stores {
		if !validStoreName(name) {
			return nil, fmt.Errorf("%s: bad store name %q", files[0], name)
		}
		db, err := badger.Open(openOptions(filepath.Join(staging, name)))
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", name, err)
		}
		dbs[name] = db
	}
	for _, path := range files {
		_, err := ReadFile(path, func(store string, _ uint64, data io.Reader) error {
			db := dbs[store]
			if db == nil {
				return fmt.Errorf("store %s is not in the full backup", store)
			}
			return db.Load(data, 256)
		})
		if err != nil {
			return nil, fmt.Errorf("loading: %w", err)
		}
	}
	if err := closeAll(); err != nil {
		return nil, err
	}
	for _, name := range idxs[0].Stores {
		if err := os.Rename(filepath.Join(staging, name), filepath.Join(dir, name)); err != nil {
			return nil, err
		}
	}
	ok = true
	if err := os.Remove(staging); err != nil {
		return nil, err
	}
	// The restored history continues from the last archive loaded.
	return idxs, WriteHead(dir, idxs[len(idxs)-1].SHA256)
}

func validStoreName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && !strings.HasPrefix(s, ".")
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Verify checks a chain of archives as Restore would (checksums, order,
// continuity) and loads it into a temporary folder under tmp, then opens
// every store and counts its keys. It returns the indexes and the key count
// of each store.
func Verify(files []string, tmp string) ([]*Index, map[string]int, error) {
	dir, err := os.MkdirTemp(tmp, "optgate-verify-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	idxs, err := Restore(filepath.Join(dir, "data"), files)
	if err != nil {
		return nil, nil, err
	}
	keys := map[string]int{}
	for _, name := range idxs[0].Stores {
		db, err := badger.Open(openOptions(filepath.Join(dir, "data", name)).WithReadOnly(true))
		if err != nil {
			return nil, nil, fmt.Errorf("restored store %s does not open: %w", name, err)
		}
		n := 0
		err = db.View(func(txn *badger.Txn) error {
			o := badger.DefaultIteratorOptions
			o.PrefetchValues = false
			it := txn.NewIterator(o)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			return nil
		})
		db.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("restored store %s: %w", name, err)
		}
		keys[name] = n
	}
	return idxs, keys, nil
}
