package keyword

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/optgate/optgate/internal/testutil"
)

// want is the expected match of a default keyword.
type want struct {
	word      string // as typed (may carry accents)
	class     Class
	keyword   string // canonical
	lang      string
	universal bool
}

// defaultWants lists every default keyword of consent.md §12 with the
// expected result: one row per spelling.
var defaultWants = []want{
	{"STOP", OptOut, "STOP", "en", true},
	{"STOPALL", OptOutAll, "STOPALL", "en", false},
	{"STOP ALL", OptOutAll, "STOP ALL", "en", false},
	{"UNSUBSCRIBE", OptOut, "UNSUBSCRIBE", "en", false},
	{"CANCEL", OptOut, "CANCEL", "en", false},
	{"END", OptOut, "END", "en", false},
	{"QUIT", OptOut, "QUIT", "en", false},
	{"REVOKE", OptOut, "REVOKE", "en", false},
	{"OPTOUT", OptOut, "OPTOUT", "en", false},
	{"OPT OUT", OptOut, "OPT OUT", "en", false},
	{"OPT-OUT", OptOut, "OPT OUT", "en", false},
	{"REMOVE", OptOut, "REMOVE", "en", false},
	{"START", OptIn, "START", "en", true},
	{"UNSTOP", OptIn, "UNSTOP", "en", false},
	{"SUBSCRIBE", OptIn, "SUBSCRIBE", "en", false},
	{"JOIN", OptIn, "JOIN", "en", false},
	{"RESUME", OptIn, "RESUME", "en", false},
	{"CONTINUE", OptIn, "CONTINUE", "en", false},
	{"BEGIN", OptIn, "BEGIN", "en", false},
	{"YES", Yes, "YES", "en", false},
	{"HELP", Help, "HELP", "en", true},
	{"INFO", Help, "INFO", "en", true},
	{"STOP PROMOTIONS", MarketingOptOut, "STOP PROMOTIONS", "en", false},

	{"ARRET", OptOut, "ARRET", "fr", false},
	{"ARRÊT", OptOut, "ARRET", "fr", false},
	{"ARRETE", OptOut, "ARRETE", "fr", false},
	{"ARRÊTE", OptOut, "ARRETE", "fr", false},
	{"ARRETT", OptOut, "ARRETT", "fr", false},
	{"QUITTER", OptOut, "QUITTER", "fr", false},
	{"ANNULER", OptOut, "ANNULER", "fr", false},
	{"DÉSABONNER", OptOut, "DESABONNER", "fr", false},
	{"DESABONNER", OptOut, "DESABONNER", "fr", false},
	{"FIN", OptOut, "FIN", "fr", false},
	{"REPRENDRE", OptIn, "REPRENDRE", "fr", false},
	{"ABONNER", OptIn, "ABONNER", "fr", false},
	{"AIDE", Help, "AIDE", "fr", false},
	{"OUI", Yes, "OUI", "fr", false},
	{"ARRÊTER LES PROMOTIONS", MarketingOptOut, "ARRETER LES PROMOTIONS", "fr", false},

	{"STOPP", OptOut, "STOPP", "de", false},
	{"BEENDEN", OptOut, "BEENDEN", "de", false},
	{"ABBRECHEN", OptOut, "ABBRECHEN", "de", false},
	{"ABMELDEN", OptOut, "ABMELDEN", "de", false},
	{"ENDE", OptOut, "ENDE", "de", false},
	{"ANMELDEN", OptIn, "ANMELDEN", "de", false},
	{"HILFE", Help, "HILFE", "de", false},
	{"JA", Yes, "JA", "de", false},
	{"WERBUNG STOPPEN", MarketingOptOut, "WERBUNG STOPPEN", "de", false},

	{"NO MAS", OptOut, "NO MAS", "es", false},
	{"NO MÁS", OptOut, "NO MAS", "es", false},
	{"BAJA", OptOut, "BAJA", "es", false},
	{"PARAR", OptOut, "PARAR", "es", false},
	{"CANCELAR", OptOut, "CANCELAR", "es", false},
	{"ALTA", OptIn, "ALTA", "es", false},
	{"INICIAR", OptIn, "INICIAR", "es", false},
	{"AYUDA", Help, "AYUDA", "es", false},
	{"SI", Yes, "SI", "es", false},
	{"SÍ", Yes, "SI", "es", false},
	{"DETENER PROMOCIONES", MarketingOptOut, "DETENER PROMOCIONES", "es", false},

	{"BASTA", OptOut, "BASTA", "it", false},
	{"ANNULLA", OptOut, "ANNULLA", "it", false},
	{"CANCELLA", OptOut, "CANCELLA", "it", false},
	{"DISISCRIVI", OptOut, "DISISCRIVI", "it", false},
	{"ISCRIVI", OptIn, "ISCRIVI", "it", false},
	{"AIUTO", Help, "AIUTO", "it", false},
	{"SÌ", Yes, "SI", "es", false},
	{"INTERROMPI PROMOZIONI", MarketingOptOut, "INTERROMPI PROMOZIONI", "it", false},

	{"SAIR", OptOut, "SAIR", "pt", false},
	{"DESCADASTRAR", OptOut, "DESCADASTRAR", "pt", false},
	{"VOLTAR", OptIn, "VOLTAR", "pt", false},
	{"AJUDA", Help, "AJUDA", "pt", false},
	{"SIM", Yes, "SIM", "pt", false},
	{"PARAR PROMOÇÕES", MarketingOptOut, "PARAR PROMOCOES", "pt", false},

	{"STOPPEN", OptOut, "STOPPEN", "nl", false},
	{"AFMELDEN", OptOut, "AFMELDEN", "nl", false},
	{"UITSCHRIJVEN", OptOut, "UITSCHRIJVEN", "nl", false},
	{"AANMELDEN", OptIn, "AANMELDEN", "nl", false},
	{"HULP", Help, "HULP", "nl", false},
	{"PROMOTIES STOPPEN", MarketingOptOut, "PROMOTIES STOPPEN", "nl", false},

	{"AFMELD", OptOut, "AFMELD", "da", false},
	{"FRAMELD", OptOut, "FRAMELD", "da", false},
	{"TILMELD", OptIn, "TILMELD", "da", false},
	{"HJÆLP", Help, "HJÆLP", "da", false},
	{"HJAELP", Help, "HJAELP", "da", false},
	{"STOP KAMPAGNER", MarketingOptOut, "STOP KAMPAGNER", "da", false},
}

