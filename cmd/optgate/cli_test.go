package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// help, -h and --help describe the command on stdout and exit 0; each
// consent subcommand lists only its own flags.
func TestHelpExitsZero(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"help"}, []string{"optgate serve", "optgate consent", "Exit status"}, nil},
		{[]string{"--help"}, []string{"optgate check-config"}, nil},
		{[]string{"serve", "-h"}, []string{"Runs the gateway", "-config"}, nil},
		{[]string{"serve", "--help"}, []string{"Runs the gateway"}, nil},
		{[]string{"help", "check-config"}, []string{"Runs every check serve runs"}, nil},
		{[]string{"consent", "-h"}, []string{"opt-out RECIPIENT", "OPTGATE_URL"}, []string{"no token"}},
		{[]string{"consent", "help"}, []string{"opt-out RECIPIENT"}, []string{"no token"}},
		{[]string{"consent", "help", "history"}, []string{"-limit"}, nil},
		{[]string{"consent", "get", "-h"}, []string{"consent state", "-url", "-token", "-channel"}, []string{"-limit", "-marketing", "-source", "-strict", "-evidence"}},
		{[]string{"consent", "history", "--help"}, []string{"-limit"}, []string{"-marketing", "-source"}},
		{[]string{"consent", "import", "-h"}, []string{"-source", "-strict"}, []string{"-limit", "-marketing", "-channel"}},
		{[]string{"version", "-h"}, []string{"VCS revision"}, nil},
	} {
		code, out, errb := runCLI(tc.args...)
		if code != 0 || errb != "" {
			t.Errorf("%v: exit %d, stderr %q", tc.args, code, errb)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: %q missing in:\n%s", tc.args, w, out)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out, n) {
				t.Errorf("%v: %q should not be in:\n%s", tc.args, n, out)
			}
		}
	}
}

// Usage errors exit 2 with one line naming the problem and where to look.
func TestUsageErrorsOneLineHint(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate" (see 'optgate help')`},
		{[]string{"serve", "-bogus"}, "optgate serve: flag provided but not defined: -bogus (see 'optgate serve -h')"},
		{[]string{"check-config", "a.yaml", "b.yaml"}, "one configuration file, got 2"},
		{[]string{"check-config", "-config", "a.yaml", "b.yaml"}, "configuration given twice"},
		{[]string{"consent", "bogus"}, `optgate consent: unknown command "bogus"`},
		{[]string{"consent", "history", "+15145550100", "-limit", "-5", "-token", "x"}, "-limit -5: must be 1–1000"},
		{[]string{"consent", "history", "+15145550100", "-limit", "many"}, `invalid value "many" for flag -limit`},
		{[]string{"consent", "get", "-token", "x"}, "expected RECIPIENT"},
		{[]string{"consent", "get", "+15145550100", "-channel", "fax", "-token", "x"}, `-channel "fax"`},
		{[]string{"consent", "get", "+15145550100", "-url", "ftp://x", "-token", "x"}, "bad -url"},
		{[]string{"version", "extra"}, "no arguments expected"},
	} {
		code, _, errb := runCLI(tc.args...)
		if code != 2 || !strings.Contains(errb, tc.want) || strings.Count(errb, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line with %q", tc.args, code, errb, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, out, _ := runCLI(args...)
		if code != 0 || !strings.HasPrefix(out, "optgate ") || !strings.Contains(out, "go1.") || !strings.HasSuffix(out, "\n") {
			t.Errorf("%v: %d %q", args, code, out)
		}
	}
}

// A positional config path is used, not ignored.
func TestPositionalConfigPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "my.yaml")
	os.WriteFile(path, []byte("log: {level: loud}\n"), 0o644)
	for _, args := range [][]string{{"check-config", path}, {"serve", path}} {
		code, _, errb := runCLI(args...)
		if code != 1 || !strings.Contains(errb, path+":1: log.level") {
			t.Errorf("%v: exit %d:\n%s", args, code, errb)
		}
	}
	if code, _, errb := runCLI("check-config", filepath.Join(t.TempDir(), "missing.yaml")); code != 1 || !strings.Contains(errb, "no such file") {
		t.Errorf("missing file: %d %s", code, errb)
	}
}

// Without a path, the default configs/optgate.yaml is found from a
// subdirectory of the checkout, and its relative store.dir resolves
// against the config's folder, not the working directory.
func TestDefaultConfigFromSubdirectory(t *testing.T) {
	// the test runs in cmd/optgate: the default is ../../configs/optgate.yaml
	code, out, errb := runCLI("check-config")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, errb)
	}
	root, _ := filepath.Abs("../..")
	if !strings.Contains(out, "configs/optgate.yaml: ok") || !strings.Contains(out, "store: "+filepath.Join(root, "data")+"\n") {
		t.Fatalf("want the repository's config and %s/data:\n%s", root, out)
	}
}
