package configs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const unitPath = "systemd/optgate.service"

// The unit keeps its hardening: a change that drops one of these fails
// here, with or without systemd installed.
func TestSystemdUnitHardening(t *testing.T) {
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"DynamicUser=yes", "StateDirectory=optgate", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ProtectHome=yes", "PrivateTmp=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
		"CapabilityBoundingSet=\n", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
		"ExecStart=/usr/local/bin/optgate serve -config /etc/optgate/optgate.yaml",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("%s lacks %q", unitPath, want)
		}
	}
}

// systemd-analyze accepts the unit without a warning (it only warns about
// a bad value, so any output fails) and rates its exposure at most 2.0
// ("OK"). ExecStart must name an executable, so the test points it at a
// temporary one.
func TestSystemdUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "optgate")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/optgate`)
	if !re.Match(b) {
		t.Fatal("ExecStart not found")
	}
	unit := filepath.Join(dir, "optgate.service")
	os.WriteFile(unit, re.ReplaceAll(b, []byte("ExecStart="+bin)), 0o644)
	out, err := exec.Command(sa, "verify", "--man=no", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=yes", "--threshold=20", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: exposure above 2.0 (%v)\n%s", err, out)
	}
}
