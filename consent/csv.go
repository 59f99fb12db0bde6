package consent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/optgate/optgate/internal/e164"

	"github.com/dgraph-io/badger/v4"
)

// CSV formats.
//
// Suppression entries (Export writes, Import reads; Import matches columns
// by header name, ignores unknown ones, and needs at least recipient):
//
//	tenant,channel,recipient,scope,class,state,since
//
// scope is "tenant" or the sender the entry applies to; class is all,
// all_senders (STOPALL), marketing or marketing_whatsapp; since is RFC 3339
// (informative on import). tenant defaults to ImportOptions.Tenant and
// channel to "sms".
//
// Evidence (ExportEvidence writes): one row per log entry, columns as in
// evidenceHeader.
var (
	suppressionHeader = []string{"tenant", "channel", "recipient", "scope", "class", "state", "since"}
	evidenceHeader    = []string{"time", "tenant", "channel", "sender", "scope", "recipient", "old", "new", "class",
		"source", "keyword", "normalized", "lang", "text", "message_id", "operator", "consent_source", "proof_ref", "detail", "received", "match_mode", "decoding"}
)

// ErrImportRejected is returned by a Strict import with malformed rows:
// nothing was applied.
var ErrImportRejected = errors.New("consent: import rejected, nothing applied")

// Import bounds: memory stays constant whatever the input.
const (
	// MaxImportLine is the longest import record accepted, in bytes (a
	// quoted field may span lines: the bound is on the whole record).
	MaxImportLine = 64 << 10
	// MaxImportField is the longest field of an import row, in bytes; a
	// longer field makes its row malformed.
	MaxImportField = 1024
)

// LineTooLongError stops an import at a record longer than MaxImportLine:
// the rows before it may be applied (as on any error that stops an
// import), nothing after it is read. It wraps ErrInvalidInput.
type LineTooLongError struct {
	Line int // the line (1-based) where the record passed the limit
	Max  int
}

func (e *LineTooLongError) Error() string {
	return fmt.Sprintf("consent: import: line %d: record longer than %d bytes", e.Line, e.Max)
}

func (e *LineTooLongError) Unwrap() error { return ErrInvalidInput }

// lineLimiter passes an import through, failing with *LineTooLongError
// once a record (up to a newline outside double quotes) passes max bytes,
// so that encoding/csv never buffers more than that.
type lineLimiter struct {
	r       io.Reader
	max     int
	line    int  // current line, 1-based
	n       int  // bytes of the current record
	inQuote bool // inside a quoted field
	err     error
}

func (l *lineLimiter) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	// Hand out at most what can still fit, so that the reader behind
	// never holds a record past the limit.
	if room := l.max + 1 - l.n; len(p) > room {
		p = p[:max(room, 1)]
	}
	k, err := l.r.Read(p)
	for i, c := range p[:k] {
		if c == '\n' && !l.inQuote {
			l.line++
			l.n = 0
			continue
		}
		if c == '"' {
			l.inQuote = !l.inQuote
		}
		if l.n++; l.n > l.max {
			l.err = &LineTooLongError{Line: l.line, Max: l.max}
			return i, l.err
		}
		if c == '\n' { // inside a quoted field: the record goes on
			l.line++
		}
	}
	return k, err
}

// csvTrigger reports whether a CSV field starting with c may be run as a
// formula by a spreadsheet (OWASP "CSV injection": = + - @ tab CR).
func csvTrigger(c byte) bool {
	return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r'
}

// neutralize makes an exported field inert in a spreadsheet: a field
// starting with a formula character gets a leading single quote (OWASP's
// advice), except an E.164 number ("+" and digits only, as recipients and
// our numbers are: validated, and a spreadsheet reads it as a number).
func neutralize(s string) string {
	if s == "" || !csvTrigger(s[0]) {
		return s
	}
	if s[0] == '+' && len(s) > 1 && e164.AllDigits(s[1:]) {
		return s
	}
	return "'" + s
}

// unneutralize undoes neutralize on an imported field, so an export
// imports back unchanged.
func unneutralize(s string) string {
	if len(s) > 1 && s[0] == '\'' && csvTrigger(s[1]) {
		return s[1:]
	}
	return s
}

// writeNeutral writes one exported record with every field neutralized;
// rec is overwritten.
func writeNeutral(cw *csv.Writer, rec []string) error {
	for i, f := range rec {
		rec[i] = neutralize(f)
	}
	return cw.Write(rec)
}

