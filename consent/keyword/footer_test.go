package keyword

import (
	"strings"
	"testing"
	"unicode"

	"github.com/optgate/optgate/internal/testutil"
)

// gsm7Basic and gsm7Ext are the GSM 03.38 default alphabet (without ESC)
// and its extension table, for counting septets in tests.
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Ext = "\f^{}\\[~]|€"
)

// septets returns the GSM-7 length of s, or -1 if s has a character outside
// GSM-7.
func septets(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case strings.ContainsRune(gsm7Basic, r):
			n++
		case strings.ContainsRune(gsm7Ext, r):
			n += 2
		default:
			return -1
		}
	}
	return n
}

func TestSeptets(t *testing.T) {
	testutil.RequireEqual(t, septets("Hello"), 5, "ascii")
	testutil.RequireEqual(t, septets("a{b}€"), 8, "extension")
	testutil.RequireEqual(t, septets("Répondez"), 8, "é")
	testutil.RequireEqual(t, septets("arrêt"), -1, "ê")
	testutil.RequireEqual(t, len([]rune(gsm7Basic)), 127, "basic table size")
}

func TestFooter(t *testing.T) {
	for _, lang := range Languages() {
		t.Run(lang, func(t *testing.T) {
			f := Footer(lang)
			if f == "" {
				t.Fatal("no footer")
			}
			if n := septets(f); n < 0 || n > 40 {
				t.Errorf("%q: %d septets", f, n)
			}
			if !SaysHowToOptOut(f) {
				t.Errorf("SaysHowToOptOut(%q) = false", f)
			}
			if !SaysHowToOptOut("Your appointment is at 10:00. " + f) {
				t.Errorf("SaysHowToOptOut(... %q) = false", f)
			}
		})
	}
	testutil.RequireEqual(t, Footer("en"), "Reply STOP to opt out", "en")
	testutil.RequireEqual(t, Footer("fr"), "Répondez STOP pour vous désabonner", "fr")
	testutil.RequireEqual(t, Footer("fr-CA"), Footer("fr"), "fr-CA")
	testutil.RequireEqual(t, Footer("PT_br"), Footer("pt"), "PT_br")
	testutil.RequireEqual(t, Footer("sv"), Footer("en"), "unknown")
	testutil.RequireEqual(t, Footer(""), Footer("en"), "empty")
}

func TestSaysHowToOptOut(t *testing.T) {
	for _, in := range []string{
		"Reply STOP to opt out",
		"reply stop to unsubscribe",
		"Text STOP to 12345 to unsubscribe.",
		"Txt STOP 2 end",
		"STOP to opt out",
		"Sale ends Sunday! STOP to unsubscribe",
		"Msg&data rates may apply. Reply HELP for help, STOP to cancel.",
		"Reply with STOP to stop receiving messages",
		"Reply 'STOP' to opt-out",
		"Reply OPT OUT to stop",
		"Opt out: reply STOP",
		"To opt out, text END",
		"Unsubscribe: STOP",
		"STOP = opt out",
		"Répondez STOP pour vous désabonner",
		"Répondez ARRET pour ne plus recevoir de messages",
		"Répondez ARRÊT",
		"STOP SMS au 36180",
		"Stop au 36111",
		"Antworten Sie mit STOPP, um sich abzumelden",
		"STOPP zum Abmelden",
		"Zum Abmelden STOPP senden",
		"STOPP an 12345",
		"Responde BAJA para darte de baja",
		"Envía STOP al 1234",
		"Rispondi STOP per annullare l'iscrizione",
		"Responda SAIR para cancelar",
		"Stuur STOP naar 1234",
		"Antwoord STOP om af te melden",
		"Svar STOP for at afmelde",
		"Send STOP til 1234",
	} {
		t.Run(in, func(t *testing.T) {
			if !SaysHowToOptOut(in) {
				t.Errorf("SaysHowToOptOut(%q) = false", in)
			}
		})
	}
	for _, in := range []string{
		"",
		"STOP",
		"Don't stop believing",
		"Stop by the office tomorrow",
		"Big sale! Don't stop shopping",
		"Stop for a coffee at our store",
		"The bus stop is closed",
		"Arrêt de bus fermé",
		"Your code is 1234",
		"Reply YES to confirm",
		"We will stop the service to upgrade",
		"Stop to think about it",
		"The end is near",
		"Reply HELP for help",
		strings.Repeat("x", 100000),
	} {
		t.Run("not/"+in[:min(len(in), 40)], func(t *testing.T) {
			if SaysHowToOptOut(in) {
				t.Errorf("SaysHowToOptOut(%q) = true", in)
			}
		})
	}
	long := strings.Repeat("Lorem ipsum dolor sit amet. ", 500) + "Reply STOP to opt out"
	if !SaysHowToOptOut(long) {
		t.Error("long message: footer at the end not found")
	}
}

func TestTemplates(t *testing.T) {
	const brand, help = "Acme Recruiting", "help@acme.example"
	fill := strings.NewReplacer("{brand}", brand, "{help}", help)
	m := Default()
	for _, lang := range Languages() {
		tp := DefaultTemplates(lang)
		for name, text := range map[string]string{
			"OptOut": tp.OptOut, "MarketingOptOut": tp.MarketingOptOut, "OptIn": tp.OptIn, "Help": tp.Help,
			"AttestationPrompt": tp.AttestationPrompt, "Reprompt": tp.Reprompt,
			"AttestationConfirm": tp.AttestationConfirm, "Disclaimer": tp.Disclaimer,
		} {
			t.Run(lang+"/"+name, func(t *testing.T) {
				if !strings.Contains(text, "{brand}") {
					t.Errorf("%q has no {brand}", text)
				}
				if name == "Help" && !strings.Contains(text, "{help}") {
					t.Errorf("%q has no {help}", text)
				}
				out := fill.Replace(text)
				if strings.ContainsAny(out, "{}") {
					t.Errorf("%q: unknown placeholder", out)
				}
				n := septets(out)
				if n < 0 || n > 160 {
					t.Errorf("%q: %d septets (want GSM-7, at most 160)", out, n)
				}
				if name != "OptOut" && !SaysHowToOptOut(out) {
					t.Errorf("%q does not say how to opt out", out)
				}
				// Every keyword the text advertises (an upper-case word other
				// than SMS) is one the default table knows.
				for _, w := range strings.FieldsFunc(out, func(r rune) bool { return !unicode.IsLetter(r) }) {
					if len([]rune(w)) < 2 || w != strings.ToUpper(w) || w == "SMS" {
						continue
					}
					if _, ok := m.Match(w); !ok {
						t.Errorf("%q advertises %q, which is not a keyword", out, w)
					}
				}
			})
		}
	}
	en := DefaultTemplates("en")
	for _, s := range []string{"Msg&data rates may apply", "Reply STOP to opt out", "{help}"} {
		if !strings.Contains(en.Help, s) {
			t.Errorf("en Help %q lacks %q", en.Help, s)
		}
	}
	for _, lang := range Languages() {
		if tp := DefaultTemplates(lang); tp.MarketingOptOut == "" || tp.MarketingOptOut == tp.OptOut {
			t.Errorf("%s: no marketing opt-out confirmation of its own", lang)
		}
	}
	if !strings.Contains(en.OptOut, "START") {
		t.Errorf("en OptOut %q does not offer START", en.OptOut)
	}
	testutil.RequireEqual(t, DefaultTemplates("xx"), en, "unknown language")
	testutil.RequireEqual(t, DefaultTemplates("de-AT"), DefaultTemplates("de"), "de-AT")
}
