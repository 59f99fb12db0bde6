package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Magic starts every archive.
const Magic = "OPTGATE-BACKUP 1\n"

// FormatVersion is the archive format Write produces and Read accepts.
const FormatVersion = 1

const (
	frameHeader = 'H'
	frameStart  = 'S'
	frameData   = 'D'
	frameEnd    = 'E'
	frameIndex  = 'Z'

	maxFrame  = 4 << 20   // largest payload Read accepts
	dataChunk = 256 << 10 // payload size of the 'D' frames Write produces
)

// Source is a store to back up: its name (the folder under store.dir) and
// its open database.
type Source struct {
	Name string
	DB   *badger.DB
}

// Options shape an archive.
type Options struct {
	// Since maps a store name to the Until of the parent archive's section;
	// stores not named are copied in full.
	Since map[string]uint64
	// Parent is the SHA256 of the archive this one follows ("" for a full
	// backup). Set it together with Since.
	Parent string
	// Version is the optgate version recorded in the header.
	Version string
	// Now is the creation time (time.Now when zero).
	Now time.Time
}

// Header is the first frame of an archive.
type Header struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	Kind    string    `json:"kind"` // "full" or "incremental"
	Parent  string    `json:"parent,omitempty"`
	Version string    `json:"version,omitempty"`
	Stores  []string  `json:"stores"`
}

// StoreStart opens a store's section.
type StoreStart struct {
	Store string `json:"store"`
	Since uint64 `json:"since"`
}