// ImportOptions describe where imported suppressions come from. Every
// imported change is recorded in the evidence log with source "import",
// the stated Source, ProofRef and Operator, and its line number.
type ImportOptions struct {
	// Tenant is used for rows without a tenant column (or an empty one).
	Tenant string
	// Source states where the list comes from (e.g. "previous_provider",
	// "crm_unsubscribes_2025"). Required.
	Source string
	// ProofRef points at the file or record the list was taken from.
	ProofRef string
	// Operator is who runs the import. Required.
	Operator string
	// Strict validates every row first and applies nothing if one is
	// malformed (the rows are spooled to a temporary file in Config.Dir's
	// import-spool folder, so memory stays constant). Otherwise valid rows are applied and malformed ones are
	// reported and skipped.
	Strict bool
	// MaxErrors is how many row errors the report keeps (default 1000; the
	// count includes them all).
	MaxErrors int
}

// ImportReport is the outcome of an Import.
type ImportReport struct {
	Rows       int        // data rows read
	Applied    int        // rows that changed consent (and were logged)
	Unchanged  int        // valid rows already in effect
	ErrorCount int        // malformed rows
	Errors     []RowError // the first MaxErrors of them, with line numbers
}

type importRow struct {
	line                    int
	tenant, ch, rcpt, scope string
	kind                    optOutKind
}

const importBatch = 512

// spoolDirName is the folder of Config.Dir holding strict imports' spools.
const spoolDirName = "import-spool"

// clearSpool removes spools a crash left behind.
func clearSpool(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, spoolDirName, "import-*.csv"))
	for _, f := range files {
		os.Remove(f)
	}
}

