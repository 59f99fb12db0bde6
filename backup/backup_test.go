package backup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(openOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func put(t testing.TB, db *badger.DB, k, v string) {
	t.Helper()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(k), []byte(v)) }); err != nil {
		t.Fatal(err)
	}
}

func del(t *testing.T, db *badger.DB, k string) {
	t.Helper()
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(k)) }); err != nil {
		t.Fatal(err)
	}
}

func dump(t *testing.T, db *badger.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().Key())] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t *testing.T, path string, srcs []Source, opt Options) *Index {
	t.Helper()
	var buf bytes.Buffer
	idx, err := Write(&buf, srcs, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return idx
}

func sinceOf(idx *Index) map[string]uint64 {
	m := map[string]uint64{}
	for _, s := range idx.Sections {
		m[s.Store] = s.Until
	}
	return m
}

// A full archive, then incremental ones (the first taken right after a
// single commit: Badger's SinceTs is exclusive, so the naive since=until+1
// would lose exactly that commit), restore to the same keys, deletions
// included.
func TestFullAndIncrementalRestore(t *testing.T) {
	dir := t.TempDir()
	a, b := openDB(t, filepath.Join(dir, "src", "consent")), openDB(t, filepath.Join(dir, "src", "gateway"))
	defer a.Close()
	defer b.Close()
	srcs := []Source{{"consent", a}, {"gateway", b}}
	for i := range 100 {
		put(t, a, fmt.Sprintf("optout/%03d", i), "stop")
	}
	put(t, b, "queue/1", "mt")
	put(t, b, "queue/2", "mt")
	full := writeFile(t, filepath.Join(dir, "1.ogbak"), srcs, Options{})
	if s, _ := full.Section("consent"); s.Since != 0 || s.Until == 0 {
		t.Fatalf("full section: %+v", s)
	}

	put(t, a, "optout/100", "stop") // the one commit right after the backup
	inc1 := writeFile(t, filepath.Join(dir, "2.ogbak"), srcs, Options{Since: sinceOf(full), Parent: full.SHA256})
	if s, _ := inc1.Section("gateway"); s.Bytes == 0 && s.Until != sinceOf(full)["gateway"] {
		t.Fatalf("empty incremental section moved its version: %+v", s)
	}
	del(t, b, "queue/1")
	put(t, a, "optout/050", "start")
	inc2 := writeFile(t, filepath.Join(dir, "3.ogbak"), srcs, Options{Since: sinceOf(inc1), Parent: inc1.SHA256})

	files := []string{filepath.Join(dir, "1.ogbak"), filepath.Join(dir, "2.ogbak"), filepath.Join(dir, "3.ogbak")}
	out := filepath.Join(dir, "restored")
	if _, err := Restore(out, files); err != nil {
		t.Fatal(err)
	}
	ra, rb := openDB(t, filepath.Join(out, "consent")), openDB(t, filepath.Join(out, "gateway"))
	gotA, gotB := dump(t, ra), dump(t, rb)
	ra.Close()
	rb.Close()
	wantA, wantB := dump(t, a), dump(t, b)
	if fmt.Sprint(gotA) != fmt.Sprint(wantA) || fmt.Sprint(gotB) != fmt.Sprint(wantB) {
		t.Fatalf("restored\n%v\n%v\nwant\n%v\n%v", gotA, gotB, wantA, wantB)
	}
	if gotA["optout/100"] != "stop" {
		t.Fatal("the commit right after the full backup is lost")
	}
	// The restored folder's history continues from the last archive loaded.
	if err := CheckParent(out, inc2.SHA256); err != nil {
		t.Fatal(err)
	}
	if err := CheckParent(out, inc1.SHA256); !errors.Is(err, ErrNotHead) {
		t.Fatalf("an incremental after an older archive: %v", err)
	}
	if err := CheckParent(t.TempDir(), full.SHA256); !errors.Is(err, ErrNotHead) {
		t.Fatalf("an incremental of a fresh folder: %v", err)
	}

	// Only the full one: the state at its snapshot.
	out2 := filepath.Join(dir, "restored2")
	if _, err := Restore(out2, files[:1]); err != nil {
		t.Fatal(err)
	}
	ra = openDB(t, filepath.Join(out2, "consent"))
	if got := dump(t, ra); len(got) != 100 || got["optout/050"] != "stop" {
		t.Fatalf("full only: %d keys, 050=%q", len(got), got["optout/050"])
	}
	ra.Close()

	// Into a non-empty folder: refused, nothing touched.
	if _, err := Restore(out, files); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a non-empty folder: %v", err)
	}
	// A chain with a gap or in the wrong order: refused.
	for _, bad := range [][]string{{files[0], files[2]}, {files[1], files[2]}, {files[0], files[2], files[1]}} {
		if _, err := CheckChain(bad); err == nil {
			t.Errorf("chain %v accepted", bad)
		}
	}
	if _, keys, err := Verify(files, dir); err != nil || keys["consent"] != 101 || keys["gateway"] != 1 {
		t.Fatalf("verify: %v %v", keys, err)
	}
}

// Every flipped byte and every cut is detected before anything loads.
func TestReadDetectsCorruption(t *testing.T) {
	dir := t.TempDir()
	a := openDB(t, filepath.Join(dir, "consent"))
	defer a.Close()
	for i := range 50 {
		put(t, a, fmt.Sprintf("k%d", i), strings.Repeat("v", i))
	}
	var buf bytes.Buffer
	if _, err := Write(&buf, []Source{{"consent", a}}, Options{}); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	if _, err := Read(bytes.NewReader(good), nil); err != nil {
		t.Fatal(err)
	}
	for i := len(Magic); i < len(good); i += max(1, len(good)/97) {
		bad := bytes.Clone(good)
		bad[i] ^= 0x20
		if _, err := Read(bytes.NewReader(bad), nil); err == nil {
			t.Fatalf("flipped byte %d of %d not detected", i, len(good))
		}
	}
	for _, n := range []int{0, 5, len(Magic) + 3, len(good) / 2, len(good) - 1} {
		_, err := Read(bytes.NewReader(good[:n]), nil)
		if err == nil {
			t.Fatalf("archive cut at %d accepted", n)
		}
		if n > len(Magic)+5 && !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d: %v, want ErrTruncated", n, err)
		}
	}
	if _, err := Read(bytes.NewReader(append(bytes.Clone(good), 'x')), nil); err == nil {
		t.Fatal("trailing bytes accepted")
	}
}
