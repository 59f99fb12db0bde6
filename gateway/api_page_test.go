package gateway

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The history pages with next_cursor: following the cursors lists every
// entry once, newest first, also when new evidence is written between
// pages; since, until and channel filter it.
func TestConsentHistoryPagination(t *testing.T) {
	env := newEnv(t)
	const rcpt = "+15145550191"
	for i := 0; i < 5; i++ {
		action := "opt-out"
		if i%2 == 1 {
			action = "opt-in"
		}
		if code, m := env.http("POST", "/v1/consent/"+rcpt+"/"+action, acmeToken, `{"source":"test","proof_ref":"p-`+action+`"}`); code != 200 {
			t.Fatalf("%s: %d %v", action, code, m)
		}
	}
	type entry struct {
		Time time.Time `json:"time"`
		New  string    `json:"new"`
	}
	page := func(query string) ([]entry, string) {
		t.Helper()
		r := env.do("GET", "/v1/consent/"+rcpt+"/history?"+query, acmeToken, "")
		if r.status != 200 {
			t.Fatalf("history?%s: %d %s", query, r.status, r.body)
		}
		var b struct {
			Evidence   []entry `json:"evidence"`
			NextCursor string  `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(r.body), &b); err != nil {
			t.Fatal(err)
		}
		return b.Evidence, b.NextCursor
	}
	all, next := page("limit=1000")
	if len(all) < 5 || next != "" {
		t.Fatalf("whole history: %d entries, next %q", len(all), next)
	}
	var got []entry
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > len(all) {
			t.Fatal("pagination does not end")
		}
		es, next := page("limit=2&cursor=" + url.QueryEscape(cursor))
		if len(es) > 2 {
			t.Fatalf("page of %d entries with limit=2", len(es))
		}
		got = append(got, es...)
		if pages == 0 {
			// New evidence between pages is newer than the cursor: it
			// does not shift the pages that follow.
			if code, m := env.http("POST", "/v1/consent/"+rcpt+"/opt-out", acmeToken, ""); code != 200 {
				t.Fatalf("opt-out: %d %v", code, m)
			}
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(got) != len(all) {
		t.Fatalf("pages listed %d entries, the history has %d", len(got), len(all))
	}
	for i := range all {
		if !got[i].Time.Equal(all[i].Time) || got[i].New != all[i].New {
			t.Fatalf("entry %d: paged %+v, whole %+v", i, got[i], all[i])
		}
	}
	// since and until: [since, until).
	mid := all[len(all)/2].Time
	older, _ := page("limit=1000&until=" + url.QueryEscape(mid.Format(time.RFC3339Nano)))
	newer, _ := page("limit=1000&since=" + url.QueryEscape(mid.Format(time.RFC3339Nano)))
	now, _ := page("limit=1000")
	if len(older)+len(newer) != len(now) || len(older) == 0 || len(newer) == 0 {
		t.Fatalf("until gave %d, since gave %d, of %d", len(older), len(newer), len(now))
	}
	for _, e := range older {
		if !e.Time.Before(mid) {
			t.Fatalf("until=%s listed %s", mid, e.Time)
		}
	}
	if wa, _ := page("channel=whatsapp"); len(wa) != 0 {
		t.Fatalf("whatsapp history of an SMS-only recipient: %v", wa)
	}
	for _, q := range []string{"cursor=!!", "since=yesterday", "limit=0", "limit=1001"} {
		if r := env.do("GET", "/v1/consent/"+rcpt+"/history?"+q, acmeToken, ""); r.status != 400 {
			t.Fatalf("history?%s: %d %s", q, r.status, r.body)
		}
	}
	// A cursor of another recipient's history is refused.
	_, other := page("limit=1")
	if r := env.do("GET", "/v1/consent/+15145550192/history?cursor="+other, acmeToken, ""); r.status != 400 || !strings.Contains(r.body, "cursor") {
		t.Fatalf("foreign cursor: %d %s", r.status, r.body)
	}
}

// The export pages with X-Next-Cursor and filters by channel and time.
func TestConsentExportPagination(t *testing.T) {
	env := newEnv(t)
	for _, r := range []string{"+15145550193", "+15145550194", "+15145550195"} {
		if code, m := env.http("POST", "/v1/consent/"+r+"/opt-out", acmeToken, ""); code != 200 {
			t.Fatalf("opt-out: %d %v", code, m)
		}
	}
	rows := func(body string) []string {
		lines := strings.Split(strings.TrimSpace(body), "\n")
		return lines[1:] // the header
	}
	for _, what := range []string{"", "evidence"} {
		whole := env.do("GET", "/v1/consent/export?what="+what, acmeToken, "")
		want := rows(whole.body)
		if whole.status != 200 || len(want) < 3 {
			t.Fatalf("export %q: %d %s", what, whole.status, whole.body)
		}
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > len(want) {
				t.Fatal("export pagination does not end")
			}
			r := env.do("GET", "/v1/consent/export?limit=1&what="+what+"&cursor="+url.QueryEscape(cursor), acmeToken, "")
			if r.status != 200 {
				t.Fatalf("export page: %d %s", r.status, r.body)
			}
			got = append(got, rows(r.body)...)
			if cursor = r.header.Get("X-Next-Cursor"); cursor == "" {
				break
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("export %q by pages:\n%s\nwhole:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if r := env.do("GET", "/v1/consent/export?channel=whatsapp&what="+what, acmeToken, ""); len(rows(r.body)) != 0 {
			t.Fatalf("whatsapp export %q: %s", what, r.body)
		}
		future := url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))
		if r := env.do("GET", "/v1/consent/export?since="+future+"&what="+what, acmeToken, ""); len(rows(r.body)) != 0 {
			t.Fatalf("export %q since the future: %s", what, r.body)
		}
		if r := env.do("GET", "/v1/consent/export?until="+future+"&what="+what, acmeToken, ""); len(rows(r.body)) != len(want) {
			t.Fatalf("export %q until the future: %s", what, r.body)
		}
	}
	if r := env.do("GET", "/v1/consent/export?cursor=AAAA", acmeToken, ""); r.status != 400 {
		t.Fatalf("bad cursor: %d %s", r.status, r.body)
	}
}
