package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/optgate/optgate/backup"
)

// buildOptgate builds the binary into a temporary folder (skipping the
// test with -short).
func buildOptgate(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "optgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// childGateway is `optgate serve` running as a child process.
type childGateway struct {
	t       *testing.T
	cmd     *exec.Cmd
	http    string
	cfgPath string
	stderr  *syncBuffer
}

const backupAdminToken = "backup-admin-token"

// startChild writes a config on dataDir (extra YAML appended) and runs
// serve on it until the test ends, waiting for /healthz.
func startChild(t *testing.T, bin, dataDir, extra string) *childGateway {
	t.Helper()
	g := &childGateway{t: t, http: freePort(t), stderr: &syncBuffer{}}
	cfg := fmt.Sprintf(`
store: {dir: %q}
smpp: {listen: %q}
http: {listen: %q, admin_token: %s}
simulator: {enabled: true, listen: %q, system_id: optgate, password: simpw}
tenants:
  - {id: acme, brand: Acme, help_contact: help@acme.example, api_token: acme-backup-token, numbers: ["+15145550199"]}
%s`, dataDir, freePort(t), g.http, backupAdminToken, freePort(t), extra)
	g.cfgPath = filepath.Join(t.TempDir(), "optgate.yaml")
	if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd = exec.Command(bin, "serve", "-config", g.cfgPath)
	g.cmd.Stdout, g.cmd.Stderr = io.Discard, g.stderr
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.stop)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + g.http + "/healthz"); err == nil {
			resp.Body.Close()
			return g
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway did not come up:\n%s", g.stderr.String())
	return nil
}

