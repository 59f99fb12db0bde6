package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/optgate/optgate/internal/testutil"

	"github.com/optgate/optgate/internal/groupcommit"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/smpptest"
)

// syncBuffer is a log sink the test reads while the gateway writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

// mountTmpfs mounts a tmpfs of size on a fresh directory (unmounted in
// the test's cleanup, after the gateway's), or skips the test when
// mounting is not permitted.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("needs root to mount a tmpfs for real disk faults: mount: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// startFaultEnv starts a gateway on dir with a fast store probe and its
// log captured.
func startFaultEnv(t *testing.T, dir string) (*testEnv, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	smsc := smpptest.NewServer(smpptest.Config{Receipts: true})
	t.Cleanup(smsc.Close)
	y := configYAML(dir, smsc.Addr(), "", "")
	y = strings.Replace(y, fmt.Sprintf("store: {dir: %q}", dir),
		fmt.Sprintf("store: {dir: %q, low_memory: true, probe_interval: 50ms, min_free_bytes: 1048576, slow_fsync: 2s}", dir), 1)
	env := startEnv(t, y, smsc, dir)
	return env, logs
}

// fill writes a filler file until the filesystem is full.
func fill(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Big writes, then page-sized ones: not one free page is left.
	for _, size := range []int{64 << 10, 4 << 10, 512} {
		buf := make([]byte, size)
		for i := 0; ; i++ {
			if i == 1<<20 {
				t.Fatal("filesystem never filled")
			}
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filler: %v", err)
				}
				break
			}
		}
	}
}

func (e *testEnv) readyCode() int {
	code, _ := e.http("GET", "/readyz", "", "")
	return code
}

// A full disk under a running gateway (a real tmpfs filled to the brim):
// STOPs are answered ESME_RX_T_APPN (the SMSC retries) and the API 503,
// nothing is lost or half-stored; submits to someone who opted out before
// are still refused for good from memory, other submits get a temporary
// refusal; /readyz is 503 and optgate_store_healthy 0; "store unhealthy"
// is logged once per store, however many messages were refused. Deleting
// the filler, the gateway recovers by itself and the next STOP is stored.
func TestDiskFullFailsClosedAndRecovers(t *testing.T) {
	dir := mountTmpfs(t, "64m")
	env, logs := startFaultEnv(t, dir)
	const before, during = "+15145550401", "+15145550402"
	if err := env.mo(before, "STOP"); err != nil {
		t.Fatalf("STOP on a healthy disk: %v", err)
	}
	if code := env.readyCode(); code != 200 {
		t.Fatalf("readyz on a healthy disk: %d", code)
	}
	// Load: STOPs from four handsets at once while the disk fills. Each is
	// either acknowledged (stored before the gate closed) or asked to
	// retry; none may be acknowledged and lost, none may crash us.
	var (
		mu         sync.Mutex
		acked      []string
		unexpected []error
		stopLoad   atomic.Bool
		load       sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		load.Add(1)
		go func() {
			defer load.Done()
			for i := 0; i < 500 && !stopLoad.Load(); i++ {
				n := fmt.Sprintf("+1514556%d%03d", w, i)
				err := env.mo(n, "STOP")
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, n)
				case smpp.StatusOf(err) != smpp.StatusXTAppn:
					unexpected = append(unexpected, err)
				}
				mu.Unlock()
			}
		}()
	}
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	testutil.CheckFor(t, 5*time.Second, func() error {
		if code := env.readyCode(); code != 503 {
			return fmt.Errorf("readyz %d on a full disk, want 503", code)
		}
		return nil
	})
	stopLoad.Store(true)
	load.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("STOPs under load while the disk filled: %v, want only ESME_ROK or ESME_RX_T_APPN", unexpected[0])
	}
	t.Logf("%d STOPs acknowledged under load before the gate closed", len(acked))
	// /readyz turns 503 with the first store the probe finds unhealthy;
	// the probe goes on to the next store just after.
	testutil.CheckFor(t, 10*time.Second, func() error {
		for _, p := range env.g.disk.stores {
			if v := promtest.ToFloat64(p.gauge); v != 0 {
				return fmt.Errorf("optgate_store_healthy{store=%q} = %v on a full disk, want 0", p.name, v)
			}
		}
		return nil
	})
	for i := 0; i < 20; i++ {
		if err := env.mo(during, "STOP"); smpp.StatusOf(err) != smpp.StatusXTAppn {
			t.Fatalf("STOP %d on a full disk: %v, want ESME_RX_T_APPN", i, err)
		}
	}
	if code, m := env.http("POST", "/v1/consent/"+during+"/opt-out", acmeToken, ""); code != 503 || errCode(m) != ReasonStoreUnavailable.String() {
		t.Fatalf("API opt-out on a full disk: %d %v, want 503 store_unavailable", code, m)
	}
	if code, m := env.http("POST", "/v1/messages", acmeToken, `{"to":"`+during+`","text":"hi"}`); code != 503 {
		t.Fatalf("API send on a full disk: %d %v, want 503", code, m)
	}
	// Screening from memory goes on: the earlier opt-out is still refused
	// for good, anything else is refused for now.
	if _, err := env.submit(before, "x"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("submit to an opted-out recipient on a full disk: %v, want 0x401", err)
	}
	if _, err := env.submit(during, "x"); smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("submit on a full disk: %v, want ESME_RX_T_APPN", err)
	}
	if code, m := env.http("GET", "/v1/consent/"+during, acmeToken, ""); code != 200 || !strings.Contains(fmt.Sprint(m), "state:none") {
		t.Fatalf("consent read on a full disk: %d %v, want 200 and no opt-out stored", code, m)
	}
	time.Sleep(200 * time.Millisecond) // several probe rounds while still full
	// Each store logs just after its gauge is set.
	testutil.CheckFor(t, 10*time.Second, func() error {
		if n := logs.count("store unhealthy"); n < 2 {
			return fmt.Errorf(`"store unhealthy" logged %d times`, n)
		}
		return nil
	})
	if n := logs.count("store unhealthy"); n != 2 {
		t.Fatalf(`"store unhealthy" logged %d times for two stores, want once each`, n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if code := env.readyCode(); code != 200 {
			return fmt.Errorf("readyz %d after the disk came back", code)
		}
		return nil
	})
	if err := env.mo(during, "STOP"); err != nil {
		t.Fatalf("STOP after the disk came back: %v", err)
	}
	if _, err := env.submit(during, "x"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("submit after the recovered STOP: %v, want 0x401", err)
	}
	for _, n := range acked {
		if d, err := env.g.consent.Check("acme", ChannelSMS, ourNumber, n, 0); err != nil || d.Allow {
			t.Fatalf("STOP from %s acknowledged under load, then: %+v %v", n, d, err)
		}
	}
	if n := logs.count("store healthy again"); n != 2 {
		t.Fatalf(`"store healthy again" logged %d times, want once per store`, n)
	}
	for _, p := range env.g.disk.stores {
		if v := promtest.ToFloat64(p.gauge); v != 1 {
			t.Fatalf("optgate_store_healthy{store=%q} = %v after recovery, want 1", p.name, v)
		}
	}
}

