package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/optgate/optgate/backup"
	"github.com/optgate/optgate/gateway"
)

const backupUsage = `usage:
  optgate backup [-config FILE | -url URL] -to FILE|DIR [-incremental | -since ARCHIVE]
      take a consistent backup of every store (consent, gateway) into one archive.
      With -url (or when the config's stores are held by a running gateway) the
      running gateway takes it (POST /v1/admin/backup, admin token from -token or
      $OPTGATE_ADMIN_TOKEN, else the config's http.admin_token); otherwise the
      stores are opened directly. -to DIR names the file optgate-TIME-KIND.ogbak.
      -incremental (with -to DIR) copies only what changed since the newest
      archive in DIR; -since ARCHIVE since that archive.
  optgate backup verify ARCHIVE|DIR...
      check checksums and order, and load the chain into a temporary folder.
      A DIR stands for its newest full archive and the incrementals after it.
`

const restoreUsage = `usage:
  optgate restore -from ARCHIVE|DIR [-from ARCHIVE ...] -to DATADIR
      rebuild a data folder (store.dir) from a full archive and the
      incremental ones after it, in the order given (a DIR stands for its
      newest full archive and the incrementals after it). DATADIR must be
      missing or empty. Start optgate on it with store.dir: DATADIR.
`

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func backupCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "verify" {
		return verifyCmd(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	cfgPath := fs.String("config", "", "configuration file (default "+defaultConfig+" when -url is not given)")
	base := fs.String("url", "", "a running gateway's HTTP API, e.g. http://127.0.0.1:8080")
	token := fs.String("token", os.Getenv("OPTGATE_ADMIN_TOKEN"), "admin token; default $OPTGATE_ADMIN_TOKEN")
	to := fs.String("to", "", "archive file, or folder to write it in")
	incremental := fs.Bool("incremental", false, "only what changed since the newest archive in -to DIR")
	since := fs.String("since", "", "only what changed since this archive")
	if code, ok := parseBackupFlags(fs, args, backupUsage, stdout, stderr); !ok {
		return code
	}
	if *to == "" || fs.NArg() > 0 || (*incremental && *since != "") {
		fmt.Fprint(stderr, backupUsage)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "optgate backup:", err)
		return 1
	}
	st, statErr := os.Stat(*to)
	toDir := statErr == nil && st.IsDir()
	if statErr == nil && !toDir {
		return fail(fmt.Errorf("%s exists: name a new file or a folder", *to))
	}
	var parent *backup.Index
	if *incremental {
		if !toDir {
			return fail(fmt.Errorf("-incremental needs -to to be a folder holding earlier archives"))
		}
		all, err := backup.Archives(*to)
		if err != nil {
			return fail(err)
		}
		if len(all) == 0 {
			return fail(fmt.Errorf("no archive in %s to continue from: take a full backup first", *to))
		}
		*since = all[len(all)-1]
	}
	if *since != "" {
		var err error
		if parent, err = backup.ReadFile(*since, nil); err != nil {
			return fail(fmt.Errorf("the archive to continue from: %w", err))
		}
	}
	outDir := filepath.Dir(*to)
	if toDir {
		outDir = *to
	}
	tmp, err := os.CreateTemp(outDir, ".optgate-backup-*.partial")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()

	var idx *backup.Index
	if *base == "" {
		path := *cfgPath
		if path == "" {
			path = defaultConfig
		}
		cfg, err := loadConfig(path)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", path, err))
		}
		idx, err = backupDirect(tmp, cfg, parent)
		if errors.Is(err, errStoresHeld) {
			// A running gateway holds the stores: it takes the backup.
			*base = "http://" + dialable(cfg.HTTP.Listen)
			if *token == "" {
				*token = cfg.HTTP.AdminToken
			}
			fmt.Fprintf(stderr, "optgate backup: the stores are held by a running gateway; asking it at %s\n", *base)
		} else if err != nil {
			return fail(err)
		}
	}
	if idx == nil {
		if *token == "" {
			return fail(errors.New("no admin token: pass -token or set OPTGATE_ADMIN_TOKEN"))
		}
		if idx, err = backupRemote(tmp, *base, *token, parent); err != nil {
			return fail(err)
		}
	}
	final := *to
	if toDir {
		final = filepath.Join(*to, backup.FileName(idx))
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fail(err)
	}
	if d, err := os.Open(filepath.Dir(final)); err == nil {
		d.Sync()
		d.Close()
	}
	fmt.Fprintf(stdout, "%s: %s backup, sha256 %s\n", final, idx.Kind, idx.SHA256)
	printSections(stdout, idx)
	return 0
}

func printSections(w io.Writer, idx *backup.Index) {
	for _, s := range idx.Sections {
		if s.Until == s.Since {
			fmt.Fprintf(w, "  store %-8s no change after version %d\n", s.Store, s.Since)
			continue
		}
		fmt.Fprintf(w, "  store %-8s versions %d..%d  %d bytes\n", s.Store, s.Since+1, s.Until, s.Bytes)
	}
}

// parseBackupFlags parses args; -h prints usage to stdout (exit 0), a bad flag
// gets flag's one-line error and a hint on stderr (exit 2).
func parseBackupFlags(fs *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (int, bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return 0, false
	}
	fmt.Fprintf(stderr, "run 'optgate %s -h' for usage\n", fs.Name())
	return 2, false
}

var errStoresHeld = errors.New("stores held by another process")