// stop ends the child with SIGTERM (idempotent).
func (g *childGateway) stop() {
	if g.cmd.ProcessState != nil {
		return
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	g.cmd.Wait()
}

func (g *childGateway) call(method, path, token, body string) (int, string) {
	req, _ := http.NewRequest(method, "http://"+g.http+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		g.t.Errorf("%s %s: %v", method, path, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// optgateCmd runs the binary and returns its exit code and output.
func optgateCmd(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("%v: %v", args, err)
	}
	return 0, string(out)
}

// requireBlocked checks that a send to every number is refused as opted
// out and that its evidence log holds the STOP (or, with evidence set,
// that text).
func (g *childGateway) requireBlocked(numbers []string, what string, evidence ...string) {
	ev := "STOP"
	if len(evidence) > 0 {
		ev = evidence[0]
	}
	g.t.Helper()
	for _, n := range numbers {
		code, body := g.call("POST", "/v1/messages", "acme-backup-token", `{"to":"`+n+`","text":"offer"}`)
		if code != 403 || !strings.Contains(body, "recipient_opted_out") {
			g.t.Fatalf("%s: send to %s after restore: %d %s", what, n, code, body)
		}
		code, body = g.call("GET", "/v1/consent/"+n+"/history", "acme-backup-token", "")
		if code != 200 || !strings.Contains(body, ev) {
			g.t.Fatalf("%s: evidence of %s after restore: %d %s", what, n, code, body)
		}
	}
}

// TestBackupRestoreDuringSTOPs: STOPs stream into a running gateway; a
// full backup is taken through it mid-stream, an incremental one after
// more STOPs (the CLI finds the stores held and asks the gateway), and one
// more with the gateway stopped (stores opened directly). Each restore,
// started as a gateway, blocks every STOP acknowledged before its backup
// started, evidence intact; restore into a non-empty folder and a
// corrupted archive are refused.
func TestBackupRestoreDuringSTOPs(t *testing.T) {
	bin := buildOptgate(t)
	work := t.TempDir()
	bk := filepath.Join(work, "backups")
	os.Mkdir(bk, 0o755)
	g1 := startChild(t, bin, filepath.Join(work, "data"), "")

	var mu sync.Mutex
	var acked []string
	ackedNow := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), acked...) }
	stopStream := make(chan struct{})
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		for i := 0; i < 2000; i++ { // bounded; the test stops it much earlier
			select {
			case <-stopStream:
				return
			default:
			}
			n := fmt.Sprintf("+1514556%04d", i)
			code, body := g1.call("POST", "/v1/simulator/mo", "acme-backup-token", `{"from":"`+n+`","to":"+15145550199","text":"STOP"}`)
			if code != 200 {
				t.Errorf("MO STOP from %s: %d %s", n, code, body)
				return
			}
			mu.Lock()
			acked = append(acked, n)
			mu.Unlock()
		}
	}()
	waitAcked := func(n int) {
		deadline := time.Now().Add(60 * time.Second)
		for len(ackedNow()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d STOPs acknowledged, waiting for %d", len(ackedNow()), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	if code, body := g1.call("POST", "/v1/admin/backup", "acme-backup-token", ""); code != 403 {
		t.Fatalf("backup with a tenant token: %d %s", code, body)
	}
	if code, body := g1.call("POST", "/v1/admin/backup", backupAdminToken, `{"parent":"abc"}`); code != 400 {
		t.Fatalf("incremental backup without since: %d %s", code, body)
	}
	waitAcked(30)
	beforeFull := ackedNow() // acknowledged before the backup started
	code, out := optgateCmd(t, bin, "backup", "-url", g1.http, "-token", backupAdminToken, "-to", bk)
	if code != 0 {
		t.Fatalf("full backup: %d %s", code, out)
	}
	waitAcked(len(ackedNow()) + 30)
	beforeInc := ackedNow()
	code, out = optgateCmd(t, bin, "backup", "-config", g1.cfgPath, "-to", bk, "-incremental")
	if code != 0 || !strings.Contains(out, "held by a running gateway") || !strings.Contains(out, "incremental backup") {
		t.Fatalf("incremental backup through the running gateway: %d %s", code, out)
	}
	close(stopStream)
	<-streamDone
	all := ackedNow()
	history := map[string]string{}
	for _, n := range []string{all[0], all[len(all)-1]} {
		_, history[n] = g1.call("GET", "/v1/consent/"+n+"/history", "acme-backup-token", "")
	}
	g1.stop()
	code, out = optgateCmd(t, bin, "backup", "-config", g1.cfgPath, "-to", bk, "-incremental")
	if code != 0 || strings.Contains(out, "held by") {
		t.Fatalf("incremental backup of stopped stores: %d %s", code, out)
	}
	archives, _ := backup.Archives(bk)
	if len(archives) != 3 || !strings.HasSuffix(archives[0], "-full.ogbak") {
		t.Fatalf("archives: %v", archives)
	}

	// The full archive alone: every STOP acknowledged before it started.
	r1 := filepath.Join(work, "restored-full")
	if code, out := optgateCmd(t, bin, "restore", "-from", archives[0], "-to", r1); code != 0 {
		t.Fatalf("restore: %d %s", code, out)
	}
	g2 := startChild(t, bin, r1, "")
	g2.requireBlocked(beforeFull, "full")
	// Its history continues from the full archive: an incremental backup
	// after the newer archives would miss its new commits (their versions
	// are numbers those archives already cover), so it is refused; one
	// after the full archive it was restored from is taken.
	if code, out := optgateCmd(t, bin, "backup", "-url", g2.http, "-token", backupAdminToken, "-to", bk, "-incremental"); code != 1 || !strings.Contains(out, "take a full backup") {
		t.Fatalf("incremental after a newer archive, on a gateway restored from an older one: %d %s", code, out)
	}
	if code, out := optgateCmd(t, bin, "backup", "-url", g2.http, "-token", backupAdminToken, "-to", filepath.Join(work, "after-restore.ogbak"), "-since", archives[0]); code != 0 {
		t.Fatalf("incremental after the archive it was restored from: %d %s", code, out)
	}
	g2.stop()

	// full + first incremental: also the STOPs before the incremental.
	r2 := filepath.Join(work, "restored-inc")
	if code, out := optgateCmd(t, bin, "restore", "-from", archives[0], "-from", archives[1], "-to", r2); code != 0 {
		t.Fatalf("restore: %d %s", code, out)
	}
	g3 := startChild(t, bin, r2, "")
	g3.requireBlocked(beforeInc, "full+incremental")
	g3.stop()

	// The folder (newest chain): everything, evidence byte for byte.
	r3 := filepath.Join(work, "restored-all")
	if code, out := optgateCmd(t, bin, "restore", "-from", bk, "-to", r3); code != 0 {
		t.Fatalf("restore: %d %s", code, out)
	}
	g4 := startChild(t, bin, r3, "")
	g4.requireBlocked(all, "chain")
	for n, want := range history {
		if _, got := g4.call("GET", "/v1/consent/"+n+"/history", "acme-backup-token", ""); got != want {
			t.Fatalf("evidence of %s differs after restore:\n got %s\nwant %s", n, got, want)
		}
	}
	g4.stop()

	// Restore into a non-empty folder: refused, nothing touched.
	if code, out := optgateCmd(t, bin, "restore", "-from", bk, "-to", r3); code != 1 || !strings.Contains(out, "not empty") {
		t.Fatalf("restore into a non-empty folder: %d %s", code, out)
	}
	// Out of order: refused.
	if code, out := optgateCmd(t, bin, "restore", "-from", archives[0], "-from", archives[2], "-to", filepath.Join(work, "gap")); code != 1 || !strings.Contains(out, "does not follow") {
		t.Fatalf("restore with a gap: %d %s", code, out)
	}

	// verify: the chain loads; one flipped byte is found.
	if code, out := optgateCmd(t, bin, "backup", "verify", bk); code != 0 || !strings.Contains(out, "ok: 3 archive(s) load") {
		t.Fatalf("verify: %d %s", code, out)
	}
	b, _ := os.ReadFile(archives[1])
	b[len(b)/2] ^= 0xff
	bad := filepath.Join(work, "bad.ogbak")
	os.WriteFile(bad, b, 0o600)
	if code, out := optgateCmd(t, bin, "backup", "verify", archives[0], bad); code != 1 || !strings.Contains(out, "corrupted") {
		t.Fatalf("verify of a corrupted archive: %d %s", code, out)
	}
	t.Logf("STOPs acknowledged: %d before the full backup, %d before the incremental, %d in all", len(beforeFull), len(beforeInc), len(all))
}

