package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a child process of the harness (optgate, bearerbox, smsbox).
// It runs in its own process group, is killed by the kernel if the
// harness dies (Pdeathsig), and Stop ends the whole group.
type Process struct {
	Name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // set before done is closed

	stopOnce sync.Once
}

// StartProcess starts bin with args in dir, with stdout and stderr going
// to logPath.
func StartProcess(name, bin string, args []string, dir, logPath string, env []string) (*Process, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = lf
	cmd.Stderr = lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("bench: cannot start %s (%s): %w", name, bin, err)
	}
	p := &Process{Name: name, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// LogTail returns the last n bytes of the process's log.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimSpace(string(b))
}

// LogPath returns where the process's output goes.
func (p *Process) LogPath() string { return p.log.Name() }

// Stop sends SIGTERM to the process group, waits up to grace, then sends
// SIGKILL and waits for the exit. It is safe to call more than once.
func (p *Process) Stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		select {
		case <-p.done:
		default:
			syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(grace):
			}
		}
		// Whatever is left in the group (and the leader if still there).
		syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	})
}

// FreePort returns a free TCP address on 127.0.0.1. Another process could
// take it before it is used; the children report that as a listen error.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: no free port on 127.0.0.1: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

// waitReady polls url until it answers 200, the process exits, or ctx
// ends.
func waitReady(ctx context.Context, p *Process, url string, header http.Header) error {
	cl := &http.Client{Timeout: time.Second}
	var last string
	for {
		if p != nil {
			if ex, err := p.Exited(); ex {
				return fmt.Errorf("bench: %s exited before it was ready (%v); last output:\n%s", p.Name, err, p.LogTail(2000))
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := cl.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			name := url
			if p != nil {
				name = p.Name
			}
			msg := fmt.Sprintf("bench: %s not ready at %s (last: %s)", name, url, last)
			if p != nil {
				msg += "; last output:\n" + p.LogTail(2000)
			}
			return errors.New(msg)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
