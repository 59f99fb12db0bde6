// Package dlr parses and formats SMPP delivery receipts and normalises
// message ids so receipts can be matched to the submit_sm_resp that
// announced them.
//
// A receipt arrives as a deliver_sm or data_sm with esm_class 0x04 (0x20 for
// intermediate notifications). Its state is best taken from the
// receipted_message_id and message_state TLVs when present, as Kannel does;
// Parse reads the text form of SMPP 3.4 Appendix B:
//
//	id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:EEE text:...
//
// and the variants SMSCs actually send. State, Outcome and the stat words
// follow smpp.md §9; the id rules (NormalizeID, CanonicalKey, IDVariants)
// follow §10.
//
// This package must not import package smpp, which imports it.
package dlr

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// ErrNotReceipt is returned by Parse for text that has neither an id nor a
// stat field.
var ErrNotReceipt = errors.New("dlr: text is not a delivery receipt")

// Receipt is a delivery receipt's text form.
type Receipt struct {
	ID         string    // id: the SMSC message id, as written (see NormalizeID)
	Submitted  int       // sub: messages submitted
	Delivered  int       // dlvrd: messages delivered
	SubmitDate time.Time // submit date:, UTC wall clock; zero if absent or invalid
	DoneDate   time.Time // done date:, likewise
	Stat       string    // stat: in upper case, e.g. "DELIVRD"; "" if absent
	State      State     // StateFromStat(Stat); Unknown if stat is absent
	Err        string    // err: as written, e.g. "000"; "" if absent
	Text       string    // everything after text:, unchanged
}

// Outcome classifies the receipt: by its Stat if present (Kannel's rule,
// see OutcomeOf), else by its State.
func (r Receipt) Outcome() Outcome {
	if r.Stat != "" {
		return OutcomeOf(r.Stat)
	}
	return r.State.Outcome()
}

type field uint8

const (
	fieldNone field = iota
	fieldID
	fieldSub
	fieldDlvrd
	fieldSubmitDate
	fieldDoneDate
	fieldStat
	fieldErr
	fieldText
	fieldOther // some other key: its value is skipped
)

func isSep(c byte) bool {
	return c == ' ' || c == ',' || c == ';' || c == '\t' || c == '\r' || c == '\n'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// Parse reads the text of a delivery receipt. It is lenient, because SMSCs
// are: keys are matched without regard to case and in any order, fields are
// separated by spaces, tabs, commas or semicolons (the comma-separated
// variant), extra space around ':' is allowed, "submit date" may also be
// written "submit_date" or "submitdate" (likewise "done date"), unknown keys
// are skipped and missing fields are left zero. Dates have 10
// (YYMMDDhhmm), 12 (YYMMDDhhmmss) or 14 (YYYYMMDDhhmmss) digits and are read
// as UTC, since the SMSC's zone is unknown; an invalid date is left zero.
// Text is the rest of the input after "text:", whatever it contains, less
// any trailing NULs.
//
// Parse returns ErrNotReceipt if the text has neither an id nor a stat
// field, and the fields it did find otherwise. A missing stat gives State
// Unknown.
func Parse(text string) (Receipt, error) {
	var r Receipt
	r.State = Unknown
	haveID, haveStat := false, false
	s := strings.TrimRight(text, "\x00") // some SMSCs NUL-terminate short_message
	i := 0
	for i < len(s) {
		for i < len(s) && isSep(s[i]) {
			i++
		}
		if i == len(s) {
			break
		}
		f, next := matchKey(s, i)
		if f == fieldNone {
			for i < len(s) && !isSep(s[i]) {
				i++
			}
			continue
		}
		if f == fieldText {
			r.Text = s[next:]
			break
		}
		var v string
		v, i = value(s, next)
		switch f {
		case fieldID:
			r.ID, haveID = v, true
		case fieldSub:
			r.Submitted = atoi(v)
		case fieldDlvrd:
			r.Delivered = atoi(v)
		case fieldSubmitDate:
			r.SubmitDate = parseDate(v)
		case fieldDoneDate:
			r.DoneDate = parseDate(v)
		case fieldStat:
			r.Stat, haveStat = strings.ToUpper(v), true
			r.State = StateFromStat(v)
		case fieldErr:
			r.Err = v
		}
	}
	if !haveID && !haveStat {
		return Receipt{}, ErrNotReceipt
	}
	return r, nil
}

// matchKey reads a key and its ':' at s[i:]. It returns the field and the
// index after the ':', or fieldNone if s[i:] does not start with key ':'.
func matchKey(s string, i int) (field, int) {
	j := i
	for j < len(s) && isKeyChar(s[j]) {
		j++
	}
	word := s[i:j]
	var f field
	switch {
	case word == "":
		return fieldNone, i
	case strings.EqualFold(word, "id"):
		f = fieldID
	case strings.EqualFold(word, "sub"):
		f = fieldSub
	case strings.EqualFold(word, "dlvrd"):
		f = fieldDlvrd
	case strings.EqualFold(word, "stat"):
		f = fieldStat
	case strings.EqualFold(word, "err"):
		f = fieldErr
	case strings.EqualFold(word, "text"):
		f = fieldText
	case strings.EqualFold(word, "submit_date"), strings.EqualFold(word, "submitdate"):
		f = fieldSubmitDate
	case strings.EqualFold(word, "done_date"), strings.EqualFold(word, "donedate"):
		f = fieldDoneDate
	case strings.EqualFold(word, "submit"), strings.EqualFold(word, "done"):
		// "submit date" and "done date", possibly with extra space.
		k := j
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		if k == j || len(s)-k < 4 || !strings.EqualFold(s[k:k+4], "date") || (k+4 < len(s) && isKeyChar(s[k+4])) {
			return fieldNone, i
		}
		j = k + 4
		f = fieldSubmitDate
		if len(word) == 4 {
			f = fieldDoneDate
		}
	default:
		f = fieldOther
	}
	for j < len(s) && isSpace(s[j]) {
		j++
	}
	if j == len(s) || s[j] != ':' {
		return fieldNone, i
	}
	return f, j + 1
}

// value reads a field value starting at s[i:] (just after the ':') and
// returns it with the index after it. Space after the ':' is skipped unless
// what follows is the next key, in which case the value is empty.
func value(s string, i int) (string, int) {
	j := i
	for j < len(s) && isSpace(s[j]) {
		j++
	}
	k := j
	for k < len(s) && !isSep(s[k]) {
		k++
	}
	v := s[j:k]
	if j > i && strings.IndexByte(v, ':') >= 0 {
		return "", i // "err: stat:DELIVRD": err is empty
	}
	return v, k
}

// atoi parses a non-negative count, tolerating junk by returning 0.
func atoi(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// parseDate reads YYMMDDhhmm, YYMMDDhhmmss or YYYYMMDDhhmmss as UTC. It
// returns the zero time for anything else, including impossible dates.
func parseDate(v string) time.Time {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return time.Time{}
		}
	}
	d := func(a, b int) int {
		n := 0
		for _, c := range v[a:b] {
			n = n*10 + int(c-'0')
		}
		return n
	}
	var year, rest int
	switch len(v) {
	case 10, 12:
		year, rest = 2000+d(0, 2), 2
	case 14:
		year, rest = d(0, 4), 4
	default:
		return time.Time{}
	}
	mon, day, hour, minute := d(rest, rest+2), d(rest+2, rest+4), d(rest+4, rest+6), d(rest+6, rest+8)
	sec := 0
	if len(v) > rest+8 {
		sec = d(rest+8, rest+10)
	}
	if mon < 1 || mon > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}
	}
	t := time.Date(year, time.Month(mon), day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // 31 April and the like
		return time.Time{}
	}
	return t
}

