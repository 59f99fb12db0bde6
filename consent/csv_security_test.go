package consent

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// An import record is bounded whether it is one long line or a quoted
// field spread over many short lines: the import stops with the line
// where the record passed MaxImportLine, having buffered no more.
func TestImportRecordBound(t *testing.T) {
	h := newHarness(t, testTenant("acme"))
	opts := ImportOptions{Tenant: "acme", Source: "crm", Operator: "ops"}
	for _, c := range []struct {
		name, in string
		line     int
	}{
		{"one line, no newline", strings.Repeat("recipient", MaxImportLine), 1},
		{"long row", "recipient\n+12025550101\n" + strings.Repeat("9", MaxImportLine+1) + "\n", 3},
		{"quoted field over short lines", "recipient,note\n+12025550102,\"" + strings.Repeat("x\n", MaxImportLine) + "\"\n", 2 + (MaxImportLine-14)/2}, // 14 bytes before the first newline
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.s.Import(context.Background(), strings.NewReader(c.in), opts)
			var le *LineTooLongError
			if !errors.As(err, &le) || !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("err %v, want *LineTooLongError", err)
			}
			requireEqual(t, le.Line, c.line)
		})
	}
	// Just under the bound is a row like any other (malformed here: its
	// field is over MaxImportField, reported with its line).
	in := "recipient\n" + strings.Repeat("1", MaxImportLine-1) + "\n+12025550103\n"
	rep, err := h.s.Import(context.Background(), strings.NewReader(in), opts)
	requireNoErr(t, err)
	requireEqual(t, rep.ErrorCount, 1)
	requireEqual(t, rep.Errors[0].Line, 2)
	requireEqual(t, rep.Applied, 1)
}

// Exported fields that a spreadsheet would run are neutralised, E.164
// numbers are not, and an import reads a neutralised field back as it was.
func TestExportNeutralizeRoundTrip(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{"", ""}, {"hello", "hello"}, {"+15145550100", "+15145550100"},
		{"=1+2", "'=1+2"}, {"+1+2", "'+1+2"}, {"+", "'+"}, {"-2", "'-2"}, {"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"}, {"\rx", "'\rx"}, {"'=x", "'=x"}, {"a=b", "a=b"},
	} {
		requireEqual(t, neutralize(c.in), c.out, c.in)
		if c.out != c.in {
			requireEqual(t, unneutralize(c.out), c.in, c.out)
		}
	}
	// A sender-scoped suppression whose sender looks like a formula
	// exports neutralised and imports back to the same sender.
	h := newHarness(t, testTenant("acme"))
	opts := ImportOptions{Tenant: "acme", Source: "crm", Operator: "ops"}
	_, err := h.s.Import(context.Background(), strings.NewReader("recipient,scope\n+12025550104,=EVIL()\n"), opts)
	requireNoErr(t, err)
	var out bytes.Buffer
	_, err = h.s.Export(context.Background(), &out, ExportOptions{Tenant: "acme"})
	requireNoErr(t, err)
	if !strings.Contains(out.String(), ",'=EVIL(),") || !strings.Contains(out.String(), ",+12025550104,") {
		t.Fatalf("export: %s", out.String())
	}
	requireEqual(t, h.check("acme", ChannelSMS, "=EVIL()", "+12025550104", 0).Reason, ReasonOptedOut)
	h2 := newHarness(t, testTenant("acme"))
	_, err = h2.s.Import(context.Background(), bytes.NewReader(out.Bytes()), opts)
	requireNoErr(t, err)
	requireEqual(t, h2.check("acme", ChannelSMS, "=EVIL()", "+12025550104", 0).Reason, ReasonOptedOut, "re-imported")
}
