package keyword

import (
	"strings"
	"sync"
)

var footers = map[string]string{
	"en": "Reply STOP to opt out",
	"fr": "Répondez STOP pour vous désabonner",
	"de": "Antworten Sie STOPP zum Abmelden",
	"es": "Responde STOP para darte de baja",
	"it": "Rispondi STOP per disiscriverti",
	"pt": "Responda STOP para sair",
	"nl": "Antwoord STOP om af te melden",
	"da": "Svar STOP for at afmelde dig",
}

// baseLang reduces a tag such as "fr-CA" or "PT_br" to a supported language,
// or "en".
func baseLang(lang string) string {
	if i := strings.IndexAny(lang, "-_"); i >= 0 {
		lang = lang[:i]
	}
	lang = strings.ToLower(lang)
	if _, ok := footers[lang]; ok {
		return lang
	}
	return "en"
}

// Footer returns the opt-out footer for lang ("en", "fr", ... or a tag such
// as "fr-CA"); unknown languages get English. Every footer is GSM-7 and is
// recognised by SaysHowToOptOut.
func Footer(lang string) string { return footers[baseLang(lang)] }

// SaysHowToOptOut reports whether an outbound text already tells the
// recipient how to opt out, so no footer is needed. It looks, on the
// normalised text, for an opt-out keyword of any supported language (STOP,
// STOPP, ARRET, BAJA, OPT OUT, ...) used as an instruction:
//
//   - after a verb such as REPLY, TEXT, SEND, RÉPONDEZ, ANTWORTEN SIE,
//     RESPONDE, RISPONDI, ANTWOORD, SVAR (optionally followed by WITH, AVEC,
//     MIT, CON, COM, MET or MED): "Reply STOP", "Antworten Sie mit STOPP";
//   - after an opt-out noun: "Opt out: STOP", "Zum Abmelden STOPP senden";
//   - before a purpose: "STOP to opt out", "STOP to 12345", "STOP pour ...",
//     "STOP au 36180", "STOP SMS au ...", "STOPP zum ...", "BAJA para ...",
//     "STOP per ...", "STOP om ...", "STOP for at ...".
//
// A bare keyword ("Don't stop believing", even "ARRET") is not enough: a
// false positive would drop the footer, a false negative only repeats it.
func SaysHowToOptOut(text string) bool {
	var buf [512]byte
	norm := Normalize(buf[:0], text)
	var wbuf [128][2]int
	words := wbuf[:0] // [start, end) of each word of norm
	start := 0
	for i := 0; i <= len(norm); i++ {
		if i == len(norm) || norm[i] == ' ' {
			if i > start {
				words = append(words, [2]int{start, i})
			}
			start = i + 1
		}
	}
	// span is words i..j (inclusive) of norm; empty when out of range.
	span := func(i, j int) []byte {
		if i < 0 || j >= len(words) || i > j {
			return nil
		}
		return norm[words[i][0]:words[j][1]]
	}
	h := instructionHints()
	in := func(set map[string]bool, b []byte) bool { return b != nil && set[string(b)] }
	for i := range words {
		n := 0 // words in the keyword at i
		switch {
		case in(h.keywords, span(i, i+1)):
			n = 2
		case in(h.keywords, span(i, i)):
			n = 1
		default:
			continue
		}
		prev := span(i-1, i-1)
		if in(h.verbs, prev) || in(h.preps, prev) && in(h.verbs, span(i-2, i-2)) ||
			in(h.nouns, prev) || in(h.nouns, span(i-2, i-1)) {
			return true
		}
		next, next2 := string(span(i+n, i+n)), span(i+n+1, i+n+1)
		switch {
		case h.purpose[next]:
			return true
		case next == "TO" || next == "2":
			if in(h.toWhat, next2) || isDigits(next2) {
				return true
			}
		case next == "FOR" && string(next2) == "AT", next == "SMS" && string(next2) == "AU":
			return true
		case next == "AN" && isDigits(next2):
			return true
		case h.nouns[next] || in(h.nouns, span(i+n, i+n+1)):
			return true // "STOP: unsubscribe", "STOP = opt out"
		}
	}
	return false
}

func isDigits(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

type hintSets struct {
	keywords, verbs, preps, nouns, purpose, toWhat map[string]bool
}

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[normString(w)] = true
	}
	return m
}

// instructionHints builds the word lists of SaysHowToOptOut once.
var instructionHints = sync.OnceValue(func() *hintSets {
	h := &hintSets{
		keywords: map[string]bool{},
		verbs: set(
			"REPLY", "TEXT", "TXT", "SEND", "SMS", "RESPOND", "ANSWER", "TYPE", "MSG",
			"RÉPONDEZ", "RÉPONDRE", "RÉPONDS", "ENVOYEZ", "ENVOYER", "ENVOIE", "TAPEZ", "TAPE",
			"ANTWORTE", "ANTWORTEN", "SIE", "SENDE", "SENDEN",
			"RESPONDE", "RESPONDA", "RESPONDER", "ENVÍA", "ENVÍE", "ENVIAR", "ESCRIBE", "ESCRIBA", "MANDA", "MANDE",
			"RISPONDI", "RISPONDETE", "RISPONDERE", "INVIA", "INVIARE", "SCRIVI",
			"ENVIE", "ENVIA",
			"ANTWOORD", "ANTWOORDT", "STUUR", "STUURT",
			"SVAR", "SKRIV",
		),
		preps: set("WITH", "AVEC", "MIT", "CON", "COM", "MET", "MED"),
		nouns: set(
			"OPTOUT", "OPT OUT", "UNSUBSCRIBE", "UNSUB", "DÉSABONNEMENT", "DÉSINSCRIPTION", "DÉSABONNER",
			"ABMELDUNG", "ABMELDEN", "AFMELDEN", "AFMELDING",
		),
		purpose: set("POUR", "AU", "ZUM", "PARA", "PER", "OM", "NAAR", "TIL"),
		toWhat: set(
			"OPT", "OPTOUT", "UNSUBSCRIBE", "UNSUB", "CANCEL", "END", "QUIT", "STOP", "STOPALL",
			"REMOVE", "LEAVE", "DECLINE", "REVOKE",
		),
	}
	for _, d := range defaults {
		if d.class == OptOut || d.class == OptOutAll {
			h.keywords[normString(d.word)] = true
		}
	}
	for _, d := range offByDefault {
		if d.word != "NO" && d.word != "TD" { // too common as words
			h.keywords[d.word] = true
		}
	}
	return h
})