// variants returns spellings of w that must all match like w.
func variants(w string) map[string]string {
	lower := strings.ToLower(w)
	title := string(unicode.ToUpper([]rune(lower)[0])) + string([]rune(lower)[1:])
	v := map[string]string{
		"as-is":        w,
		"lower":        lower,
		"title":        title,
		"period":       w + ".",
		"bangs":        lower + "!!",
		"spaces":       "  " + title + " \t\r\n",
		"emoji":        "  " + title + " 🙏 ",
		"emoji-zwj":    "👍🏽 " + w + " 👨\u200d👩\u200d👧",
		"guillemets":   "«" + w + "»",
		"quotes":       "\"" + lower + "\"",
		"curly-quotes": "“" + w + "”",
		"single-quote": "'" + w + "'",
		"zero-width":   "\u200b\ufeff" + w + "\u2060\u200d",
		"nbsp":         "\u00a0" + w + "\u00a0",
		"full-width":   fullWidth(w),
		"fw-lower":     fullWidth(lower),
		"inner-spaces": strings.ReplaceAll(w, " ", "   "),
		"inner-hyphen": strings.ReplaceAll(w, " ", "-"),
		"newline":      strings.ReplaceAll(w, " ", "\n"),
	}
	// Unaccented spelling, and a decomposed (NFD-style) accented one.
	var plain, nfd strings.Builder
	for _, r := range w {
		switch r {
		case 'Ê':
			plain.WriteRune('E')
			nfd.WriteString("E\u0302")
		case 'É':
			plain.WriteRune('E')
			nfd.WriteString("E\u0301")
		case 'Á':
			plain.WriteRune('A')
			nfd.WriteString("A\u0301")
		case 'Í':
			plain.WriteRune('I')
			nfd.WriteString("I\u0301")
		case 'Ì':
			plain.WriteRune('I')
			nfd.WriteString("I\u0300")
		case 'Ç':
			plain.WriteRune('C')
			nfd.WriteString("C\u0327")
		case 'Õ':
			plain.WriteRune('O')
			nfd.WriteString("O\u0303")
		default:
			plain.WriteRune(r)
			nfd.WriteRune(r)
		}
	}
	v["unaccented"] = plain.String()
	v["decomposed"] = nfd.String()
	return v
}

