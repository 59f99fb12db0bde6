package keyword

// def is one row of a default table.
type def struct {
	word      string
	class     Class
	lang      string
	universal bool
}

// languages is the order used to pick the language of a word that is a
// keyword in several languages (the first wins).
var languages = []string{"en", "fr", "de", "es", "it", "pt", "nl", "da"}

// Languages returns the languages of the default tables, footers and
// templates, in the order used to break ties between languages.
func Languages() []string { return append([]string(nil), languages...) }

// defaults is consent.md §12, language by language in the order of
// languages. Words that normalise alike (ARRÊT and ARRET, OPT-OUT and
// OPT OUT) are listed as the table gives them; the first spelling wins and
// becomes the canonical keyword. Words repeated in a later language (STOP,
// INFO, PARAR, ...) keep the first language.
//
// Yes is the attestation answer (YES, OUI, JA, SI/SÍ/SÌ, SIM): §12 lists YES
// as opt-in, but it "counts as opt-in only while an attestation prompt or a
// re-subscribe offer is pending", which only the consent layer knows.
//
// MarketingOptOut rows are the WhatsApp marketing opt-out button label
// "Stop promotions" (whatsapp.md §10) and translations of it. Only the
// English label is documented; the others are our translations (Italian and
// Portuguese follow the unconfirmed labels quoted in whatsapp.md §10), so
// tenants may Add the labels their templates really use.
var defaults = []def{
	// English. STOP, START, HELP and INFO are accepted in every language.
	{"STOP", OptOut, "en", true},
	{"STOPALL", OptOutAll, "en", false},
	{"STOP ALL", OptOutAll, "en", false},
	{"UNSUBSCRIBE", OptOut, "en", false},
	{"CANCEL", OptOut, "en", false},
	{"END", OptOut, "en", false},
	{"QUIT", OptOut, "en", false},
	{"REVOKE", OptOut, "en", false},
	{"OPTOUT", OptOut, "en", false},
	{"OPT OUT", OptOut, "en", false},
	{"OPT-OUT", OptOut, "en", false},
	{"REMOVE", OptOut, "en", false},
	{"START", OptIn, "en", true},
	{"UNSTOP", OptIn, "en", false},
	{"SUBSCRIBE", OptIn, "en", false},
	{"JOIN", OptIn, "en", false},
	{"RESUME", OptIn, "en", false},
	{"CONTINUE", OptIn, "en", false},
	{"BEGIN", OptIn, "en", false},
	{"YES", Yes, "en", false},
	{"HELP", Help, "en", true},
	{"INFO", Help, "en", true},
	{"STOP PROMOTIONS", MarketingOptOut, "en", false},

	// French. STOP, STOPALL, QUITTER, ANNULER, DÉSABONNER and FIN are the
	// Grayscale French list (consent.md §2); STOP and STOPALL rows mark the
	// shared words as French too (KeywordIn).
	{"STOP", OptOut, "fr", false},
	{"STOPALL", OptOutAll, "fr", false},
	{"ARRET", OptOut, "fr", false},
	{"ARRÊT", OptOut, "fr", false},
	{"ARRETE", OptOut, "fr", false},
	{"ARRETT", OptOut, "fr", false},
	{"QUITTER", OptOut, "fr", false},
	{"ANNULER", OptOut, "fr", false},
	{"DÉSABONNER", OptOut, "fr", false},
	{"DESABONNER", OptOut, "fr", false},
	{"FIN", OptOut, "fr", false},
	{"REPRENDRE", OptIn, "fr", false},
	{"ABONNER", OptIn, "fr", false},
	{"AIDE", Help, "fr", false},
	{"OUI", Yes, "fr", false},
	{"ARRÊTER LES PROMOTIONS", MarketingOptOut, "fr", false},

	// German: the Grayscale German list (consent.md §2), STOP and STOPALL
	// included.
	{"STOPP", OptOut, "de", false},
	{"STOP", OptOut, "de", false},
	{"STOPALL", OptOutAll, "de", false},
	{"BEENDEN", OptOut, "de", false},
	{"ABBRECHEN", OptOut, "de", false},
	{"ABMELDEN", OptOut, "de", false},
	{"ENDE", OptOut, "de", false},
	{"ANMELDEN", OptIn, "de", false},
	{"HILFE", Help, "de", false},
	{"JA", Yes, "de", false},
	{"WERBUNG STOPPEN", MarketingOptOut, "de", false},

	// Spanish.
	{"NO MÁS", OptOut, "es", false},
	{"BAJA", OptOut, "es", false},
	{"PARAR", OptOut, "es", false},
	{"CANCELAR", OptOut, "es", false},
	{"ALTA", OptIn, "es", false},
	{"INICIAR", OptIn, "es", false},
	{"AYUDA", Help, "es", false},
	{"SÍ", Yes, "es", false},
	{"DETENER PROMOCIONES", MarketingOptOut, "es", false},

	// Italian.
	{"BASTA", OptOut, "it", false},
	{"ANNULLA", OptOut, "it", false},
	{"CANCELLA", OptOut, "it", false},
	{"DISISCRIVI", OptOut, "it", false},
	{"ISCRIVI", OptIn, "it", false},
	{"AIUTO", Help, "it", false},
	{"SÌ", Yes, "it", false}, // same as Spanish SI, which wins
	{"INTERROMPI PROMOZIONI", MarketingOptOut, "it", false},

	// Portuguese.
	{"PARAR", OptOut, "pt", false},    // Spanish wins
	{"CANCELAR", OptOut, "pt", false}, // Spanish wins
	{"SAIR", OptOut, "pt", false},
	{"DESCADASTRAR", OptOut, "pt", false},
	{"INICIAR", OptIn, "pt", false}, // Spanish wins
	{"VOLTAR", OptIn, "pt", false},
	{"AJUDA", Help, "pt", false},
	{"SIM", Yes, "pt", false},
	{"PARAR PROMOÇÕES", MarketingOptOut, "pt", false},

	// Dutch.
	{"STOPPEN", OptOut, "nl", false},
	{"AFMELDEN", OptOut, "nl", false},
	{"UITSCHRIJVEN", OptOut, "nl", false},
	{"AANMELDEN", OptIn, "nl", false},
	{"HULP", Help, "nl", false},
	{"JA", Yes, "nl", false}, // German wins
	{"PROMOTIES STOPPEN", MarketingOptOut, "nl", false},

	// Danish.
	{"AFMELD", OptOut, "da", false},
	{"FRAMELD", OptOut, "da", false},
	{"TILMELD", OptIn, "da", false},
	{"HJÆLP", Help, "da", false},
	{"HJAELP", Help, "da", false},
	{"JA", Yes, "da", false}, // German wins
	{"STOP KAMPAGNER", MarketingOptOut, "da", false},
}

