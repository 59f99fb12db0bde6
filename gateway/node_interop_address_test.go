package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/optgate/optgate/smpp"
)

// node-smpp as the platform: after a STOP from +12025557020, its submit_sm
// to 2025557020 written nationally (TON 0) is refused 0x401, and one to
// 2025557021 (TON 0) reaches the SMSC as +12025557021. node-smpp is driven
// through smpp/testdata/node/client.js, as the smpp package's interop
// tests drive it; the test skips when node or its modules are missing.
func TestNodeESMENationalDestinationAfterStop(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "smpp", "testdata", "node"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "smpp", "package.json")); err != nil {
		t.Skip("smpp/testdata/node/node_modules missing: run `npm ci` there")
	}
	env := addrEnv(t, "", "")
	if err := env.deliver(addr(1, "12025557020"), ours, "STOP"); err != nil {
		t.Fatal(err)
	}
	env.nextSubmitTo("+12025557020") // the confirmation
	_, port, _ := net.SplitHostPort(env.g.SMPPAddr())
	msgs, _ := json.Marshal([]map[string]any{
		{"source_addr_ton": 1, "source_addr_npi": 1, "source_addr": ourNumber[1:], "dest_addr_ton": 0, "dest_addr_npi": 1,
			"destination_addr": "2025557020", "short_message": map[string]any{"text": "after STOP"}},
		{"source_addr_ton": 1, "source_addr_npi": 1, "source_addr": ourNumber[1:], "dest_addr_ton": 0, "dest_addr_npi": 1,
			"destination_addr": "2025557021", "short_message": map[string]any{"text": "hello"}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "client.js", "--port", port, "--system-id", "acme", "--password", "acmepw",
		"--mode", "transmitter", "--messages", string(msgs), "--lifetime", "20000")
	cmd.Dir = dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe() // client.js exits when its stdin closes
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); _ = cmd.Wait() }()
	var statuses []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var ev struct {
			Ev, Dir, Command string
			Status           int `json:"command_status"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		if ev.Ev == "pdu" && ev.Dir == "in" && ev.Command == "submit_sm_resp" {
			statuses = append(statuses, ev.Status)
		}
		if ev.Ev == "bind_failed" || ev.Ev == "done" || ev.Ev == "close" {
			break
		}
	}
	if len(statuses) != 2 || statuses[0] != int(smpp.StatusOptedOut) || statuses[1] != 0 {
		t.Fatalf("node-smpp got submit_sm_resp statuses %v, want [0x401 0]", statuses)
	}
	s, _ := env.nextSubmitTo("+12025557021")
	if s.PDU.Dest.TON != 1 || s.PDU.Dest.NPI != 1 {
		t.Fatalf("SMSC got TON/NPI %d/%d", s.PDU.Dest.TON, s.PDU.Dest.NPI)
	}
}
