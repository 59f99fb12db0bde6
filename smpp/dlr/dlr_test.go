package dlr

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
)

func date(y, mo, d, h, mi, s int) time.Time {
	return time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC)
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Receipt
	}{
		{
			"appendix B",
			"id:0123456789 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:Hello world",
			Receipt{ID: "0123456789", Submitted: 1, Delivered: 1, SubmitDate: date(2024, 1, 1, 12, 0, 0),
				DoneDate: date(2024, 1, 1, 12, 1, 0), Stat: "DELIVRD", State: Delivered, Err: "000", Text: "Hello world"},
		},
		{
			"12-digit dates",
			"id:c449ab9744f47b6af1879e49e75e4f40 sub:001 dlvrd:001 submit date:240229235958 done date:240301000130 stat:DELIVRD err:000 text:",
			Receipt{ID: "c449ab9744f47b6af1879e49e75e4f40", Submitted: 1, Delivered: 1, SubmitDate: date(2024, 2, 29, 23, 59, 58),
				DoneDate: date(2024, 3, 1, 0, 1, 30), Stat: "DELIVRD", State: Delivered, Err: "000"},
		},
		{
			"14-digit dates",
			"id:42 sub:1 dlvrd:0 submit date:20240101120000 done date:20240101120005 stat:UNDELIV err:001",
			Receipt{ID: "42", Submitted: 1, SubmitDate: date(2024, 1, 1, 12, 0, 0), DoneDate: date(2024, 1, 1, 12, 0, 5),
				Stat: "UNDELIV", State: Undeliverable, Err: "001"},
		},
		{
			"uppercase keys",
			"ID:123 SUB:001 DLVRD:000 SUBMIT DATE:2401011200 DONE DATE:2401011300 STAT:EXPIRED ERR:027 TEXT:Test",
			Receipt{ID: "123", Submitted: 1, SubmitDate: date(2024, 1, 1, 12, 0, 0), DoneDate: date(2024, 1, 1, 13, 0, 0),
				Stat: "EXPIRED", State: Expired, Err: "027", Text: "Test"},
		},
		{
			"missing err",
			"id:123 sub:001 dlvrd:000 submit date:2401011200 done date:2401011200 stat:REJECTD text:x",
			Receipt{ID: "123", Submitted: 1, SubmitDate: date(2024, 1, 1, 12, 0, 0), DoneDate: date(2024, 1, 1, 12, 0, 0),
				Stat: "REJECTD", State: Rejected, Text: "x"},
		},
		{
			"comma separated",
			"id:123,sub:001,dlvrd:001,submit date:2401011200,done date:2401011201,stat:DELIVRD,err:000,text:hi, there",
			Receipt{ID: "123", Submitted: 1, Delivered: 1, SubmitDate: date(2024, 1, 1, 12, 0, 0), DoneDate: date(2024, 1, 1, 12, 1, 0),
				Stat: "DELIVRD", State: Delivered, Err: "000", Text: "hi, there"},
		},
		{
			"odd order",
			"stat:DELIVRD err:000 done date:2401011201 id:7 dlvrd:001 sub:001",
			Receipt{ID: "7", Submitted: 1, Delivered: 1, DoneDate: date(2024, 1, 1, 12, 1, 0), Stat: "DELIVRD", State: Delivered, Err: "000"},
		},
		{
			"extra spaces",
			"  id: 123   sub:1  dlvrd:1 submit  date: 2401011200 done date :2401011200 stat: DELIVRD err: 000  text: hi",
			Receipt{ID: "123", Submitted: 1, Delivered: 1, SubmitDate: date(2024, 1, 1, 12, 0, 0), DoneDate: date(2024, 1, 1, 12, 0, 0),
				Stat: "DELIVRD", State: Delivered, Err: "000", Text: " hi"},
		},
		{
			"underscore date keys",
			"id:9 submit_date:2401011200 done_date:2401011201 stat:DELIVRD",
			Receipt{ID: "9", SubmitDate: date(2024, 1, 1, 12, 0, 0), DoneDate: date(2024, 1, 1, 12, 1, 0), Stat: "DELIVRD", State: Delivered},
		},
		{
			"id and stat only",
			"id:1 stat:ACCEPTD",
			Receipt{ID: "1", Stat: "ACCEPTD", State: Accepted},
		},
		{
			"lower-case stat",
			"id:1 stat:delivrd",
			Receipt{ID: "1", Stat: "DELIVRD", State: Delivered},
		},
		{
			"empty err before next key",
			"id:1 err: stat:UNDELIV",
			Receipt{ID: "1", Stat: "UNDELIV", State: Undeliverable},
		},
		{
			"vendor stat",
			"id:1 sub:001 dlvrd:000 stat:BUFFRED err:000",
			Receipt{ID: "1", Submitted: 1, Stat: "BUFFRED", State: Enroute, Err: "000"},
		},
		{
			"text containing keys",
			"id:1 stat:DELIVRD text:stat:UNDELIV id:2",
			Receipt{ID: "1", Stat: "DELIVRD", State: Delivered, Text: "stat:UNDELIV id:2"},
		},
		{
			"unknown fields skipped",
			"id:1 mccmnc:23410 dest: 447700900000 stat:DELIVRD price:0.01",
			Receipt{ID: "1", Stat: "DELIVRD", State: Delivered},
		},
		{
			"invalid dates left zero",
			"id:1 submit date:2413011200 done date:24010112 stat:DELIVRD",
			Receipt{ID: "1", Stat: "DELIVRD", State: Delivered},
		},
		{
			"31 April",
			"id:1 submit date:2404311200 stat:DELIVRD",
			Receipt{ID: "1", Stat: "DELIVRD", State: Delivered},
		},
		{
			"trailing CRLF",
			"id:1 stat:DELIVRD\r\n",
			Receipt{ID: "1", Stat: "DELIVRD", State: Delivered},
		},
		{
			"missing stat",
			"id:abc sub:001 dlvrd:001",
			Receipt{ID: "abc", Submitted: 1, Delivered: 1, State: Unknown},
		},
		{
			"uuid id with err text",
			"id:0E999F21-2E4B-4C5A-9D1F-5B3E2A1C0D9E sub:001 dlvrd:000 submit date:2405061010 done date:2405061011 stat:UNDELIV err:0x456 text:STOP",
			Receipt{ID: "0E999F21-2E4B-4C5A-9D1F-5B3E2A1C0D9E", Submitted: 1, SubmitDate: date(2024, 5, 6, 10, 10, 0),
				DoneDate: date(2024, 5, 6, 10, 11, 0), Stat: "UNDELIV", State: Undeliverable, Err: "0x456", Text: "STOP"},
		},
		{
			"junk counts",
			"id:1 sub:abc dlvrd:-3 stat:DELIVRD",
			Receipt{ID: "1", Stat: "DELIVRD", State: Delivered},
		},
		{
			"NUL terminated",
			"id:5 stat:DELIVRD text:abc\x00",
			Receipt{ID: "5", Stat: "DELIVRD", State: Delivered, Text: "abc"},
		},
		{
			"semicolons",
			"id:5;stat:EXPIRED;err:003",
			Receipt{ID: "5", Stat: "EXPIRED", State: Expired, Err: "003"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			testutil.RequireEqual(t, got, tt.want)
		})
	}
}