func TestDefaultKeywords(t *testing.T) {
	m := Default()
	for _, w := range defaultWants {
		for name, in := range variants(w.word) {
			t.Run(w.word+"/"+name, func(t *testing.T) {
				got, ok := m.Match(in)
				if !ok {
					t.Fatalf("Match(%q): no match (normalised %q)", in, Normalize(nil, in))
				}
				exp := Match{Class: w.class, Keyword: w.keyword, Lang: w.lang, Universal: w.universal}
				testutil.RequireEqual(t, got, exp, "Match("+in+")")
				gotB, okB := m.MatchBytes([]byte(in))
				testutil.RequireEqual(t, okB, true, "MatchBytes ok")
				testutil.RequireEqual(t, gotB, exp, "MatchBytes")
			})
		}
	}
}

// TestDefaultTableCovered makes sure defaultWants lists every row of the
// default table, and the table has nothing else.
func TestDefaultTableCovered(t *testing.T) {
	listed := map[string]bool{}
	for _, w := range defaultWants {
		listed[w.keyword] = true
	}
	for _, d := range defaults {
		if !listed[normString(d.word)] {
			t.Errorf("default %q (%s) missing from defaultWants", d.word, d.lang)
		}
	}
	entries := Default().Entries()
	testutil.RequireEqual(t, len(entries), len(listed), "table size")
	for _, e := range entries {
		if !listed[e.Word] {
			t.Errorf("table has unexpected %q", e.Word)
		}
	}
	// A word repeated in several languages must keep one class.
	class := map[string]Class{}
	for _, d := range append(append([]def(nil), defaults...), offByDefault...) {
		k := normString(d.word)
		if c, ok := class[k]; ok && c != d.class {
			t.Errorf("%q is %v and %v", d.word, c, d.class)
		}
		class[k] = d.class
	}
}