// Shutdown with the disk still full does not try to close the stores (a
// close flushes the memtables into new table files written through memory
// maps, which on a full disk may retry for ever or die of SIGBUS); it
// returns at once with ErrStoresNotClosed, and the STOP taken before the
// disk filled is there when the store is opened again. (Here a close
// would happen to succeed: closing the gateway store first frees its
// preallocated write-ahead log. The test checks the contract, not a crash.)
func TestShutdownOnFullDiskLeavesStoresOpen(t *testing.T) {
	dir := mountTmpfs(t, "64m")
	env, _ := startFaultEnv(t, dir)
	if err := env.mo(handset, "STOP"); err != nil {
		t.Fatalf("STOP on a healthy disk: %v", err)
	}
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	testutil.CheckFor(t, 5*time.Second, func() error {
		if env.g.storesOK() {
			return errors.New("stores still healthy on a full disk")
		}
		return nil
	})
	env.esme.Close()
	env.esme = nil
	g := env.g
	env.g = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); !errors.Is(err, ErrStoresNotClosed) {
		t.Fatalf("Shutdown on a full disk: %v, want ErrStoresNotClosed", err)
	}
	if g.db.IsClosed() {
		t.Fatal("gateway store closed on a full disk")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	g.closeStores() // what a restart would find: the synced logs
	cfg, err := ParseConfig([]byte(env.yaml), "test.yaml", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	g2, err := New(cfg, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer g2.closeStores()
	d, err := g2.consent.Check("acme", ChannelSMS, ourNumber, handset, 0)
	if err != nil || d.Allow {
		t.Fatalf("after a shutdown on a full disk: %+v %v, want the STOP kept", d, err)
	}
}

// The store directory vanishing under a running gateway: the probe sees
// the Badger files gone, STOPs are answered ESME_RX_T_APPN, /readyz says
// why, and the gateway does not "recover" by starting an empty store even
// once the directory exists again.
func TestVanishedStoreFailsClosed(t *testing.T) {
	leaks.Abandon(t, "the gateway's stores, left open because their directory vanished (closing retries for ever)")
	dir := t.TempDir()
	env, logs := startFaultEnv(t, dir)
	if err := env.mo("+15145550411", "STOP"); err != nil {
		t.Fatalf("STOP: %v", err)
	}
	consentDir := filepath.Join(dir, "consent")
	if err := os.RemoveAll(consentDir); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if code, m := env.http("GET", "/readyz", "", ""); code != 503 || !strings.Contains(fmt.Sprint(m), "store files missing") {
			return fmt.Errorf("readyz %d %v, want 503 naming the missing files", code, m)
		}
		return nil
	})
	if err := env.mo("+15145550412", "STOP"); smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("STOP with the store gone: %v, want ESME_RX_T_APPN", err)
	}
	if _, err := env.submit("+15145550411", "x"); smpp.StatusOf(err) != smpp.StatusOptedOut {
		t.Fatalf("submit to an opted-out recipient with the store gone: %v, want 0x401 from memory", err)
	}
	if err := os.MkdirAll(consentDir, 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // several probe rounds
	if env.g.storesOK() {
		t.Fatal("healthy again on an empty directory: every opt-out would be forgotten")
	}
	if n := logs.count("store unhealthy"); n != 1 {
		t.Fatalf(`"store unhealthy" logged %d times, want once`, n)
	}
	// The test's cleanup shuts down: the stores are left open (unhealthy).
}

