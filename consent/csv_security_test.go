package consent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/optgate/optgate/internal/testutil"
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
			testutil.RequireEqual(t, le.Line, c.line)
		})
	}
	// Just under the bound is a row like any other (malformed here: its
	// field is over MaxImportField, reported with its line).
	in := "recipient\n" + strings.Repeat("1", MaxImportLine-1) + "\n+12025550103\n"
	rep, err := h.s.Import(context.Background(), strings.NewReader(in), opts)
	requireNoErr(t, err)
	testutil.RequireEqual(t, rep.ErrorCount, 1)
	testutil.RequireEqual(t, rep.Errors[0].Line, 2)
	testutil.RequireEqual(t, rep.Applied, 1)
}

// Exported fields that a spreadsheet would run are neutralised, E.164
// numbers are not, and an import reads a neutralised field back as it was.
func TestExportNeutralizeRoundTrip(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{"", ""}, {"hello", "hello"}, {"+15145550100", "+15145550100"},
		{"=1+2", "'=1+2"}, {"+1+2", "'+1+2"}, {"+", "'+"}, {"-2", "'-2"}, {"@SUM(A1)", "'@SUM(A1)"},
		{"\tx", "'\tx"}, {"\rx", "'\rx"}, {"'=x", "'=x"}, {"a=b", "a=b"},
	} {
		testutil.RequireEqual(t, neutralize(c.in), c.out, c.in)
		if c.out != c.in {
			testutil.RequireEqual(t, unneutralize(c.out), c.in, c.out)
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
	testutil.RequireEqual(t, h.check("acme", ChannelSMS, "=EVIL()", "+12025550104", 0).Reason, ReasonOptedOut)
	h2 := newHarness(t, testTenant("acme"))
	_, err = h2.s.Import(context.Background(), bytes.NewReader(out.Bytes()), opts)
	requireNoErr(t, err)
	testutil.RequireEqual(t, h2.check("acme", ChannelSMS, "=EVIL()", "+12025550104", 0).Reason, ReasonOptedOut, "re-imported")
}

// FuzzLineLimiter: whatever the input and however it is read, the limiter
// passes a prefix of it unchanged in which no record (outside quotes, up to
// a newline) is longer than the bound, and it stops with the line of the
// first record that is.
func FuzzLineLimiter(f *testing.F) {
	f.Add([]byte("recipient\n+15145550100\n"), uint8(7), uint16(16))
	f.Add([]byte("a,\"b\nc\"\n\"\"\"\n"), uint8(1), uint16(3))
	f.Add([]byte(strings.Repeat("x", 100)), uint8(3), uint16(10))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8, maxLen uint16) {
		max := int(maxLen%512) + 1
		l := &lineLimiter{r: bytes.NewReader(in), max: max, line: 1}
		var out []byte
		buf := make([]byte, int(chunk%64)+1)
		var err error
		for err == nil {
			var k int
			k, err = l.Read(buf)
			out = append(out, buf[:k]...)
		}
		if !bytes.Equal(out, in[:len(out)]) {
			t.Fatalf("passed bytes differ from the input")
		}
		// Recount over what passed, as the limiter should have.
		n, line, inQuote := 0, 1, false
		for _, c := range out {
			if c == '\n' && !inQuote {
				line, n = line+1, 0
				continue
			}
			if c == '"' {
				inQuote = !inQuote
			}
			if n++; n > max {
				t.Fatalf("a record of %d bytes passed (max %d)", n, max)
			}
			if c == '\n' {
				line++
			}
		}
		var le *LineTooLongError
		switch {
		case errors.As(err, &le):
			if len(out) == len(in) || le.Line != line {
				t.Fatalf("stopped at line %d after %d of %d bytes; recount says line %d", le.Line, len(out), len(in), line)
			}
		case err == io.EOF:
			if len(out) != len(in) {
				t.Fatalf("EOF after %d of %d bytes", len(out), len(in))
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
	})
}
