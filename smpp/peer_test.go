package smpp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// peerHead is what every interop peer script (node-smpp, Net::SMPP) prints
// on each JSON line; the peer's own event type embeds it.
type peerHead struct {
	Ev            string `json:"ev"`
	Dir           string `json:"dir"`
	Command       string `json:"command"`
	CommandStatus uint32 `json:"command_status"`
	Seq           uint32 `json:"sequence_number"`
	Hex           string `json:"hex"`
	Port          int    `json:"port"`
	Mode          string `json:"mode"`
	Error         string `json:"error"`
	line          string
}

func (h *peerHead) head() *peerHead { return h }

// raw returns the PDU's octets as the peer read or wrote them.
func (h peerHead) raw(t testing.TB) []byte {
	t.Helper()
	b, err := hex.DecodeString(h.Hex)
	requireNoErr(t, err)
	return b
}

// peerEvent is a peer's event type E through its pointer.
type peerEvent[E any] interface {
	*E
	head() *peerHead
}

// peerProc is a running peer script that prints one JSON event a line on
// stdout and takes one JSON command a line on stdin.
type peerProc[E any, P peerEvent[E]] struct {
	t      testing.TB
	name   string // "node server.js", for messages
	stdin  io.WriteCloser
	events chan E
	exited chan struct{}
	err    error // cmd.Wait's result, set before exited is closed

	mu     sync.Mutex
	lines  []string     // everything printed, for failure reports
	stderr bytes.Buffer // guarded by mu
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// startPeer runs prog with args in dir. The process is bounded three ways:
// the script's own --lifetime (in args), closing its stdin at cleanup and
// the context of exec.CommandContext.
func startPeer[E any, P peerEvent[E]](t testing.TB, dir, prog string, args ...string) *peerProc[E, P] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	p := &peerProc[E, P]{t: t, name: prog + " " + args[0], events: make(chan E, 1024), exited: make(chan struct{})}
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	cmd.WaitDelay = 2 * time.Second
	var err error
	p.stdin, err = cmd.StdinPipe()
	requireNoErr(t, err)
	stdout, err := cmd.StdoutPipe()
	requireNoErr(t, err)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", p.name, err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			var ev E
			h := P(&ev).head()
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				ev = *new(E)
				h.Ev, h.Error = "unparsed", err.Error()
			}
			h.line = line
			p.events <- ev
		}
	}()
	go func() {
		<-readDone // Wait closes stdout: read it all first
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			cancel()
			<-p.exited
		}
		cancel()
		for range p.events { // let the reader finish if nobody drained it
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s stdout:\n%s\nstderr:\n%s", p.name, strings.Join(p.lines, "\n"), p.stderr.String())
			p.mu.Unlock()
		}
	})
	return p
}

// send writes one JSON command to the script's stdin.
func (p *peerProc[E, P]) send(cmd any) {
	p.t.Helper()
	b, err := json.Marshal(cmd)
	requireNoErr(p.t, err)
	_, err = p.stdin.Write(append(b, '\n'))
	requireNoErr(p.t, err)
}

// expect reads events until one satisfies match, failing the test after
// nodeTimeout or when the script exits first. Events before it are skipped
// (they stay in the failure log).
func (p *peerProc[E, P]) expect(what string, match func(E) bool) E {
	p.t.Helper()
	timer := time.NewTimer(nodeTimeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-p.events:
			if !ok {
				p.t.Fatalf("%s ended before %s", p.name, what)
			}
			if h := P(&ev).head(); h.Ev == "error" || h.Ev == "unparsed" {
				p.t.Errorf("%s reported: %s", p.name, h.line)
			}
			if match(ev) {
				return ev
			}
		case <-timer.C:
			p.t.Fatalf("%s: no %s within %s", p.name, what, nodeTimeout)
		}
	}
}

func (p *peerProc[E, P]) expectEv(name string) E {
	p.t.Helper()
	return p.expect("event "+name, func(e E) bool { return P(&e).head().Ev == name })
}

// expectPDU waits for a PDU the peer read ("in") or wrote ("out").
func (p *peerProc[E, P]) expectPDU(dir, command string) E {
	p.t.Helper()
	return p.expect(dir+" "+command, func(e E) bool {
		h := P(&e).head()
		return h.Ev == "pdu" && h.Dir == dir && h.Command == command
	})
}

// waitExit waits for the script to end by itself and checks it exited 0.
func (p *peerProc[E, P]) waitExit() {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(nodeTimeout):
		p.t.Fatalf("%s did not exit", p.name)
	}
	if p.err != nil {
		p.t.Fatalf("%s: %v", p.name, p.err)
	}
}