// offByDefault are the keywords a tenant can switch on with Config.Enable:
// TD (AWS) and NO (Sinch) are risky in conversation and Spanish ALTO also
// means "tall" (consent.md §12 notes); none of them is in a seed list.
//
// FIN and ENDE were here too. They are on by default now: every keyword of
// the seed lists (Grayscale's French and German pages) opts out, and the
// risk of a word that is also conversation ("fin", "Ende") is handled by
// Exact matching of the whole message, not by leaving the word out. A
// tenant may still Remove them.
var offByDefault = []def{
	{"TD", OptOut, "en", false},
	{"NO", OptOut, "en", false},
	{"ALTO", OptOut, "es", false},
}

// formerlyOff are keywords that were off by default and are now on:
// Config.Enable accepts them (a no-op) so that older configurations keep
// loading.
var formerlyOff = []string{"FIN", "ENDE"}

// mandatory keywords cannot be removed (as with Twilio Advanced Opt-Out).
var mandatory = []string{"STOP", "HELP", "START"}

// perSeWord returns the per-se revocation word b is, or nil.
func perSeWord(b []byte) *def {
	i := -1
	switch string(b) { // compiled to comparisons, no allocation
	case "STOP":
		i = 0
	case "QUIT":
		i = 1
	case "END":
		i = 2
	case "REVOKE":
		i = 3
	case "OPT OUT":
		i = 4
	case "OPTOUT":
		i = 5
	case "CANCEL":
		i = 6
	case "UNSUBSCRIBE":
		i = 7
	default:
		return nil
	}
	return &perSe[i]
}

// perSe are the FCC per-se reasonable revocation words (consent.md §1.1),
// used by ReasonableMeans, in normalised form.
var perSe = []def{
	{"STOP", OptOut, "en", true},
	{"QUIT", OptOut, "en", false},
	{"END", OptOut, "en", false},
	{"REVOKE", OptOut, "en", false},
	{"OPT OUT", OptOut, "en", false},
	{"OPTOUT", OptOut, "en", false},
	{"CANCEL", OptOut, "en", false},
	{"UNSUBSCRIBE", OptOut, "en", false},
}