// StoreInfo closes a store's section: it holds every entry version v with
// Since < v <= Until, in Bytes bytes of Badger backup stream whose SHA-256
// is SHA256.
type StoreInfo struct {
	Store  string `json:"store"`
	Since  uint64 `json:"since"`
	Until  uint64 `json:"until"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Index is the trailer of an archive. SHA256 covers every byte before the
// trailer frame and identifies the archive (an incremental archive's
// Header.Parent).
type Index struct {
	Header
	Sections []StoreInfo `json:"sections"`
	SHA256   string      `json:"sha256"`
}

// Section returns the index entry of the named store.
func (x *Index) Section(store string) (StoreInfo, bool) {
	for _, s := range x.Sections {
		if s.Store == store {
			return s, true
		}
	}
	return StoreInfo{}, false
}

// frameWriter writes frames and hashes every byte it writes.
type frameWriter struct {
	w   io.Writer
	sum hash.Hash
	hdr [5]byte
}

func (f *frameWriter) write(typ byte, p []byte) error {
	f.hdr[0] = typ
	binary.BigEndian.PutUint32(f.hdr[1:], uint32(len(p)))
	f.sum.Write(f.hdr[:])
	f.sum.Write(p)
	if _, err := f.w.Write(f.hdr[:]); err != nil {
		return err
	}
	_, err := f.w.Write(p)
	return err
}

func (f *frameWriter) writeJSON(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return f.write(typ, b)
}

// sectionWriter cuts a store's backup stream into 'D' frames.
type sectionWriter struct {
	f   *frameWriter
	buf []byte
	n   int64
	sum hash.Hash
}

func (s *sectionWriter) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	s.sum.Write(p)
	total := len(p)
	for len(p) > 0 {
		k := min(len(p), dataChunk-len(s.buf))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
		if len(s.buf) == dataChunk {
			if err := s.flush(); err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}

func (s *sectionWriter) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	err := s.f.write(frameData, s.buf)
	s.buf = s.buf[:0]
	return err
}

// Write streams an archive of srcs to w, each store from one read snapshot
// (see the package doc), and returns its index. The databases stay open and
// writable meanwhile. An error leaves w holding an archive without its
// trailer, which Read refuses.
func Write(w io.Writer, srcs []Source, opt Options) (*Index, error) {
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	h := Header{Format: FormatVersion, Created: opt.Now.UTC(), Kind: "full", Parent: opt.Parent, Version: opt.Version}
	if opt.Parent != "" {
		h.Kind = "incremental"
	}
	for _, s := range srcs {
		h.Stores = append(h.Stores, s.Name)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	f := &frameWriter{w: bw, sum: sha256.New()}
	if _, err := io.WriteString(bw, Magic); err != nil {
		return nil, err
	}
	f.sum.Write([]byte(Magic))
	if err := f.writeJSON(frameHeader, h); err != nil {
		return nil, err
	}
	idx := &Index{Header: h}
	sw := &sectionWriter{f: f, buf: make([]byte, 0, dataChunk)}
	for _, s := range srcs {
		since := opt.Since[s.Name]
		if err := f.writeJSON(frameStart, StoreStart{Store: s.Name, Since: since}); err != nil {
			return nil, err
		}
		sw.n, sw.sum = 0, sha256.New()
		until, err := snapshot(s.DB, sw, since)
		if err == nil {
			err = sw.flush()
		}
		if err != nil {
			return nil, fmt.Errorf("backup of store %s: %w", s.Name, err)
		}
		info := StoreInfo{Store: s.Name, Since: since, Until: max(until, since), Bytes: sw.n, SHA256: hex.EncodeToString(sw.sum.Sum(nil))}
		if err := f.writeJSON(frameEnd, info); err != nil {
			return nil, err
		}
		idx.Sections = append(idx.Sections, info)
	}
	idx.SHA256 = hex.EncodeToString(f.sum.Sum(nil))
	if err := f.writeJSON(frameIndex, idx); err != nil {
		return nil, err
	}
	return idx, bw.Flush()
}

// snapshot writes, in Badger's backup stream format, every entry version
// of db above since, read in one transaction, and returns the highest
// version written (0 when none).
func snapshot(db *badger.DB, w io.Writer, since uint64) (uint64, error) {
	st := db.NewStream()
	st.NumGo = 1 // one producer: one read transaction, one snapshot
	st.LogPrefix = "optgate.backup"
	st.SinceTs = since // exclusive: versions above since
	return st.Backup(w, since)
}

// Errors Read reports.
var (
	ErrNotArchive = errors.New("backup: not an optgate backup archive")
	ErrTruncated  = errors.New("backup: archive is truncated (no index trailer): the backup did not complete")
	ErrChecksum   = errors.New("backup: checksum mismatch: the archive is corrupted")
)

// frameReader reads frames and hashes every byte it reads.
type frameReader struct {
	r   *bufio.Reader
	sum hash.Hash
	buf []byte
	off int64
}

func (f *frameReader) next() (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(f.r, hdr[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, ErrTruncated
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("%w: frame at byte %d claims %d bytes (at most %d)", ErrChecksum, f.off, n, maxFrame)
	}
	if cap(f.buf) < int(n) {
		f.buf = make([]byte, n)
	}
	p := f.buf[:n]
	if _, err := io.ReadFull(f.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, ErrTruncated
		}
		return 0, nil, err
	}
	if hdr[0] != frameIndex {
		f.sum.Write(hdr[:])
		f.sum.Write(p)
	}
	f.off += 5 + int64(n)
	return hdr[0], p, nil
}

// sectionReader yields the data frames of one section.
type sectionReader struct {
	f    *frameReader
	cur  []byte
	sum  hash.Hash
	n    int64
	end  []byte // payload of the 'E' frame once reached
	err  error
	done bool
}

func (s *sectionReader) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if s.done {
			return 0, io.EOF
		}
		if s.err != nil {
			return 0, s.err
		}
		typ, b, err := s.f.next()
		switch {
		case err != nil:
			s.err = err
		case typ == frameData:
			s.cur = b
			s.sum.Write(b)
			s.n += int64(len(b))
		case typ == frameEnd:
			s.end = append([]byte(nil), b...)
			s.done = true
		default:
			s.err = fmt.Errorf("%w: frame %q inside a store section", ErrChecksum, typ)
		}
	}
	k := copy(p, s.cur)
	s.cur = s.cur[k:]
	return k, nil
}

// Read reads an archive, calling load (when not nil) with each store's
// Badger backup stream as it comes, and checks every section's and the
// whole archive's SHA-256. load may stop reading early; Read skips the
// rest. Read returns the index only when the archive is complete and every
// checksum matches; a load error is returned as it is.
func Read(r io.Reader, load func(store string, since uint64, data io.Reader) error) (*Index, error) {
	f := &frameReader{r: bufio.NewReaderSize(r, 64<<10), sum: sha256.New()}
	m := make([]byte, len(Magic))
	if _, err := io.ReadFull(f.r, m); err != nil || string(m) != Magic {
		return nil, ErrNotArchive
	}
	f.sum.Write(m)
	f.off = int64(len(m))
	typ, b, err := f.next()
	if err != nil {
		return nil, err
	}
	var h Header
	if typ != frameHeader || json.Unmarshal(b, &h) != nil {
		return nil, fmt.Errorf("%w: no header frame", ErrNotArchive)
	}
	if h.Format != FormatVersion {
		return nil, fmt.Errorf("archive format %d: this optgate reads format %d", h.Format, FormatVersion)
	}
	var sections []StoreInfo
	for {
		typ, b, err := f.next()
		if err != nil {
			return nil, err
		}
		switch typ {
		case frameStart:
			var st StoreStart
			if err := json.Unmarshal(b, &st); err != nil {
				return nil, fmt.Errorf("%w: store header: %v", ErrChecksum, err)
			}
			sr := &sectionReader{f: f, sum: sha256.New()}
			if load != nil {
				if err := load(st.Store, st.Since, sr); err != nil {
					if sr.err != nil { // the archive's fault, not the loader's
						return nil, fmt.Errorf("store %s: %w", st.Store, sr.err)
					}
					return nil, fmt.Errorf("store %s: %w", st.Store, err)
				}
			}
			if _, err := io.Copy(io.Discard, sr); err != nil {
				return nil, fmt.Errorf("store %s: %w", st.Store, err)
			}
			var info StoreInfo
			if err := json.Unmarshal(sr.end, &info); err != nil {
				return nil, fmt.Errorf("%w: store %s trailer: %v", ErrChecksum, st.Store, err)
			}
			if info.Store != st.Store || info.Since != st.Since || info.Bytes != sr.n || info.SHA256 != hex.EncodeToString(sr.sum.Sum(nil)) {
				return nil, fmt.Errorf("%w: store %s section", ErrChecksum, st.Store)
			}
			sections = append(sections, info)
		case frameIndex:
			var idx Index
			if err := json.Unmarshal(b, &idx); err != nil {
				return nil, fmt.Errorf("%w: index: %v", ErrChecksum, err)
			}
			// Re-encoding must give the same bytes: JSON field names match
			// case-insensitively, so a flipped case would otherwise pass.
			if again, err := json.Marshal(&idx); err != nil || !bytes.Equal(again, b) {
				return nil, fmt.Errorf("%w: index trailer", ErrChecksum)
			}
			if idx.SHA256 != hex.EncodeToString(f.sum.Sum(nil)) {
				return nil, fmt.Errorf("%w: archive checksum", ErrChecksum)
			}
			if len(idx.Sections) != len(sections) {
				return nil, fmt.Errorf("%w: index lists %d stores, archive holds %d", ErrChecksum, len(idx.Sections), len(sections))
			}
			for i := range sections {
				if idx.Sections[i] != sections[i] {
					return nil, fmt.Errorf("%w: index entry of store %s", ErrChecksum, sections[i].Store)
				}
			}
			if x := idx.Header; x.Format != h.Format || !x.Created.Equal(h.Created) || x.Kind != h.Kind || x.Parent != h.Parent ||
				x.Version != h.Version || !slices.Equal(x.Stores, h.Stores) {
				return nil, fmt.Errorf("%w: index header differs from the archive's", ErrChecksum)
			}
			if _, err := f.r.ReadByte(); err != io.EOF {
				return nil, fmt.Errorf("%w: bytes after the index trailer", ErrChecksum)
			}
			return &idx, nil
		default:
			return nil, fmt.Errorf("%w: unexpected frame %q at byte %d", ErrChecksum, typ, f.off)
		}
	}
}
