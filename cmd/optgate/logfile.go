package main

import (
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/optgate/optgate/gateway"
)

// logFile is the log.file writer. Writes append to the file; Reopen
// switches to a fresh file at the same path, so that logrotate (or an
// operator) can rename the old one and send SIGHUP.
type logFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen opens the path again and closes the old file; if the path cannot
// be opened, logging goes on into the old file and the error is returned.
func (l *logFile) Reopen() error {
	f, err := openLog(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// logOutput returns where serve logs: log.file when set (lf not nil),
// else stderr.
func logOutput(cfg *gateway.Config, stderr io.Writer) (w io.Writer, lf *logFile, err error) {
	if cfg.Log.File == "" {
		return stderr, nil, nil
	}
	f, err := openLog(cfg.Log.File)
	if err != nil {
		return nil, nil, err
	}
	lf = &logFile{path: cfg.Log.File, f: f}
	return lf, lf, nil
}

// stopSignals catches SIGINT and SIGTERM (stop) and SIGHUP (reopen the
// log file); call it early, before a SIGHUP could end the process.
func stopSignals() chan os.Signal {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	return sig
}

// waitForStop blocks until SIGINT or SIGTERM and returns it; each SIGHUP
// meanwhile reopens lf (or is logged as having nothing to do when logs go
// to stderr).
func waitForStop(sig chan os.Signal, log *slog.Logger, lf *logFile) os.Signal {
	for s := range sig {
		if s != syscall.SIGHUP {
			return s
		}
		if lf == nil {
			log.Info("SIGHUP: logs go to stderr, nothing to reopen")
			continue
		}
		if err := lf.Reopen(); err != nil {
			log.Error("SIGHUP: cannot reopen the log file; logging on into the old one", "file", lf.path, "err", err)
			continue
		}
		log.Info("SIGHUP: log file reopened", "file", lf.path)
	}
	return nil
}
