package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
)

func TestRelayForwardsPDUs(t *testing.T) {
	up := newUpstream(t)
	r, err := StartRelay("127.0.0.1:0", up.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := smpp.NewClient(smpp.ClientConfig{Addr: r.Addr(), SystemID: "relaytest", Password: "pw", Binds: 2,
		Conn: smpp.ConnConfig{Window: 64}})
	c.Start()
	defer c.Close()
	if err := c.WaitBound(ctx, 2); err != nil {
		t.Fatal(err)
	}
	const n = 500
	ids := make(map[string]bool)
	for i := 0; i < n; i++ {
		dest := fmt.Sprintf("1416555%04d", i)
		if i%10 == 0 {
			dest = "refuse"
		}
		id, err := c.Submit(ctx, &smpp.SubmitSM{SM: smpp.SM{Dest: smpp.Address{TON: 1, NPI: 1, Addr: []byte(dest)},
			ShortMessage: []byte("hello")}})
		if i%10 == 0 {
			var se *smpp.StatusError
			if !errors.As(err, &se) || se.Status != smpp.StatusOptedOut {
				t.Fatalf("submit %d: want 0x401, got %v", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
		if ids[id] {
			t.Fatalf("duplicate message id %q: responses crossed", id)
		}
		ids[id] = true
	}
	testutil.RequireEqual(t, up.submits.Load(), int64(n), "submits seen upstream")
	// Requests the other way (SMSC → ESME) are relayed too.
	var got int
	for _, cn := range up.SMPP().Sessions() {
		if _, _, err := cn.Send(ctx, &smpp.EnquireLink{}); err != nil {
			t.Fatalf("enquire_link through relay: %v", err)
		}
		got++
	}
	testutil.RequireEqual(t, got, 2, "upstream sessions")
	upN, downN := r.Frames()
	if upN < n || downN < n {
		t.Fatalf("frames: up %d down %d, want ≥ %d each", upN, downN, n)
	}
}

func TestRelayClosesOnBadLength(t *testing.T) {
	up := newUpstream(t)
	r, err := StartRelay("127.0.0.1:0", up.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	nc, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte{0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1})
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := nc.Read(b[:]); err == nil {
		t.Fatal("relay kept a connection with command_length 3")
	}
}

func TestRelayUnreachableUpstream(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	r, err := StartRelay("127.0.0.1:0", addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	nc, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := nc.Read(b[:]); err == nil {
		t.Fatal("relay kept a connection with no upstream")
	}
}

// A relay child that dies at once is reported with its output, quickly,
// and nothing is left running.
func TestStartRelayProcessExits(t *testing.T) {
	bin, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false(1)")
	}
	start := time.Now()
	p, addr, err := StartRelayProcess(context.Background(), bin, t.TempDir(), "127.0.0.1:1", 5*time.Second)
	if err == nil || p != nil || addr != "" {
		t.Fatalf("got %v %q %v, want an error", p, addr, err)
	}
	if !strings.Contains(err.Error(), "exited before it was ready") {
		t.Fatalf("error %q", err)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Fatalf("took %s to notice", el)
	}
}

// A relay child that never listens is stopped at the timeout.
func TestStartRelayProcessTimeout(t *testing.T) {
	bin, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1)")
	}
	// A stand-in that ignores the relay's arguments and never listens.
	dir := t.TempDir()
	script := filepath.Join(dir, "never-listens")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec "+bin+" 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, _, err := StartRelayProcess(context.Background(), script, dir, "127.0.0.1:1", 500*time.Millisecond)
	if err == nil || p != nil || !strings.Contains(err.Error(), "not listening") {
		t.Fatalf("got %v, %v; want a not-listening error", p, err)
	}
}
