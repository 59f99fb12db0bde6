// Package keyword recognises opt-out, opt-in, help and attestation keywords
// in inbound (MO) SMS and WhatsApp messages, in English, French, German,
// Spanish, Italian, Portuguese, Dutch and Danish.
//
// A Matcher normalises a message (see Normalize) and looks it up in a table of
// keywords. The default table follows consent.md §12: STOP, START, HELP and
// INFO are accepted in every language (Universal), the other words carry
// their own language so the consent layer can reply in it. The default mode
// is Exact: the whole normalised message must be a keyword, so "STOP" opts
// out but "Stop by the office tomorrow" does not. FirstWord (begins-with,
// as AWS does) and ReasonableMeans (Exact plus the FCC per-se revocation
// words inside short messages) are per-tenant options.
//
// # Normalisation
//
// Normalize applies, in order:
//
//   - Unicode compatibility decomposition (NFKD, rune by rune from the
//     golang.org/x/text/unicode/norm tables), so full-width "ＳＴＯＰ" is
//     "STOP" and ligatures and circled digits are spelt out; Hangul
//     syllables stay composed;
//   - removal of all combining marks, which strips accents ("ARRÊT" is
//     "ARRET", "DÉSABONNER" is "DESABONNER"); letters without a
//     decomposition such as Æ and Ø stay, so the table lists HJÆLP and
//     HJAELP separately;
//   - upper-casing;
//   - removal of format characters (zero-width space, joiners, U+FEFF,
//     U+2060, soft hyphen, bidi marks) and apostrophes (' ’ ʼ ‘), which
//     join the letters around them: "ST\u200bOP" and "don't" become "STOP"
//     and "DONT";
//   - every other character that is not a letter or a digit (white space,
//     punctuation including hyphens, quotes, symbols, emoji, control
//     characters and invalid UTF-8 bytes) separates words;
//   - words are joined by exactly one ASCII space, with nothing before the
//     first word or after the last.
//
// Inner punctuation therefore splits words: "OPT-OUT" and "opt_out"
// normalise to "OPT OUT", which is in the table, as is "OPTOUT". "STOP.",
// "stop!!", "  Stop 🙏 " and "«STOP»" all normalise to "STOP".
//
// The result is idempotent (Normalize of a normalised text returns it
// unchanged) and is what the consent layer records as "keyword as
// normalised". Matching never allocates: ASCII goes through a byte table,
// Latin letters, general punctuation and full-width forms through tables
// precomputed at start-up, and other runes through the x/text decomposition
// tables.
//
// # Languages
//
// A word that is a keyword in several languages gets the first of them in the
// order of Languages (en, fr, de, es, it, pt, nl, da): INFO and HELP are
// English (and Universal), PARAR, CANCELAR and INICIAR are Spanish rather
// than Portuguese, SI is Spanish rather than Italian and JA is German rather
// than Dutch or Danish. The consent layer may still reply in the tenant's
// default language for Universal words.
//
// # Bounded work
//
// Match never panics and does bounded work: in Exact mode it stops as soon as
// the normalised text is longer than the longest keyword or has more words
// than the longest keyword; FirstWord reads only the first few words, and
// ReasonableMeans only MaxWords words (and at most 256 bytes of normalised
// text). The only cost that grows with the input is one linear scan over
// separators (white space, emoji, invalid bytes) before the first word.
//
// A Matcher is immutable after New and safe for concurrent use. It retains no
// reference to the text it was given.
package keyword
