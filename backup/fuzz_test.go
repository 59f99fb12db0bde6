package backup

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"
)

// FuzzRead: any bytes give an index or an error, never a panic, and a
// returned index means every checksum held.
func FuzzRead(f *testing.F) {
	db := openDB(f, filepath.Join(f.TempDir(), "consent"))
	put(f, db, "optout/1", "stop")
	put(f, db, "optout/2", "stop")
	var buf bytes.Buffer
	idx, err := Write(&buf, []Source{{"consent", db}}, Options{})
	db.Close()
	if err != nil {
		f.Fatal(err)
	}
	good := buf.Bytes()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(Magic))
	f.Add([]byte(Magic + "H\x00\x00\x00\x02{}"))
	f.Add([]byte(Magic + "H\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Read(bytes.NewReader(b), func(store string, since uint64, data io.Reader) error {
			_, err := io.Copy(io.Discard, data)
			return err
		})
		if err == nil {
			if got.SHA256 == "" || (bytes.Equal(b, good) && got.SHA256 != idx.SHA256) {
				t.Fatalf("accepted with index %+v", got)
			}
			if !bytes.Equal(b, good) && got.SHA256 == idx.SHA256 {
				t.Fatalf("a changed archive kept the checksum")
			}
		} else if errors.Is(err, io.EOF) {
			t.Fatalf("bare EOF instead of a reason: %v", err)
		}
	})
}