// A store whose fsync is slower than store.slow_fsync counts as unhealthy.
// Without a device that can be slowed down (device-mapper's delay target
// is not available here), slow_fsync: 1ns makes every real fsync of the
// probe "slow": the gate closes from the start, STOPs get ESME_RX_T_APPN
// and /readyz names the slow fsync.
func TestSlowFsyncFailsClosed(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	smsc := smpptest.NewServer(smpptest.Config{})
	t.Cleanup(smsc.Close)
	y := strings.Replace(configYAML(dir, smsc.Addr(), "", ""), fmt.Sprintf("store: {dir: %q}", dir),
		fmt.Sprintf("store: {dir: %q, probe_interval: 50ms, min_free_bytes: 1, slow_fsync: 1ns}", dir), 1)
	env := startEnv(t, y, smsc, dir)
	if code, m := env.http("GET", "/readyz", "", ""); code != 503 || !strings.Contains(fmt.Sprint(m), "fsync slow") {
		t.Fatalf("readyz with slow fsyncs: %d %v, want 503 naming the slow fsync", code, m)
	}
	if err := env.mo(handset, "STOP"); smpp.StatusOf(err) != smpp.StatusXTAppn {
		t.Fatalf("STOP with slow fsyncs: %v, want ESME_RX_T_APPN", err)
	}
	// WhatsApp's inbound messages too: Meta retries a 503.
	if code, m := env.http("POST", "/webhooks/whatsapp", "", `{"object":"whatsapp_business_account"}`); code != 503 || errCode(m) != ReasonStoreUnavailable.String() {
		t.Fatalf("WhatsApp webhook with slow fsyncs: %d %v, want 503 store_unavailable", code, m)
	}
	if n := logs.count("store unhealthy"); n != 2 {
		t.Fatalf(`"store unhealthy" logged %d times, want once per store`, n)
	}
	env.esme.Close()
	env.esme = nil
	g := env.g
	env.g = nil
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); !errors.Is(err, ErrStoresNotClosed) {
		t.Fatalf("Shutdown with slow fsyncs: %v, want ErrStoresNotClosed", err)
	}
	g.closeStores() // the disk is fine really
}

// A failed commit of the gateway store (an fsync error injected in its
// committer) fences its writes: they are refused with ErrFenced, the
// store shows unhealthy for a probe round (/readyz 503 naming the fence,
// one "store unhealthy" line), and since its disk passes the probe the
// fence is lifted by itself: the next writes and STOPs are stored.
func TestGatewayStoreFenceLiftedByProbe(t *testing.T) {
	dir := t.TempDir()
	env, logs := startFaultEnv(t, dir)
	fsync := errors.New("fsync: input/output error")
	fail := func(txn *badger.Txn) error { txn.Discard(); return fsync }
	env.g.commitFault.Store(&fail)
	if err := env.g.commit.Write(groupcommit.Op{Key: []byte("t/fence"), Value: []byte("x")}); !errors.Is(err, fsync) {
		t.Fatalf("write through a failing commit: %v, want the commit's error", err)
	}
	env.g.commitFault.Store(nil)
	if err := env.g.commit.Write(groupcommit.Op{Key: []byte("t/fenced"), Value: []byte("x")}); err != nil &&
		!errors.Is(err, groupcommit.ErrFenced) {
		t.Fatalf("write after a failed commit: %v, want ErrFenced (or nil once the probe lifted it)", err)
	}
	testutil.CheckFor(t, 5*time.Second, func() error {
		if n := logs.count("store unhealthy"); n != 1 {
			return fmt.Errorf(`"store unhealthy" logged %d times, want once`, n)
		}
		return nil
	})
	testutil.CheckFor(t, 5*time.Second, func() error {
		if code := env.readyCode(); code != 200 {
			return fmt.Errorf("readyz %d after the fence was lifted", code)
		}
		return nil
	})
	if err := env.g.commit.Write(groupcommit.Op{Key: []byte("t/after"), Value: []byte("x")}); err != nil {
		t.Fatalf("write after the probe lifted the fence: %v", err)
	}
	if err := env.mo("+15145550421", "STOP"); err != nil {
		t.Fatalf("STOP after the probe lifted the fence: %v", err)
	}
	if n := logs.count("store healthy again"); n != 1 {
		t.Fatalf(`"store healthy again" logged %d times, want once`, n)
	}
	if n := logs.count("fenced after a failed commit"); n == 0 {
		t.Fatal("the fence was not named in the log")
	}
}