// After a SIGKILL the stores' write-ahead logs end in a torn record that a
// read-only open refuses; an offline backup still takes them, with every
// opt-out acknowledged before the kill.
func TestBackupOfflineAfterCrash(t *testing.T) {
	bin := buildOptgate(t)
	dir := t.TempDir()
	g := startChild(t, bin, filepath.Join(dir, "data"), "")
	var numbers []string
	for i := range 20 {
		n := fmt.Sprintf("+1514557%04d", i)
		if code, body := g.call("POST", "/v1/consent/"+n+"/opt-out", backupAdminToken, ""); code != 200 || !strings.Contains(body, `"stored":true`) {
			t.Fatalf("opt-out: %d %s", code, body)
		}
		numbers = append(numbers, n)
	}
	g.cmd.Process.Signal(syscall.SIGKILL)
	g.cmd.Wait()
	archive := filepath.Join(dir, "after-crash.ogbak")
	if code, out := optgateCmd(t, bin, "backup", "-config", g.cfgPath, "-to", archive); code != 0 {
		t.Fatalf("offline backup after SIGKILL: %d %s", code, out)
	}
	if code, out := optgateCmd(t, bin, "backup", "-config", g.cfgPath, "-to", archive); code != 1 || !strings.Contains(out, "exists") {
		t.Fatalf("backup over an existing file: %d %s", code, out)
	}
	if code, out := optgateCmd(t, bin, "restore", "-from", archive, "-to", filepath.Join(dir, "restored")); code != 0 {
		t.Fatalf("restore: %d %s", code, out)
	}
	startChild(t, bin, filepath.Join(dir, "restored"), "").requireBlocked(numbers, "after crash", `"new":"opted_out"`)

	// Run as root into a service's (emptied) state folder: the restored
	// files get the folder's owner, so the service can write them.
	if os.Geteuid() == 0 {
		state := filepath.Join(dir, "state")
		os.Mkdir(state, 0o700)
		if err := os.Chown(state, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if code, out := optgateCmd(t, bin, "restore", "-from", archive, "-to", state); code != 0 {
			t.Fatalf("restore into a state folder: %d %s", code, out)
		}
		n := 0
		filepath.WalkDir(state, func(path string, _ os.DirEntry, err error) error {
			if st, e := os.Lstat(path); e == nil {
				if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 65534 || sys.Gid != 65534 {
					t.Errorf("%s owned by %d:%d, want the folder's 65534", path, sys.Uid, sys.Gid)
				}
				n++
			}
			return nil
		})
		if n < 5 {
			t.Fatalf("only %d entries restored", n)
		}
	}
}

// Usage: -h prints the command's help to stdout and exits 0; a usage error
// exits 2; a missing archive or a bad one exits 1 with the reason.
func TestBackupUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"backup", "-h"}, 0, "optgate backup [-config FILE | -url URL]"},
		{[]string{"backup", "verify", "-h"}, 0, "optgate backup verify"},
		{[]string{"restore", "--help"}, 0, "optgate restore -from"},
		{[]string{"backup"}, 2, "usage"},
		{[]string{"backup", "-to", "x", "-bogus"}, 2, "optgate backup -h"},
		{[]string{"restore", "-to", "x"}, 2, "usage"},
		{[]string{"backup", "verify"}, 2, "usage"},
		{[]string{"backup", "verify", filepath.Join(t.TempDir(), "none.ogbak")}, 1, "no such file"},
		{[]string{"restore", "-from", "backup_test.go", "-to", filepath.Join(t.TempDir(), "r")}, 1, "not an optgate backup archive"},
		{[]string{"backup", "-to", filepath.Join(t.TempDir(), "b.ogbak"), "-url", "127.0.0.1:1", "-token", "x"}, 1, "connection refused"},
	} {
		var out, errb syncBuffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.want) {
			t.Errorf("%v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", c.args, code, c.code, c.want, out.String(), errb.String())
		}
	}
}