// backupDirect opens the stores of cfg itself (no gateway may be running on
// them) and writes the archive to w.
func backupDirect(w io.Writer, cfg *gateway.Config, parent *backup.Index) (*backup.Index, error) {
	var srcs []backup.Source
	defer func() {
		for _, s := range srcs {
			s.DB.Close()
		}
	}()
	for _, name := range gateway.BackupStores {
		dir := filepath.Join(cfg.Store.Dir, name)
		if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
			return nil, fmt.Errorf("no %s store in %s (store.dir): %w", name, cfg.Store.Dir, err)
		}
		// Read-only: a shared lock (a running gateway's exclusive one
		// refuses it) and no file written, so a backup run as another user
		// (root from cron, the service a DynamicUser) leaves the store's
		// ownership alone.
		db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithReadOnly(true))
		if err != nil && strings.Contains(err.Error(), "Log truncate required") {
			// After a crash the write-ahead log ends in a torn record
			// that only a writable open cuts off (as serve's next start
			// would); the files it writes get the folder's owner back.
			db, err = badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).WithNumVersionsToKeep(1))
			if err == nil {
				defer keepOwner(dir)
			}
		}
		if err != nil {
			if strings.Contains(err.Error(), "Cannot acquire directory lock") {
				return nil, errStoresHeld
			}
			return nil, fmt.Errorf("open %s: %w", dir, err)
		}
		srcs = append(srcs, backup.Source{Name: name, DB: db})
	}
	opt := backup.Options{Version: versionString()}
	if parent != nil {
		if err := backup.CheckParent(cfg.Store.Dir, parent.SHA256); err != nil {
			return nil, err
		}
		opt.Parent = parent.SHA256
		opt.Since = map[string]uint64{}
		for _, s := range parent.Sections {
			opt.Since[s.Store] = s.Until
		}
	}
	idx, err := backup.Write(w, srcs, opt)
	if err != nil {
		return nil, err
	}
	if err := backup.WriteHead(cfg.Store.Dir, idx.SHA256); err != nil {
		return nil, fmt.Errorf("recording the backup in %s: %w", cfg.Store.Dir, err)
	}
	return idx, nil
}

// keepOwner gives everything under dir the owner of dir, when run as
// root: files a writable open or a restore created belong to root
// otherwise, and the service's user could not write them.
func keepOwner(dir string) {
	st, err := os.Stat(dir)
	if err != nil || os.Geteuid() != 0 {
		return
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return
	}
	filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err == nil {
			os.Lchown(path, int(sys.Uid), int(sys.Gid))
		}
		return nil
	})
}

// backupRemote asks the gateway at base for the archive and writes it to
// w, checking it as it comes.
func backupRemote(w io.Writer, base, token string, parent *backup.Index) (*backup.Index, error) {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u := strings.TrimSuffix(base, "/") + "/v1/admin/backup?version=" + url.QueryEscape(versionString())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(gateway.MarshalBackupRequest(parent)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		ResponseHeaderTimeout: time.Minute}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w (is the gateway running there? pass -url)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s answered %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	// A gateway that stops sending for backupIdle is given up on.
	idle := time.AfterFunc(backupIdle, cancel)
	body := &idleReader{r: resp.Body, t: idle}
	idx, err := backup.Read(io.TeeReader(body, w), nil)
	idle.Stop()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("no data for %s: %w", backupIdle, err)
		}
		return nil, fmt.Errorf("the archive from %s: %w", base, err)
	}
	return idx, nil
}

// backupIdle is how long backupRemote waits for the next bytes.
const backupIdle = 2 * time.Minute

// idleReader pushes its timer back on every read that returns data.
type idleReader struct {
	r io.Reader
	t *time.Timer
}

func (i *idleReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if n > 0 {
		i.t.Reset(backupIdle)
	}
	return n, err
}

// dialable turns a listen address into one to dial (an unspecified host
// becomes 127.0.0.1).
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// chainArgs expands archive and folder arguments into the files of a
// chain, in order.
func chainArgs(args []string) ([]string, error) {
	var files []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		c, err := backup.LatestChain(a)
		if err != nil {
			return nil, err
		}
		files = append(files, c...)
	}
	return files, nil
}

func verifyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, backupUsage)
		return 2
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprint(stdout, backupUsage)
		return 0
	}
	files, err := chainArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, "optgate backup verify:", err)
		return 1
	}
	idxs, keys, err := backup.Verify(files, "")
	if err != nil {
		fmt.Fprintln(stderr, "optgate backup verify: FAILED:", err)
		return 1
	}
	for i, idx := range idxs {
		fmt.Fprintf(stdout, "%s: %s backup of %s, sha256 %s\n", files[i], idx.Kind, idx.Created.Format(time.RFC3339), idx.SHA256)
		printSections(stdout, idx)
	}
	fmt.Fprintf(stdout, "ok: %d archive(s) load; keys restored:", len(idxs))
	for _, name := range idxs[0].Stores {
		fmt.Fprintf(stdout, " %s %d", name, keys[name])
	}
	fmt.Fprintln(stdout)
	return 0
}

func restoreCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	var from stringList
	fs.Var(&from, "from", "archive or folder of archives (repeatable, in order)")
	to := fs.String("to", "", "data folder to create (store.dir); must be missing or empty")
	if code, ok := parseBackupFlags(fs, args, restoreUsage, stdout, stderr); !ok {
		return code
	}
	if len(from) == 0 || *to == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, restoreUsage)
		return 2
	}
	files, err := chainArgs(from)
	if err != nil {
		fmt.Fprintln(stderr, "optgate restore:", err)
		return 1
	}
	idxs, err := backup.Restore(*to, files)
	if err != nil {
		fmt.Fprintln(stderr, "optgate restore:", err)
		return 1
	}
	keepOwner(*to) // restoring into the service's existing state folder
	for i, idx := range idxs {
		fmt.Fprintf(stdout, "loaded %s (%s, %s)\n", files[i], idx.Kind, idx.Created.Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "restored into %s: start optgate with store.dir: %s\n", *to, *to)
	return 0
}
