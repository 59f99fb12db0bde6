package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockFileName is the file in store.dir that one optgate holds an
// exclusive flock on while it uses the directory; it contains the pid.
const lockFileName = "optgate.lock"

// dirLock is a held data-directory lock.
type dirLock struct{ f *os.File }

// lockDataDir creates dir if needed and takes its lock. When another
// process holds it (typically an instance that is still exiting after a
// crash or a kill, whose locks the kernel drops only once the process is
// gone), it logs once and retries until wait has passed; then it fails
// with an error naming the directory and, when known, the holder's pid.
func lockDataDir(dir string, wait time.Duration, log *slog.Logger) (*dirLock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	deadline := time.Now().Add(wait)
	logged := false
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("data directory %s: lock %s: %w", dir, path, err)
		}
		if time.Now().After(deadline) {
			holder := holderOf(f)
			f.Close()
			return nil, fmt.Errorf("data directory %s is %w%s (waited %s, store.lock_wait); stop that optgate or give this one another store.dir",
				dir, errDirInUse, holder, wait)
		}
		if !logged {
			log.Warn("data directory in use, waiting for it", "dir", dir, "holder", strings.TrimPrefix(holderOf(f), ": "), "wait", wait.String())
			logged = true
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if logged {
		log.Info("data directory lock taken", "dir", dir)
	}
	return &dirLock{f: f}, nil
}

// holderOf names the process holding the lock on f: the pid that
// /proc/locks lists for the file's inode, else the pid written in the file.
func holderOf(f *os.File) string {
	if pid := flockHolder(f); pid > 0 {
		return describePid(pid)
	}
	b := make([]byte, 16)
	n, _ := f.ReadAt(b, 0)
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n]))); err == nil && pid > 0 {
		return describePid(pid)
	}
	return ""
}

func describePid(pid int) string {
	s := fmt.Sprintf(": held by pid %d", pid)
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
		s += " (" + strings.TrimSpace(string(comm)) + ")"
	}
	return s
}

// flockHolder reads /proc/locks (Linux) for a FLOCK on f's inode; 0 when
// unknown.
func flockHolder(f *os.File) int {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0
	}
	locks, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer locks.Close()
	ino := ":" + strconv.FormatUint(uint64(st.Ino), 10)
	sc := bufio.NewScanner(locks)
	for sc.Scan() {
		// 1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[1] != "FLOCK" || !strings.HasSuffix(fields[5], ino) {
			continue
		}
		if pid, err := strconv.Atoi(fields[4]); err == nil {
			return pid
		}
	}
	return 0
}

// release lets the directory go.
func (l *dirLock) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the only descriptor drops the flock
		l.f = nil
	}
}