func TestExactNegatives(t *testing.T) {
	m := Default()
	for _, in := range []string{
		"", " ", "\t\n", "🙏", "...", "\u200b", "\x00",
		"Stop by the office tomorrow", "STOPPED", "stopping", "Fine", "Start date?",
		"Unstoppable", "helpful", "Helpless", "information", "yesterday", "ja ja",
		"STOP PLEASE", "please stop", "PLEASE CANCEL", "Cancel my order 42",
		"S T O P", "S.T.O.P", "STO P", "STOP STOP", "stop all messages please",
		"TD", "NO", "No", "alto", // off by default
		"FIN DU MOIS", "Ende gut", // seed keywords, but not the whole message
		"YES PLEASE", "oui merci", "Arrêt de bus", "endless", "quite", "remove me from the list",
		"help me please", "STOP2", "2STOP", "stop-it",
		strings.Repeat("STOP ", 100),
		strings.Repeat("A", 64<<10),
	} {
		t.Run(in[:min(len(in), 30)], func(t *testing.T) {
			if got, ok := m.Match(in); ok {
				t.Fatalf("Match(%q) = %+v, want no match", in, got)
			}
			if got, ok := m.MatchBytes([]byte(in)); ok {
				t.Fatalf("MatchBytes(%q) = %+v, want no match", in, got)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	rnd := make([]byte, 64<<10)
	x := uint32(2463534242)
	for i := range rnd {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		rnd[i] = byte(x)
	}
	modes := []Mode{Exact, FirstWord, ReasonableMeans}
	for _, in := range []string{
		"",
		string(rnd),
		"\xff\xfe\xfd",
		"\xc3",             // truncated sequence
		"\xed\xa0\x80",     // surrogate
		"\xf4\x90\x80\x80", // beyond U+10FFFF
		strings.Repeat("\u0301", 10000),
		"A" + strings.Repeat("\u0301", 10000),
		strings.Repeat("🙏", 16<<10),
		strings.Repeat("\x00\x01\x02", 20000),
		strings.Repeat("é", 32<<10),
	} {
		for _, mode := range modes {
			m, err := New(Config{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := m.Match(in); ok {
				t.Errorf("%v: Match(%.20q...) = %+v, want none", mode, in, got)
			}
			if got, ok := m.MatchBytes([]byte(in)); ok {
				t.Errorf("%v: MatchBytes(%.20q...) = %+v, want none", mode, in, got)
			}
		}
		if n := Normalize(nil, in); !utf8.Valid(n) {
			t.Errorf("Normalize(%.20q...) is not valid UTF-8", in)
		}
	}
	// Binary junk and separators around a keyword do not hide it.
	for _, in := range []string{"\x00STOP\x00", "\xffSTOP\xfe", strings.Repeat(" ", 64<<10) + "STOP"} {
		got, ok := Default().Match(in)
		testutil.RequireEqual(t, ok, true, "match "+in[:min(len(in), 10)])
		testutil.RequireEqual(t, got.Keyword, "STOP", "keyword")
	}
}

func TestModes(t *testing.T) {
	type tc struct {
		in      string
		ok      bool
		class   Class
		keyword string
		perSe   bool
	}
	cases := map[Mode][]tc{
		Exact: {
			{"STOP", true, OptOut, "STOP", false},
			{"STOP please", false, None, "", false},
			{"please stop texting me", false, None, "", false},
		},
		FirstWord: {
			{"STOP please", true, OptOut, "STOP", false},
			{"stop, thanks!", true, OptOut, "STOP", false},
			{"STOP 12345", true, OptOut, "STOP", false},
			{"Stop by the office tomorrow", true, OptOut, "STOP", false},
			{"STOP ALL please", true, OptOutAll, "STOP ALL", false},
			{"stop all", true, OptOutAll, "STOP ALL", false},
			{"Stop promotions now", true, MarketingOptOut, "STOP PROMOTIONS", false},
			{"Arrêter les promotions !", true, MarketingOptOut, "ARRETER LES PROMOTIONS", false},
			{"opt-out now", true, OptOut, "OPT OUT", false},
			{"No más mensajes", true, OptOut, "NO MAS", false},
			{"HELP me", true, Help, "HELP", false},
			{"ARRÊT!!! merci", true, OptOut, "ARRET", false},
			{"STOP", true, OptOut, "STOP", false},
			{"please stop", false, None, "", false},
			{"Stopped", false, None, "", false},
			{"Unstoppable force", false, None, "", false},
			{"", false, None, "", false},
			{strings.Repeat("x", 1000) + " STOP", false, None, "", false},
			{"STOP" + strings.Repeat(" x", 10000), true, OptOut, "STOP", false},
		},
		ReasonableMeans: {
			{"STOP", true, OptOut, "STOP", false},
			{"HELP", true, Help, "HELP", false},
			{"ARRET", true, OptOut, "ARRET", false},
			{"please stop texting me", true, OptOut, "STOP", true},
			{"Please STOP!", true, OptOut, "STOP", true},
			{"cancel my subscription", true, OptOut, "CANCEL", true},
			{"I quit", true, OptOut, "QUIT", true},
			{"unsubscribe me now", true, OptOut, "UNSUBSCRIBE", true},
			{"revoke my consent", true, OptOut, "REVOKE", true},
			{"please opt-out me", true, OptOut, "OPT OUT", true},
			{"optout pls", true, OptOut, "OPTOUT", true},
			{"the end", true, OptOut, "END", true},
			{"I want to opt out", false, None, "", false}, // 5 words
			{"stopped texting", false, None, "", false},
			{"Stop by the office tomorrow", false, None, "", false},
			{"Hi, could you please stop sending me these messages, I never signed up for them and I am tired of it", false, None, "", false},
			{"Arrêt svp", false, None, "", false}, // per-se words are the FCC's English list
			{"yes please", false, None, "", false},
			{"", false, None, "", false},
		},
	}
	for mode, list := range cases {
		m, err := New(Config{Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		testutil.RequireEqual(t, m.Mode(), mode, "Mode")
		for _, c := range list {
			t.Run(mode.String()+"/"+c.in[:min(len(c.in), 40)], func(t *testing.T) {
				got, ok := m.Match(c.in)
				testutil.RequireEqual(t, ok, c.ok, "ok")
				testutil.RequireEqual(t, got.Class, c.class, "class")
				testutil.RequireEqual(t, got.Keyword, c.keyword, "keyword")
				testutil.RequireEqual(t, got.PerSe, c.perSe, "per se")
				gotB, okB := m.MatchBytes([]byte(c.in))
				testutil.RequireEqual(t, okB, ok, "MatchBytes ok")
				testutil.RequireEqual(t, gotB, got, "MatchBytes")
			})
		}
	}

	m, err := New(Config{Mode: ReasonableMeans, MaxWords: 5})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := m.Match("I want to opt out")
	testutil.RequireEqual(t, ok, true, "MaxWords 5")
	testutil.RequireEqual(t, got, Match{Class: OptOut, Keyword: "OPT OUT", Lang: "en", PerSe: true}, "MaxWords 5")
}

func TestParseMode(t *testing.T) {
	for _, mode := range []Mode{Exact, FirstWord, ReasonableMeans} {
		got, err := ParseMode(mode.String())
		if err != nil {
			t.Fatal(err)
		}
		testutil.RequireEqual(t, got, mode, "round trip")
		var u Mode
		b, _ := mode.MarshalText()
		if err := u.UnmarshalText(b); err != nil {
			t.Fatal(err)
		}
		testutil.RequireEqual(t, u, mode, "text round trip")
	}
	testutil.RequireEqual(t, FirstWord.String(), "first-word", "String")
	testutil.RequireEqual(t, ReasonableMeans.String(), "reasonable-means", "String")
	if _, err := ParseMode("fuzzy"); err == nil {
		t.Fatal("ParseMode(fuzzy): no error")
	}
}

func TestClassString(t *testing.T) {
	for c, s := range map[Class]string{
		None: "none", OptOut: "opt_out", OptOutAll: "opt_out_all", OptIn: "opt_in",
		Help: "help", Yes: "yes", MarketingOptOut: "marketing_opt_out", Class(42): "class(42)",
	} {
		testutil.RequireEqual(t, c.String(), s, "String")
		if c != None && c <= MarketingOptOut {
			got, err := ParseClass(s)
			if err != nil {
				t.Fatal(err)
			}
			testutil.RequireEqual(t, got, c, "ParseClass")
		}
	}
	if _, err := ParseClass("none"); err == nil {
		t.Fatal("ParseClass(none): no error")
	}
}

func TestConfig(t *testing.T) {
	t.Run("remove", func(t *testing.T) {
		m, err := New(Config{Remove: []string{"end", "Remove", "ARRÊT", "opt-out"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range []string{"END", "remove", "arret", "OPT OUT"} {
			if _, ok := m.Match(in); ok {
				t.Errorf("%q still matches after Remove", in)
			}
		}
		for _, in := range []string{"STOP", "ARRETE", "OPTOUT", "QUIT"} {
			if _, ok := m.Match(in); !ok {
				t.Errorf("%q no longer matches", in)
			}
		}
		// The default Matcher is not affected.
		if _, ok := Default().Match("END"); !ok {
			t.Error("Default lost END")
		}
	})
	t.Run("remove-mandatory", func(t *testing.T) {
		for _, w := range []string{"STOP", "stop", "Help", "START", " start! "} {
			_, err := New(Config{Remove: []string{w}})
			if !errors.Is(err, ErrMandatory) {
				t.Errorf("Remove %q: err = %v, want ErrMandatory", w, err)
			}
		}
	})
	t.Run("remove-unknown", func(t *testing.T) {
		_, err := New(Config{Remove: []string{"BANANA"}})
		if !errors.Is(err, ErrUnknown) {
			t.Fatalf("err = %v, want ErrUnknown", err)
		}
		_, err = New(Config{Remove: []string{"TD"}}) // off by default, not enabled
		if !errors.Is(err, ErrUnknown) {
			t.Fatalf("err = %v, want ErrUnknown", err)
		}
	})
	t.Run("enable", func(t *testing.T) {
		m, err := New(Config{Enable: []string{"td", "No", "FIN", "ende", "alto"}}) // FIN, ENDE: on already, accepted
		if err != nil {
			t.Fatal(err)
		}
		for in, exp := range map[string]Match{
			"TD":    {Class: OptOut, Keyword: "TD", Lang: "en"},
			"no":    {Class: OptOut, Keyword: "NO", Lang: "en"},
			"Fin.":  {Class: OptOut, Keyword: "FIN", Lang: "fr"},
			"ENDE!": {Class: OptOut, Keyword: "ENDE", Lang: "de"},
			"Alto":  {Class: OptOut, Keyword: "ALTO", Lang: "es"},
		} {
			got, ok := m.Match(in)
			testutil.RequireEqual(t, ok, true, in)
			testutil.RequireEqual(t, got, exp, in)
		}
		// Enabling then removing is fine.
		if _, err := New(Config{Enable: []string{"NO"}, Remove: []string{"no"}}); err != nil {
			t.Fatal(err)
		}
		_, err = New(Config{Enable: []string{"STOP"}})
		if !errors.Is(err, ErrNotOff) {
			t.Fatalf("Enable STOP: err = %v, want ErrNotOff", err)
		}
	})
	t.Run("add", func(t *testing.T) {
		m, err := New(Config{Add: []Entry{
			{Word: "Pare", Class: OptOut, Lang: "pt-BR"},
			{Word: "Stop news", Class: MarketingOptOut, Lang: "en"},
			{Word: "STOP", Class: OptOut, Lang: "en"}, // same class and language: no-op
			{Word: "Désinscrire", Class: OptOut, Lang: "fr"},
		}})
		if err != nil {
			t.Fatal(err)
		}
		for in, exp := range map[string]Match{
			"pare":        {Class: OptOut, Keyword: "PARE", Lang: "pt-BR"},
			"STOP NEWS!":  {Class: MarketingOptOut, Keyword: "STOP NEWS", Lang: "en"},
			"desinscrire": {Class: OptOut, Keyword: "DESINSCRIRE", Lang: "fr"},
			"stop":        {Class: OptOut, Keyword: "STOP", Lang: "en", Universal: true},
		} {
			got, ok := m.Match(in)
			testutil.RequireEqual(t, ok, true, in)
			testutil.RequireEqual(t, got, exp, in)
		}
	})
	t.Run("repurpose", func(t *testing.T) {
		m, err := New(Config{Remove: []string{"JOIN"}, Add: []Entry{{Word: "join", Class: Help, Lang: "en"}}})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := m.Match("Join")
		testutil.RequireEqual(t, got.Class, Help, "class")
	})
	t.Run("invalid", func(t *testing.T) {
		for name, c := range map[string]struct {
			cfg Config
			err error
		}{
			"conflict":        {Config{Add: []Entry{{Word: "STOP", Class: Help, Lang: "en"}}}, ErrConflict},
			"conflict-lang":   {Config{Add: []Entry{{Word: "ARRET", Class: OptOut, Lang: "en"}}}, ErrConflict},
			"class-none":      {Config{Add: []Entry{{Word: "X", Class: None, Lang: "en"}}}, ErrInvalid},
			"class-range":     {Config{Add: []Entry{{Word: "X", Class: 99, Lang: "en"}}}, ErrInvalid},
			"lang-empty":      {Config{Add: []Entry{{Word: "X", Class: OptOut}}}, ErrInvalid},
			"lang-bad":        {Config{Add: []Entry{{Word: "X", Class: OptOut, Lang: "e n"}}}, ErrInvalid},
			"word-empty":      {Config{Add: []Entry{{Word: " !! ", Class: OptOut, Lang: "en"}}}, ErrInvalid},
			"word-long":       {Config{Add: []Entry{{Word: strings.Repeat("A", 65), Class: OptOut, Lang: "en"}}}, ErrInvalid},
			"word-many-words": {Config{Add: []Entry{{Word: "a b c d e", Class: OptOut, Lang: "en"}}}, ErrInvalid},
			"mode":            {Config{Mode: 7}, ErrInvalid},
			"max-words":       {Config{MaxWords: 33}, ErrInvalid},
			"max-words-neg":   {Config{MaxWords: -1}, ErrInvalid},
		} {
			t.Run(name, func(t *testing.T) {
				m, err := New(c.cfg)
				if !errors.Is(err, c.err) || m != nil {
					t.Fatalf("New = %v, %v; want nil, %v", m, err, c.err)
				}
			})
		}
	})
	t.Run("all-errors-at-once", func(t *testing.T) {
		_, err := New(Config{
			Mode:   9,
			Remove: []string{"STOP", "BANANA"},
			Enable: []string{"YES"},
			Add:    []Entry{{Word: "HELP", Class: OptOut, Lang: "en"}},
		})
		for _, want := range []error{ErrInvalid, ErrMandatory, ErrUnknown, ErrNotOff, ErrConflict} {
			if !errors.Is(err, want) {
				t.Errorf("err = %v; missing %v", err, want)
			}
		}
	})
}

func TestLanguages(t *testing.T) {
	got := Languages()
	testutil.RequireEqual(t, strings.Join(got, ","), "en,fr,de,es,it,pt,nl,da", "Languages")
	got[0] = "xx"
	testutil.RequireEqual(t, Languages()[0], "en", "Languages returns a copy")
}

func TestConcurrentMatch(t *testing.T) {
	m := Default()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				in := []string{"STOP", "Arrêt", "hello there", "ＳＴＯＰ", "stop all"}[(g+i)%5]
				if _, ok := m.Match(in); ok == (in == "hello there") {
					t.Errorf("Match(%q) = %v", in, ok)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestPerSeTable(t *testing.T) {
	for _, d := range perSe {
		testutil.RequireEqual(t, normString(d.word), d.word, "normalised")
		got := perSeWord([]byte(d.word))
		if got == nil || got.word != d.word {
			t.Errorf("perSeWord(%q) = %v", d.word, got)
		}
	}
	if perSeWord([]byte("STOPPED")) != nil {
		t.Error("STOPPED is per se")
	}
}

// TestKeywordIn: words shared by several languages know all of them.
func TestKeywordIn(t *testing.T) {
	m := Default()
	for _, tc := range []struct {
		word, lang string
		want       bool
	}{
		{"PARAR", "es", true}, {"PARAR", "pt", true}, {"PARAR", "pt-BR", true}, {"PARAR", "fr", false},
		{"CANCELAR", "pt", true}, {"INICIAR", "pt", true}, {"SI", "it", true}, {"SI", "es", true}, {"SI", "pt", false},
		{"JA", "de", true}, {"JA", "nl", true}, {"JA", "da", true}, {"JA", "en", false},
		{"ARRET", "fr", true}, {"ARRET", "en", false}, {"STOP", "en", true}, {"NOPE", "en", false}, {"STOP", "", false},
	} {
		testutil.RequireEqual(t, m.KeywordIn(tc.word, tc.lang), tc.want, tc.word+" in "+tc.lang)
	}
	// The match itself still names the first language listed.
	r, _ := m.Match("parar")
	testutil.RequireEqual(t, r.Lang, "es", "PARAR language")
}

// TestSeedListsOnByDefault: every keyword of the seed documents' lists
// (Grayscale's French and German pages, consent.md §2) opts out in Exact
// mode with no tenant configuration, FIN and ENDE included, and a tenant
// may still switch them off.
func TestSeedListsOnByDefault(t *testing.T) {
	m := Default()
	for lang, words := range map[string][]string{
		"fr": {"STOP", "QUITTER", "ANNULER", "STOPALL", "DÉSABONNER", "FIN"},
		"de": {"Stopp", "Stopall", "Beenden", "Abbrechen", "Abmelden", "Ende"},
	} {
		for _, w := range words {
			got, ok := m.Match(w)
			if !ok || (got.Class != OptOut && got.Class != OptOutAll) {
				t.Errorf("%s %q: Match = %+v, %v; want an opt-out", lang, w, got, ok)
				continue
			}
			if !got.Universal && !m.KeywordIn(got.Keyword, lang) {
				t.Errorf("%s %q: keyword %s is not listed as %s", lang, w, got.Keyword, lang)
			}
		}
	}
	for _, w := range []string{"STOPALL", "Stopall"} {
		if got, _ := m.Match(w); got.Class != OptOutAll {
			t.Errorf("%q: class %v, want opt_out_all", w, got.Class)
		}
	}
	off, err := New(Config{Remove: []string{"fin", "Ende"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"FIN", "ende"} {
		if got, ok := off.Match(w); ok {
			t.Errorf("removed %q still matches: %+v", w, got)
		}
	}
}
