package whatsapp

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/whatsapp/whatsapptest"
)

// inboundAt is a signed-ready inbound text webhook from 16505551234 at ts.
func inboundAt(id string, ts time.Time) []byte {
	return whatsapptest.InboundText(meta, "16505551234", id, "hello", ts)
}

func TestParseWebhook(t *testing.T) {
	// The reference example of whatsapp.md §6.2, byte for byte.
	ref := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{
  "messaging_product":"whatsapp",
  "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
  "contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],
  "messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
    "timestamp":"1749416383","type":"text","text":{"body":"STOP"}}]}}]}]}`)
	evs, st, err := ParseWebhook(ref, ParseOptions{})
	requireNoErr(t, err)
	testutil.RequireEqual(t, st, ParseStats{}, "stats")
	testutil.RequireEqual(t, len(evs), 1, "events")
	m := evs[0].Message
	testutil.RequireEqual(t, m.Text, "STOP", "body")
	testutil.RequireEqual(t, m.ProfileName, "Sheena Nelson", "profile")
	testutil.RequireEqual(t, m.Timestamp.Unix(), int64(1749416383), "timestamp")
	testutil.RequireEqual(t, evs[0].WABAID, "102290129340398", "waba id")

	// user_preferences has an integer timestamp.
	evs, _, err = ParseWebhook(whatsapptest.UserPreference(meta, "16505551234", "stop", time.Unix(1731705721, 0)), ParseOptions{})
	requireNoErr(t, err)
	testutil.RequireEqual(t, evs[0].Preference.Timestamp.Unix(), int64(1731705721), "pref timestamp")
	testutil.RequireEqual(t, evs[0].Preference.MarketingStop(), true, "stop")

	// Non-ASCII arrives \u-escaped and decodes to the original text.
	evs, _, err = ParseWebhook(whatsapptest.InboundText(meta, "1", "wamid.u", "Grüße 👋", time.Now()), ParseOptions{})
	requireNoErr(t, err)
	testutil.RequireEqual(t, evs[0].Message.Text, "Grüße 👋", "unicode body")

	// System number change, unsupported type and value.errors.
	sys := fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":%q},
		"messages":[{"from":"16505551234","id":"wamid.sys","timestamp":"1","type":"system","system":{"body":"changed","wa_id":"16505559999","type":"user_changed_number"}},
		            {"from":"16505551234","id":"wamid.uns","timestamp":"1","type":"unsupported","errors":[{"code":131051,"title":"Message type unknown"}]}],
		"errors":[{"code":130429,"title":"Rate limit hit","message":"(#130429) Rate limit hit","error_data":{"details":"x"}}]}}]}]}`, testPID)
	evs, _, err = ParseWebhook([]byte(sys), ParseOptions{})
	requireNoErr(t, err)
	testutil.RequireEqual(t, len(evs), 3, "events")
	testutil.RequireEqual(t, evs[0].Message.NewWaID, "16505559999", "new wa_id")
	testutil.RequireEqual(t, evs[0].Message.OpensWindow(), false, "system message does not open the window")
	testutil.RequireEqual(t, evs[1].Message.Errors[0].Code, 131051, "unsupported error")
	testutil.RequireEqual(t, evs[2].Kind, KindError, "value.errors")
	testutil.RequireEqual(t, evs[2].Errors[0].Details, "x", "error details")

	// Other fields are ignored, not skipped.
	_, st, err = ParseWebhook([]byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"account_update","value":{}}]}]}`), ParseOptions{})
	requireNoErr(t, err)
	testutil.RequireEqual(t, st.Ignored, 1, "ignored")
}

// FuzzWebhook parses arbitrary bodies: no panic, and whatever is returned is usable.
func FuzzWebhook(f *testing.F) {
	f.Add(whatsapptest.InboundText(meta, "16505551234", "wamid.a", "STOP", time.Unix(1749416383, 0)))
	f.Add(whatsapptest.UserPreference(meta, "16505551234", "resume", time.Unix(1731705721, 0)))
	f.Add(whatsapptest.StatusWebhook(meta, whatsapptest.Status{ID: "wamid.s", Status: "failed", RecipientID: "1", ErrorCode: 131050, Timestamp: time.Unix(1751142888, 0)}))
	f.Add([]byte(`{"entry":[{"changes":[{"field":"messages","value":{"metadata":{"phone_number_id":1}}}]}]}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[]}`))
	// Sender forms: a Mexican 521 wa_id, a user_id only, neither, a number change.
	f.Add(whatsapptest.InboundText(meta, "5215512345678", "wamid.mx", "STOP", time.Unix(1749416383, 0)))
	f.Add(whatsapptest.InboundTextUser(meta, "", "US.13491208655302741918", "wamid.u", "STOP", time.Unix(1749416383, 0)))
	f.Add(whatsapptest.InboundTextUser(meta, "", "", "", "STOP", time.Unix(1749416383, 0)))
	f.Add(whatsapptest.InboundWebhook(meta, whatsapptest.SystemNumberChange("16505551234", "wamid.c", "16505559999", time.Unix(1749416383, 0))))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, known := range []map[string]struct{}{nil, {testPID: {}}} {
			evs, _, err := ParseWebhook(body, ParseOptions{Known: known})
			if err != nil && len(evs) > 0 {
				t.Fatal("events returned with an error")
			}
			for i := range evs {
				ev := &evs[i]
				_ = ev.Signal()
				if len(ev.dedupKey()) <= len(dedupPrefix) {
					t.Fatalf("empty dedup key for %+v", ev)
				}
				if ev.Kind == KindMessage {
					_ = ev.Message.KeywordText()
					// A message is never dropped for its sender: it reaches the handler, which keys
					// it or keeps it as a dead letter; its dedup key names it.
					if len(ev.dedupKey()) <= len(dedupPrefix)+len("m/") {
						t.Fatalf("message without a dedup key: %+v", ev.Message)
					}
				}
			}
		}
	})
}

// TestFuzzCorpusCommitted keeps the seed corpus in testdata/fuzz/FuzzWebhook present.
func TestFuzzCorpusCommitted(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzWebhook", "*"))
	if len(files) < 5 {
		t.Fatalf("seed corpus has %d files", len(files))
	}
	for _, f := range files {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
}

// A message whose sender has only a user_id, or nothing, is an event (the
// handler keys it or keeps it), not a skipped item acknowledged and forgotten.
func TestParseSenderForms(t *testing.T) {
	for _, tc := range []struct{ waID, userID string }{{"", "US.1"}, {"", ""}, {"5215512345678", "MX.2"}} {
		evs, st, err := ParseWebhook(whatsapptest.InboundTextUser(meta, tc.waID, tc.userID, "wamid.p", "STOP", time.Unix(1749416383, 0)), ParseOptions{})
		if err != nil || st.Skipped != 0 || len(evs) != 1 || evs[0].Message == nil {
			t.Fatalf("%+v: %v %+v %v", tc, evs, st, err)
		}
		if m := evs[0].Message; m.From != tc.waID || m.UserID != tc.userID || m.Text != "STOP" {
			t.Fatalf("%+v: message %+v", tc, m)
		}
	}
}