// Import reads suppression entries (opt-outs only: an import can never
// re-subscribe anyone, which needs per-recipient evidence through OptIn)
// and applies them in batches of 512 rows, each batch one atomic, synced
// change. Memory use is constant in the size of the input.
//
// Semantics: by default valid rows are applied and malformed rows are
// skipped and reported with their line numbers. Suppressions only ever
// block more, so applying the good rows of a partly bad file is the safe
// direction, and re-running a corrected file is idempotent (rows already in
// effect count as Unchanged and are not logged twice). With Strict, the
// whole file is validated first and nothing is applied if any row is bad
// (ErrImportRejected). A storage error or ctx ending stops the import: the
// batches already reported synced stay applied (see Applied), the batch in
// flight is all or nothing.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (ImportReport, error) {
	var rep ImportReport
	if strings.TrimSpace(opts.Source) == "" || strings.TrimSpace(opts.Operator) == "" {
		return rep, fmt.Errorf("%w: an import needs Source (where the list comes from) and Operator", ErrEvidenceRequired)
	}
	if err := errors.Join(checkField("Source", opts.Source, 256), checkField("ProofRef", opts.ProofRef, 1024),
		checkField("Operator", opts.Operator, 256)); err != nil {
		return rep, err
	}
	if opts.Tenant != "" {
		if _, err := s.tenant(opts.Tenant); err != nil {
			return rep, err
		}
	}
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = 1000
	}
	if !opts.Strict {
		return rep, s.importRows(ctx, r, opts, &rep, s.applyRows(ctx, opts, &rep))
	}
	// The spool lives beside the store (same filesystem: a full disk shows
	// up here, not in an unrelated os.TempDir()); Open clears leftovers.
	spoolDir := filepath.Join(s.cfg.Dir, spoolDirName)
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		return rep, fmt.Errorf("consent: import spool: %w", err)
	}
	spool, err := os.CreateTemp(spoolDir, "import-*.csv")
	if err != nil {
		return rep, fmt.Errorf("consent: import spool: %w", err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	bw := bufio.NewWriter(spool)
	cw := csv.NewWriter(bw)
	cw.Write([]string{"line", "tenant", "channel", "recipient", "scope", "class"})
	err = s.importRows(ctx, r, opts, &rep, func(rows []importRow) error {
		for _, x := range rows {
			cw.Write([]string{fmt.Sprint(x.line), x.tenant, x.ch, x.rcpt, x.scope, x.kind.class()})
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	cw.Flush()
	if err := errors.Join(cw.Error(), bw.Flush()); err != nil {
		return rep, fmt.Errorf("consent: import spool: %w", err)
	}
	if rep.ErrorCount > 0 {
		return rep, fmt.Errorf("%w: %d malformed rows (first: %v)", ErrImportRejected, rep.ErrorCount, rep.Errors[0])
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return rep, fmt.Errorf("consent: import spool: %w", err)
	}
	rows := rep.Rows
	rep.Rows = 0
	err = s.importRows(ctx, bufio.NewReader(spool), ImportOptions{Tenant: opts.Tenant, MaxErrors: opts.MaxErrors}, &rep,
		s.applyRows(ctx, opts, &rep))
	rep.Rows = rows
	return rep, err
}

// importRows parses r and hands valid rows to apply in batches.
func (s *Store) importRows(ctx context.Context, r io.Reader, opts ImportOptions, rep *ImportReport,
	apply func([]importRow) error) error {
	lim := &lineLimiter{r: r, max: MaxImportLine, line: 1}
	cr := csv.NewReader(lim)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		if lim.err != nil {
			return lim.err
		}
		return fmt.Errorf("%w: import: reading header: %v", ErrInvalidInput, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))] = i
	}
	if _, ok := col["recipient"]; !ok {
		return fmt.Errorf("%w: import: header has no recipient column", ErrInvalidInput)
	}
	field := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return unneutralize(strings.TrimSpace(rec[i]))
		}
		return ""
	}
	bad := func(line int, err error) {
		rep.ErrorCount++
		if len(rep.Errors) < opts.MaxErrors {
			rep.Errors = append(rep.Errors, RowError{Line: line, Err: err})
		}
	}
	batch := make([]importRow, 0, importBatch)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if lim.err != nil {
			return lim.err
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				rep.Rows++
				bad(pe.Line, pe.Err)
				continue
			}
			return fmt.Errorf("consent: import: %w", err)
		}
		rep.Rows++
		line, _ := cr.FieldPos(0)
		if l := field(rec, "line"); l != "" { // spooled rows keep their original line
			fmt.Sscan(l, &line)
		}
		if i := slices.IndexFunc(rec, func(f string) bool { return len(f) > MaxImportField }); i >= 0 {
			bad(line, fmt.Errorf("%w: field %d longer than %d bytes", ErrInvalidInput, i+1, MaxImportField))
			continue
		}
		row, err := s.parseRow(func(name string) string { return field(rec, name) }, opts.Tenant)
		if err != nil {
			bad(line, err)
			continue
		}
		row.line = line
		if len(batch) > 0 && (batch[0].tenant != row.tenant || len(batch) == importBatch) {
			if err := apply(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		batch = append(batch, row)
		if rep.Rows%4096 == 0 {
			if err := ctxErr(ctx); err != nil {
				return err
			}
		}
	}
	if len(batch) > 0 {
		return apply(batch)
	}
	return nil
}

func (s *Store) parseRow(get func(string) string, defTenant string) (importRow, error) {
	row := importRow{tenant: get("tenant"), ch: strings.ToLower(get("channel")), scope: get("scope")}
	if row.tenant == "" {
		row.tenant = defTenant
	}
	if defTenant != "" && row.tenant != defTenant {
		return row, fmt.Errorf("tenant %q differs from the import's tenant %q", truncate(row.tenant, 64), defTenant)
	}
	t, err := s.tenant(row.tenant)
	if err != nil {
		return row, err
	}
	if row.ch == "" {
		row.ch = ChannelSMS
	}
	if err := checkChannel(row.ch); err != nil {
		return row, err
	}
	if row.rcpt, err = t.recipient(row.ch, get("recipient")); err != nil {
		return row, err
	}
	switch row.scope {
	case "", "tenant", "*":
		row.scope = ""
	default:
		if err := checkSender(row.scope); err != nil {
			return row, err
		}
		row.scope = senderKey(row.scope)
	}
	switch c := strings.ToLower(get("class")); c {
	case "", "all", "opt_out", "opted_out":
		row.kind = kindAll
	case "all_senders", "opt_out_all", "stopall":
		row.kind, row.scope = kindAllFamily, ""
	case "marketing":
		row.kind = kindMarketing
	case "marketing_whatsapp":
		row.kind = kindMarketingWA
	default:
		return row, fmt.Errorf("class %q: want all, all_senders, marketing or marketing_whatsapp", truncate(c, 32))
	}
	if st := get("state"); st != "" {
		if v, ok := parseState(st); !ok || v == StateOptedIn || v == StatePending {
			return row, fmt.Errorf("state %q: an import can only record opt-outs", truncate(st, 32))
		}
	}
	if since := get("since"); since != "" {
		if _, err := time.Parse(time.RFC3339, since); err != nil {
			return row, fmt.Errorf("since %q: not RFC 3339", truncate(since, 40))
		}
	}
	return row, nil
}