// MaxText is the number of characters of the original message a formatted
// receipt carries after text:.
const MaxText = 20

// Format returns the canonical text form of r, as our SMSC simulator sends
// it and as receipts we forward upstream carry it:
//
//	id:ID sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:...
//
// sub and dlvrd are zero-padded to 3 digits; dates have 10 digits ("0000000000"
// for a zero time); stat is r.Stat if set, else r.State.Stat(); err is r.Err
// if set, else "000"; text is the first MaxText characters of r.Text.
func Format(r Receipt) string {
	return string(AppendFormat(make([]byte, 0, 160), r))
}

// AppendFormat appends Format(r) to dst.
func AppendFormat(dst []byte, r Receipt) []byte {
	dst = append(dst, "id:"...)
	dst = append(dst, r.ID...)
	dst = append(dst, " sub:"...)
	dst = appendCount(dst, r.Submitted)
	dst = append(dst, " dlvrd:"...)
	dst = appendCount(dst, r.Delivered)
	dst = append(dst, " submit date:"...)
	dst = appendDate(dst, r.SubmitDate)
	dst = append(dst, " done date:"...)
	dst = appendDate(dst, r.DoneDate)
	dst = append(dst, " stat:"...)
	if r.Stat != "" {
		dst = append(dst, r.Stat...)
	} else {
		dst = append(dst, r.State.Stat()...)
	}
	dst = append(dst, " err:"...)
	if r.Err != "" {
		dst = append(dst, r.Err...)
	} else {
		dst = append(dst, "000"...)
	}
	dst = append(dst, " text:"...)
	text := r.Text
	n := 0
	for i := range text {
		if n == MaxText {
			text = text[:i]
			break
		}
		n++
	}
	return append(dst, text...)
}

func appendCount(dst []byte, n int) []byte {
	if n < 0 {
		n = 0
	}
	if n < 100 {
		dst = append(dst, '0')
	}
	if n < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(n), 10)
}

func appendDate(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, "0000000000"...)
	}
	y, mo, d := t.Date()
	h, mi, _ := t.Clock()
	for _, v := range [...]int{y % 100, int(mo), d, h, mi} {
		dst = append(dst, byte('0'+v/10), byte('0'+v%10))
	}
	return dst
}