func TestParseNotReceipt(t *testing.T) {
	for _, in := range []string{"", "hello world", "STOP", "sub:001 dlvrd:001", "identity:5 status:ok", "text:id:1 stat:DELIVRD", "submit date", "done"} {
		t.Run(in, func(t *testing.T) {
			if _, err := Parse(in); !errors.Is(err, ErrNotReceipt) {
				t.Fatalf("err = %v, want ErrNotReceipt", err)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		r    Receipt
		want string
	}{
		{
			"delivered",
			Receipt{ID: "12345", Submitted: 1, Delivered: 1, SubmitDate: date(2024, 1, 1, 12, 0, 59), DoneDate: date(2024, 1, 1, 12, 1, 0),
				State: Delivered, Text: "Hello world"},
			"id:12345 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:Hello world",
		},
		{
			"stat and err given, text cut to 20 characters",
			Receipt{ID: "a", Stat: "UNDELIV", State: Delivered, Err: "005", Text: "Ünïcödé text that is longer than twenty"},
			"id:a sub:000 dlvrd:000 submit date:0000000000 done date:0000000000 stat:UNDELIV err:005 text:Ünïcödé text that is",
		},
		{
			"big counts",
			Receipt{ID: "b", Submitted: 1234, Delivered: 12, State: Enroute},
			"id:b sub:1234 dlvrd:012 submit date:0000000000 done date:0000000000 stat:ENROUTE err:000 text:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			testutil.RequireEqual(t, Format(tt.r), tt.want)
		})
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	for s := Scheduled; s <= Skipped; s++ {
		r := Receipt{ID: "0af3", Submitted: 1, Delivered: 1, SubmitDate: date(2031, 12, 31, 23, 59, 0),
			DoneDate: date(2032, 1, 1, 0, 0, 0), State: s, Err: "000", Text: "ok, fine: stat:x"}
		got, err := Parse(Format(r))
		if err != nil {
			t.Fatal(err)
		}
		r.Stat = s.Stat()
		if s == Scheduled {
			r.State = Enroute // Scheduled has no stat word of its own
		}
		testutil.RequireEqual(t, got, r)
	}
}

func FuzzDLRParse(f *testing.F) {
	for _, s := range []string{
		"id:0123456789 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:Hello world",
		"id:123,sub:001,dlvrd:001,submit date:240101120000,done date:240101120100,stat:DELIVRD,err:000,text:hi",
		"ID:1 STAT:undeliv ERR: TEXT:",
		"submit date:", "done  date :", "id:", "text:", "stat", ":", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		if r.Stat != "" && r.State != StateFromStat(r.Stat) {
			t.Fatalf("State %v for stat %q", r.State, r.Stat)
		}
		if r.Submitted < 0 || r.Delivered < 0 {
			t.Fatalf("negative counts: %+v", r)
		}
		out := Format(r)
		r2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Format(%+v)) = %v (text %q)", r, err, out)
		}
		if !strings.ContainsAny(r.ID, " ,;\t\r\n") && r2.ID != r.ID {
			t.Fatalf("id %q became %q via %q", r.ID, r2.ID, out)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	s := "id:0123456789 sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:DELIVRD err:000 text:Hello world"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFormat(b *testing.B) {
	r := Receipt{ID: "0123456789", Submitted: 1, Delivered: 1, SubmitDate: date(2024, 1, 1, 12, 0, 0),
		DoneDate: date(2024, 1, 1, 12, 1, 0), State: Delivered, Err: "000", Text: "Hello world"}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFormat(buf[:0], r)
	}
}