// applyRows returns the batch applier of an import.
func (s *Store) applyRows(ctx context.Context, opts ImportOptions, rep *ImportReport) func([]importRow) error {
	return func(rows []importRow) error {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if err := s.begin(); err != nil {
			return err
		}
		defer s.end()
		t := s.tenants[rows[0].tenant]
		stripes := make([]int, 0, len(rows))
		for _, r := range rows {
			stripes = append(stripes, s.stripe(r.tenant, r.rcpt))
		}
		slices.Sort(stripes)
		stripes = slices.Compact(stripes)
		for _, i := range stripes { // ascending order: no deadlock between importers
			s.stripes[i].Lock()
		}
		defer func() {
			for _, i := range stripes {
				s.stripes[i].Unlock()
			}
		}()
		c := s.newChange(t)
		defer c.discard()
		applied := 0
		for _, r := range rows {
			var res Result
			tr := transition{chans: []string{r.ch}, sender: r.scope, rcpt: r.rcpt, exactScope: true, noArchive: true,
				org: origin{Evidence{Source: SourceImport, Operator: opts.Operator, ConsentSource: opts.Source,
					ProofRef: opts.ProofRef, Detail: fmt.Sprintf("import line %d", r.line)}}}
			if err := c.optOut(&res, tr, r.kind); err != nil {
				return err
			}
			if res.Changed {
				applied++
			} else {
				rep.Unchanged++
			}
		}
		if err := c.commit(); err != nil {
			return err
		}
		rep.Applied += applied
		return nil
	}
}

// ExportOptions select what Export and ExportEvidence write.
type ExportOptions struct {
	Tenant string // only this tenant; empty for all

	// Channel, if set, keeps that channel's entries only.
	Channel string
	// Since and Until, if set, keep entries of that time range [Since,
	// Until): the opt-out time of a suppression entry (entries without
	// one are left out), the time of an evidence entry.
	Since, Until time.Time
	// Limit, if above 0, ends a page after that many store entries (a
	// suppression record can make more than one row); Cursor, a previous
	// page's next cursor, starts the page after it. Pages follow the key
	// order, so entries written meanwhile after the cursor appear on later
	// pages and nothing is listed twice.
	Limit  int
	Cursor []byte
}

// inRange reports whether t is in [since, until) (zero bounds are open).
func inRange(t, since, until time.Time) bool {
	return (since.IsZero() || !t.Before(since)) && (until.IsZero() || t.Before(until))
}

// pageStart checks a cursor against the scan's prefix and returns where a
// forward scan starts.
func pageStart(pfx, cursor []byte) ([]byte, error) {
	if cursor == nil {
		return pfx, nil
	}
	if !bytes.HasPrefix(cursor, pfx) || len(cursor) == len(pfx) {
		return nil, fmt.Errorf("%w: cursor is not from this listing", ErrInvalidInput)
	}
	return cursor, nil
}

// Export writes the suppression entries (records with an opt-out) as CSV
// (see suppressionHeader), streaming from a consistent snapshot.
func (s *Store) Export(ctx context.Context, w io.Writer, opts ExportOptions) (int, error) {
	n, _, err := s.ExportPage(ctx, w, opts)
	return n, err
}

