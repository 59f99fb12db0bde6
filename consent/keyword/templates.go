package keyword

// Templates are the default reply texts of one language. They contain the
// placeholders {brand} (programme or sender name) and, in Help, {help} (a
// support contact such as an e-mail address or toll-free number). Every
// template uses GSM-7 characters only (accents outside GSM-7 are dropped, as
// is usual in Spanish and Portuguese SMS) and, with a 15-character brand and
// a 17-character contact, fits one 160-septet segment. Confirmations carry
// no marketing (FCC §64.1200(a)(12)).
type Templates struct {
	OptOut string // after STOP: confirms only, offers START
	// MarketingOptOut confirms a marketing-only opt-out ("Stop promotions"):
	// only marketing stops, so it must not say "no more messages"; it says
	// how to stop everything.
	MarketingOptOut    string
	OptIn              string // after START: confirms, gives HELP and STOP
	Help               string // after HELP: contact, rates, frequency, STOP
	AttestationPrompt  string // asks for the YES that opens the gate
	Reprompt           string // any other reply while the gate is pending
	AttestationConfirm string // after YES
	Disclaimer         string // implied opt-in notice, no reply needed
}

var templates = map[string]Templates{
	"en": {
		OptOut:             "{brand}: You are unsubscribed and will receive no more messages. Reply START to resubscribe.",
		MarketingOptOut:    "You will no longer receive marketing messages from {brand}. Reply STOP to stop all messages, HELP for help.",
		OptIn:              "{brand}: You are subscribed. Msg frequency varies. Msg&data rates may apply. Reply HELP for help, STOP to opt out.",
		Help:               "{brand}: Help at {help}. Msg frequency varies. Msg&data rates may apply. Reply STOP to opt out.",
		AttestationPrompt:  "{brand} would like to send you text messages. Reply YES to agree. Msg&data rates may apply. Reply STOP to opt out.",
		Reprompt:           "{brand}: To receive messages, please reply YES. Reply STOP to opt out.",
		AttestationConfirm: "{brand}: Thank you, you agreed to receive messages. Msg&data rates may apply. Reply HELP for help, STOP to opt out.",
		Disclaimer:         "{brand} may send you text messages. Msg&data rates may apply. Reply HELP for help, STOP to opt out.",
	},
	"fr": {
		OptOut:             "{brand}: Vous avez été désabonné et ne recevrez plus de messages. Répondez START pour vous réabonner.",
		MarketingOptOut:    "Vous ne recevrez plus de messages promotionnels de {brand}. Répondez STOP pour ne plus rien recevoir, AIDE pour de l'aide.",
		OptIn:              "{brand}: Abonnement confirmé. Fréquence variable. Des frais de SMS peuvent s'appliquer. AIDE pour de l'aide, STOP pour vous désabonner.",
		Help:               "{brand}: Aide: {help}. Fréquence variable. Des frais de SMS peuvent s'appliquer. Répondez STOP pour vous désabonner.",
		AttestationPrompt:  "{brand} souhaite vous envoyer des SMS. Répondez OUI pour accepter. Des frais peuvent s'appliquer. Répondez STOP pour refuser.",
		Reprompt:           "{brand}: Pour recevoir nos messages, répondez OUI. Répondez STOP pour refuser.",
		AttestationConfirm: "{brand}: Merci, votre accord est enregistré. Des frais de SMS peuvent s'appliquer. AIDE pour de l'aide, STOP pour vous désabonner.",
		Disclaimer:         "{brand} peut vous envoyer des SMS. Des frais peuvent s'appliquer. AIDE pour de l'aide, STOP pour vous désabonner.",
	},
	"de": {
		OptOut:             "{brand}: Sie wurden abgemeldet und erhalten keine Nachrichten mehr. Antworten Sie START, um sich wieder anzumelden.",
		MarketingOptOut:    "Sie erhalten keine Werbung mehr von {brand}. Antworten Sie STOPP für keine Nachrichten mehr, HILFE für Hilfe.",
		OptIn:              "{brand}: Sie sind angemeldet. Häufigkeit variiert. Es können SMS-Gebühren anfallen. HILFE für Hilfe, STOPP zum Abmelden.",
		Help:               "{brand}: Hilfe unter {help}. Häufigkeit variiert. Es können SMS-Gebühren anfallen. Antworten Sie STOPP zum Abmelden.",
		AttestationPrompt:  "{brand} möchte Ihnen SMS senden. Antworten Sie JA zur Zustimmung. Es können Gebühren anfallen. STOPP zum Abmelden.",
		Reprompt:           "{brand}: Bitte antworten Sie JA, um Nachrichten zu erhalten, oder STOPP zum Abmelden.",
		AttestationConfirm: "{brand}: Danke, Ihre Zustimmung ist gespeichert. Es können SMS-Gebühren anfallen. HILFE für Hilfe, STOPP zum Abmelden.",
		Disclaimer:         "{brand} kann Ihnen SMS senden. Es können Gebühren anfallen. HILFE für Hilfe, STOPP zum Abmelden.",
	},
	"es": {
		OptOut:             "{brand}: Baja confirmada. No te enviaremos otros mensajes. Responde START para volver a suscribirte.",
		MarketingOptOut:    "Ya no recibiras mensajes promocionales de {brand}. Responde STOP para no recibir nada mas, AYUDA para ayuda.",
		OptIn:              "{brand}: Alta confirmada. Frecuencia variable. Pueden aplicarse tarifas de SMS. AYUDA para ayuda, STOP para darte de baja.",
		Help:               "{brand}: Ayuda en {help}. Frecuencia variable. Pueden aplicarse tarifas de SMS. Responde STOP para darte de baja.",
		AttestationPrompt:  "{brand} quiere enviarte SMS. Responde SI para aceptar. Pueden aplicarse tarifas. Responde STOP para darte de baja.",
		Reprompt:           "{brand}: Para recibir mensajes, responde SI. Responde STOP para darte de baja.",
		AttestationConfirm: "{brand}: Gracias, hemos registrado tu consentimiento. Pueden aplicarse tarifas de SMS. AYUDA para ayuda, STOP para darte de baja.",
		Disclaimer:         "{brand} puede enviarte SMS. Pueden aplicarse tarifas. AYUDA para ayuda, STOP para darte de baja.",
	},
	"it": {
		OptOut:             "{brand}: Disiscrizione confermata, non riceverai altri messaggi. Rispondi START per iscriverti di nuovo.",
		MarketingOptOut:    "Non riceverai più messaggi promozionali da {brand}. Rispondi STOP per non ricevere altro, AIUTO per assistenza.",
		OptIn:              "{brand}: Iscrizione confermata. Frequenza variabile. Possono essere applicati costi SMS. AIUTO per assistenza, STOP per disiscriverti.",
		Help:               "{brand}: Assistenza: {help}. Frequenza variabile. Possono essere applicati costi SMS. Rispondi STOP per disiscriverti.",
		AttestationPrompt:  "{brand} vorrebbe inviarti SMS. Rispondi SI per accettare. Possono essere applicati costi. Rispondi STOP per rifiutare.",
		Reprompt:           "{brand}: Per ricevere messaggi rispondi SI. Rispondi STOP per rifiutare.",
		AttestationConfirm: "{brand}: Grazie, il tuo consenso è registrato. Possono essere applicati costi SMS. AIUTO per assistenza, STOP per disiscriverti.",
		Disclaimer:         "{brand} potrebbe inviarti SMS. Possono essere applicati costi. AIUTO per assistenza, STOP per disiscriverti.",
	},
	"pt": {
		OptOut:             "{brand}: Descadastro confirmado. Nenhuma outra mensagem vai ser enviada. Responda START para voltar a receber.",
		MarketingOptOut:    "Voce nao vai mais receber mensagens promocionais de {brand}. Responda STOP para sair de tudo, AJUDA para obter ajuda.",
		OptIn:              "{brand}: Cadastro confirmado. Tarifas de SMS podem ser cobradas. AJUDA para obter ajuda, STOP para sair.",
		Help:               "{brand}: Ajuda em {help}. Tarifas de SMS podem ser cobradas. Responda STOP para sair.",
		AttestationPrompt:  "{brand} quer te enviar SMS. Responda SIM para aceitar. Tarifas podem ser cobradas. Responda STOP para sair.",
		Reprompt:           "{brand}: Para receber mensagens, responda SIM. Responda STOP para sair.",
		AttestationConfirm: "{brand}: Obrigado, seu consentimento foi registrado. Tarifas de SMS podem ser cobradas. AJUDA para obter ajuda, STOP para sair.",
		Disclaimer:         "{brand} pode te enviar SMS. Tarifas podem ser cobradas. AJUDA para obter ajuda, STOP para sair.",
	},
	"nl": {
		OptOut:             "{brand}: Je bent afgemeld en ontvangt geen berichten meer. Antwoord START om je weer aan te melden.",
		MarketingOptOut:    "Je ontvangt geen marketingberichten meer van {brand}. Antwoord STOP om niets meer te ontvangen, HELP voor hulp.",
		OptIn:              "{brand}: Je bent aangemeld. Frequentie varieert. Er kunnen sms-kosten gelden. HELP voor hulp, STOP om af te melden.",
		Help:               "{brand}: Hulp via {help}. Frequentie varieert. Er kunnen sms-kosten gelden. Antwoord STOP om af te melden.",
		AttestationPrompt:  "{brand} wil je sms-berichten sturen. Antwoord JA om akkoord te gaan. Er kunnen kosten gelden. Antwoord STOP om af te melden.",
		Reprompt:           "{brand}: Antwoord JA om berichten te ontvangen, of STOP om af te melden.",
		AttestationConfirm: "{brand}: Bedankt, je toestemming is vastgelegd. Er kunnen sms-kosten gelden. HELP voor hulp, STOP om af te melden.",
		Disclaimer:         "{brand} kan je sms-berichten sturen. Er kunnen kosten gelden. Antwoord HELP voor hulp, STOP om af te melden.",
	},
	"da": {
		OptOut:             "{brand}: Du er afmeldt og modtager ikke flere beskeder. Svar START for at tilmelde dig igen.",
		MarketingOptOut:    "Du modtager ikke længere markedsføring fra {brand}. Svar STOP for ingen beskeder, HJÆLP for hjælp.",
		OptIn:              "{brand}: Du er tilmeldt. Antal beskeder varierer. Der kan forekomme SMS-takster. HJÆLP for hjælp, STOP for at afmelde dig.",
		Help:               "{brand}: Hjælp på {help}. Antal beskeder varierer. Der kan forekomme SMS-takster. Svar STOP for at afmelde dig.",
		AttestationPrompt:  "{brand} vil gerne sende dig SMS. Svar JA for at acceptere. Der kan forekomme takster. Svar STOP for at afmelde dig.",
		Reprompt:           "{brand}: Svar JA for at modtage beskeder, eller STOP for at afmelde dig.",
		AttestationConfirm: "{brand}: Tak, dit samtykke er registreret. Der kan forekomme SMS-takster. HJÆLP for hjælp, STOP for at afmelde dig.",
		Disclaimer:         "{brand} kan sende dig SMS. Der kan forekomme takster. Svar HJÆLP for hjælp, STOP for at afmelde dig.",
	},
}

// DefaultTemplates returns the default reply texts for lang ("en", "fr", ...
// or a tag such as "fr-CA"); unknown languages get English.
func DefaultTemplates(lang string) Templates { return templates[baseLang(lang)] }
