package consent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

const crashChildEnv = "OPTGATE_CONSENT_CRASH_CHILD"

func crashRecipient(i int) string { return fmt.Sprintf("+1202555%04d", i) }

// crashChild runs in the re-executed test binary: it opens the store in
// dir, records opt-outs from several goroutines and prints "ACK n" after
// each Inbound returned, until it is killed.
func crashChild(dir string) {
	start, _ := strconv.Atoi(os.Getenv(crashChildEnv + "_START"))
	s, err := Open(Config{Dir: dir, Tenants: []TenantConfig{testTenant("acme")}, BadgerLowMemory: true})
	if err != nil {
		os.Stderr.WriteString("open: " + err.Error() + "\n")
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := start + g; i < start+2000; i += 4 {
				_, err := s.Inbound(context.Background(), InboundMessage{Tenant: "acme", Channel: ChannelSMS,
					Sender: senderA, Recipient: crashRecipient(i), Text: "STOP", MessageID: "c" + strconv.Itoa(i)})
				if err != nil {
					os.Stderr.WriteString("inbound: " + err.Error() + "\n")
					os.Exit(3)
				}
				mu.Lock()
				os.Stdout.WriteString("ACK " + strconv.Itoa(i) + "\n")
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	os.Exit(0)
}

// TestCrashDurability kills a child process with SIGKILL right after it
// acknowledged opt-outs and checks that every acknowledged one survived.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test re-executes the binary")
	}
	dir := t.TempDir()
	var acked []int
	for round := 0; round < 5; round++ {
		start := round * 2000
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashChildEnv+"_START="+strconv.Itoa(start))
		out, err := cmd.StdoutPipe()
		requireNoErr(t, err)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		requireNoErr(t, cmd.Start())
		killAfter := 5 + round*37 // vary the crash point
		sc := bufio.NewScanner(out)
		n := 0
		for sc.Scan() {
			var i int
			if _, err := fmt.Sscanf(sc.Text(), "ACK %d", &i); err != nil {
				continue
			}
			acked = append(acked, i)
			n++
			if n >= killAfter {
				cmd.Process.Signal(syscall.SIGKILL) // immediately after the ACK
				break
			}
		}
		cmd.Wait()
		if n < killAfter {
			t.Fatalf("round %d: child ended after %d ACKs: %s", round, n, stderr.String())
		}
	}
	s, err := Open(Config{Dir: dir, Tenants: []TenantConfig{testTenant("acme")}, BadgerLowMemory: true})
	requireNoErr(t, err)
	defer s.Close()
	for _, i := range acked {
		d, err := s.Check("acme", ChannelSMS, senderA, crashRecipient(i), CategoryTransactional)
		requireNoErr(t, err)
		if d.Allow {
			t.Fatalf("acknowledged opt-out %s lost after SIGKILL", crashRecipient(i))
		}
		hist, err := s.History("acme", ChannelSMS, crashRecipient(i), 1)
		requireNoErr(t, err)
		testutil.RequireEqual(t, len(hist), 1, "evidence of ", crashRecipient(i))
	}
	t.Logf("%d acknowledged opt-outs survived %d SIGKILLs", len(acked), 5)
	_ = time.Second
}