// ExportPage is Export with the page's next cursor: nil on the last page.
func (s *Store) ExportPage(ctx context.Context, w io.Writer, opts ExportOptions) (n int, next []byte, err error) {
	if err := s.failedErr(); err != nil {
		return 0, nil, err
	}
	pfx := []byte{pfxRecord, 0}
	if opts.Tenant != "" {
		if _, err := s.tenant(opts.Tenant); err != nil {
			return 0, nil, err
		}
		pfx = append(append(pfx, opts.Tenant...), 0)
	}
	start, err := pageStart(pfx, opts.Cursor)
	if err != nil {
		return 0, nil, err
	}
	cw := csv.NewWriter(w)
	cw.Write(suppressionHeader)
	entries := 0
	var last []byte // key of the page's last entry
	err = s.view(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = pfx
		it := txn.NewIterator(o)
		defer it.Close()
		var r rec
		for it.Seek(start); it.Valid(); it.Next() {
			if opts.Cursor != nil && bytes.Equal(it.Item().Key(), opts.Cursor) {
				continue
			}
			tn, ch, rcpt, scope, err := parseRecordKey(it.Item().Key())
			if err != nil {
				return err
			}
			if opts.Channel != "" && ch != opts.Channel {
				continue
			}
			if err := it.Item().Value(r.unmarshal); err != nil {
				return fmt.Errorf("%w: record: %v", ErrStorage, err)
			}
			if (!opts.Since.IsZero() || !opts.Until.IsZero()) && (r.optedOutAt == 0 || !inRange(time.Unix(0, r.optedOutAt), opts.Since, opts.Until)) {
				continue
			}
			if opts.Limit > 0 {
				if entries == opts.Limit {
					next = last // more follow
					return nil
				}
				last = it.Item().KeyCopy(last[:0])
			}
			entries++
			since := ""
			if r.optedOutAt != 0 {
				since = time.Unix(0, r.optedOutAt).UTC().Format(time.RFC3339)
			}
			for _, k := range []optOutKind{kindAllFamily, kindAll, kindMarketing, kindMarketingWA} {
				f := k.flags()
				if r.flags&f != f || (k == kindAll && r.flags&fAllFamily != 0) {
					continue
				}
				writeNeutral(cw, []string{tn, ch, rcpt, scopeName(scope), k.class(), r.state.String(), since})
				n++
			}
			if n%4096 == 0 {
				cw.Flush()
				if err := errors.Join(cw.Error(), ctxErr(ctx)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	cw.Flush()
	return n, next, errors.Join(err, cw.Error())
}

// ExportEvidence writes the evidence log as CSV (see evidenceHeader), per
// tenant, channel and recipient, oldest first.
func (s *Store) ExportEvidence(ctx context.Context, w io.Writer, opts ExportOptions) (int, error) {
	n, _, err := s.ExportEvidencePage(ctx, w, opts)
	return n, err
}

// ExportEvidencePage is ExportEvidence with the page's next cursor: nil
// on the last page.
func (s *Store) ExportEvidencePage(ctx context.Context, w io.Writer, opts ExportOptions) (n int, next []byte, err error) {
	if err := s.failedErr(); err != nil {
		return 0, nil, err
	}
	pfx := []byte{pfxEvidence, 0}
	if opts.Tenant != "" {
		if _, err := s.tenant(opts.Tenant); err != nil {
			return 0, nil, err
		}
		pfx = append(append(pfx, opts.Tenant...), 0)
	}
	start, err := pageStart(pfx, opts.Cursor)
	if err != nil {
		return 0, nil, err
	}
	cw := csv.NewWriter(w)
	cw.Write(evidenceHeader)
	var last []byte // key of the page's last entry
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	err = s.view(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = pfx
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek(start); it.Valid(); it.Next() {
			if opts.Cursor != nil && bytes.Equal(it.Item().Key(), opts.Cursor) {
				continue
			}
			var e Evidence
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("%w: evidence: %v", ErrStorage, err)
			}
			if opts.Channel != "" && e.Channel != opts.Channel || !inRange(e.Time, opts.Since, opts.Until) {
				continue
			}
			if opts.Limit > 0 {
				if n == opts.Limit {
					next = last // more follow
					return nil
				}
				last = it.Item().KeyCopy(last[:0])
			}
			writeNeutral(cw, []string{ts(e.Time), e.Tenant, e.Channel, e.Sender, e.Scope, e.Recipient, e.Old, e.New, e.Class,
				string(e.Source), e.Keyword, e.Normalized, e.Lang, e.Text, e.MessageID, e.Operator, e.ConsentSource,
				e.ProofRef, e.Detail, ts(e.Received), e.MatchMode, e.Decoding})
			n++
			if n%4096 == 0 {
				cw.Flush()
				if err := errors.Join(cw.Error(), ctxErr(ctx)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	cw.Flush()
	return n, next, errors.Join(err, cw.Error())
}
