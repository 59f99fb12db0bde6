// Package coding converts between Go strings and the octets SMPP carries in
// short_message and message_payload, splits long texts into concatenated
// parts and reassembles incoming multipart messages.
//
// The encodings are the GSM 03.38 default alphabet with its extension table
// (data_coding 0, one septet per octet, plus a packed 7-bit form for links
// that use it), IA5/ASCII (1), Latin-1 (3) and UCS-2 (8, UTF-16BE with
// surrogate pairs in practice). Decoders never panic: an octet or septet
// that has no character becomes a replacement ('?' for the 7- and 8-bit
// alphabets, U+FFFD for UCS-2).
//
// For MT traffic, [Best] picks GSM-7 when every character is representable
// and UCS-2 otherwise. Latin-1 is never chosen automatically: whether an
// SMSC and the handset honour data_coding 3 varies by operator, while GSM-7
// and UCS-2 work everywhere. Callers that know their link may still set
// [SplitOptions.Coding] to [Latin1].
//
// [Split] cuts a text into parts using the capacities of smpp.md §7 and
// never separates a GSM-7 escape pair or a UTF-16 surrogate pair. [ParseUDH]
// reads the concatenation and port information elements of an incoming
// message, and a [Reassembler] joins the parts again with bounded memory.
//
// This package must not import package smpp, which imports it.
package coding

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/text/encoding/charmap"
)

// Errors returned by this package. Encoding errors are *EncodeError values
// that wrap ErrUnrepresentable.
var (
	ErrUnrepresentable = errors.New("coding: character not representable")
	ErrBinary          = errors.New("coding: data_coding is 8-bit binary")
	ErrUnsupported     = errors.New("coding: unsupported data_coding")
	ErrTooManyParts    = errors.New("coding: too many parts")
	ErrTooLong         = errors.New("coding: message too long")
	ErrInvalidUDH      = errors.New("coding: invalid user data header")
	ErrInvalidPart     = errors.New("coding: invalid part numbering")
	ErrInconsistent    = errors.New("coding: part disagrees with its set")
	ErrMemoryLimit     = errors.New("coding: reassembly memory limit")
)

// EncodeError reports the first character that the target encoding cannot
// represent. It wraps ErrUnrepresentable.
type EncodeError struct {
	Coding DataCoding
	Rune   rune
	Offset int // byte offset of Rune in the input string
}

func (e *EncodeError) Error() string {
	return fmt.Sprintf("coding: %U %q at byte %d not representable in %v", e.Rune, e.Rune, e.Offset, e.Coding)
}

func (e *EncodeError) Unwrap() error { return ErrUnrepresentable }

// DataCoding is the SMPP data_coding octet (SMPP 3.4 §5.2.19).
type DataCoding uint8

// Values of data_coding defined by SMPP 3.4. Values 0xC0–0xFF follow the GSM
// 03.38 coding groups; see [Decode].
const (
	GSM7              DataCoding = 0  // SMSC default alphabet, GSM 03.38 in practice
	IA5               DataCoding = 1  // IA5 / ASCII
	Binary            DataCoding = 2  // 8-bit binary
	Latin1            DataCoding = 3  // ISO-8859-1
	BinaryUnspecified DataCoding = 4  // 8-bit binary, octet unspecified
	JIS               DataCoding = 5  // JIS X 0208
	Cyrillic          DataCoding = 6  // ISO-8859-5
	Hebrew            DataCoding = 7  // ISO-8859-8
	UCS2              DataCoding = 8  // ISO/IEC 10646 UCS-2, UTF-16BE in practice
	Pictogram         DataCoding = 9  // pictogram encoding
	MusicCodes        DataCoding = 10 // ISO-2022-JP (music codes)
	ExtendedKanji     DataCoding = 13 // extended Kanji JIS (X 0212)
	KSC5601           DataCoding = 14 // KS C 5601
)

var dataCodingNames = [...]string{
	GSM7: "GSM7", IA5: "IA5", Binary: "Binary", Latin1: "Latin1", BinaryUnspecified: "BinaryUnspecified",
	JIS: "JIS", Cyrillic: "Cyrillic", Hebrew: "Hebrew", UCS2: "UCS2", Pictogram: "Pictogram",
	MusicCodes: "MusicCodes", ExtendedKanji: "ExtendedKanji", KSC5601: "KSC5601",
}

func (dc DataCoding) String() string {
	if int(dc) < len(dataCodingNames) && dataCodingNames[dc] != "" {
		return dataCodingNames[dc]
	}
	return "DataCoding(0x" + strconv.FormatUint(uint64(dc), 16) + ")"
}

// alphabet is the character set a data_coding value selects.
type alphabet uint8

const (
	alphUnsupported alphabet = iota
	alphGSM7
	alphIA5
	alphLatin1
	alph8Bit
	alphUCS2
	alphCyrillic
	alphHebrew
)

// alphabetOf maps a data_coding value to its alphabet. 0x10–0x1F are read as
// the GSM general data coding group (uncompressed, with message class)
// because some SMSCs pass TP-DCS through unchanged; SMPP reserves them.
func alphabetOf(dc DataCoding) alphabet {
	switch {
	case dc == GSM7:
		return alphGSM7
	case dc == IA5:
		return alphIA5
	case dc == Binary, dc == BinaryUnspecified:
		return alph8Bit
	case dc == Latin1:
		return alphLatin1
	case dc == Cyrillic:
		return alphCyrillic
	case dc == Hebrew:
		return alphHebrew
	case dc == UCS2:
		return alphUCS2
	case dc >= 0x10 && dc <= 0x1F:
		return [4]alphabet{alphGSM7, alph8Bit, alphUCS2, alphUnsupported}[(dc>>2)&3]
	case dc >= 0xC0 && dc <= 0xDF:
		return alphGSM7 // message waiting indication, discard or store: GSM-7
	case dc >= 0xE0 && dc <= 0xEF:
		return alphUCS2 // message waiting indication, store: UCS-2
	case dc >= 0xF0:
		if dc&0x04 != 0 {
			return alph8Bit
		}
		return alphGSM7
	}
	return alphUnsupported
}

// Decode converts the octets of short_message or message_payload, without a
// UDH, to a string according to dc:
//
//   - 0 (and 0xC0–0xDF, and 0xF0–0xFF with bit 2 clear): GSM-7, unpacked,
//     one septet per octet;
//   - 1: IA5/ASCII, octets above 0x7F become '?';
//   - 3: Latin-1; 6 and 7: ISO-8859-5 and ISO-8859-8;
//   - 8 (and 0xE0–0xEF): UCS-2/UTF-16BE;
//   - 2, 4 and 0xF0–0xFF with bit 2 set: 8-bit data. Decode returns the
//     octets unchanged as a string together with ErrBinary, so a caller that
//     wants to treat the data as text anyway still can;
//   - anything else: "" and ErrUnsupported.
func Decode(dc DataCoding, b []byte) (string, error) {
	switch alphabetOf(dc) {
	case alphGSM7:
		return DecodeGSM7(b), nil
	case alphIA5:
		return DecodeIA5(b), nil
	case alphLatin1:
		return DecodeLatin1(b), nil
	case alphUCS2:
		return DecodeUCS2(b), nil
	case alph8Bit:
		return string(b), ErrBinary
	case alphCyrillic:
		out, err := charmap.ISO8859_5.NewDecoder().Bytes(b)
		return string(out), err
	case alphHebrew:
		out, err := charmap.ISO8859_8.NewDecoder().Bytes(b)
		return string(out), err
	}
	return "", fmt.Errorf("%w %v", ErrUnsupported, dc)
}

// Append appends s encoded according to dc to dst: GSM-7 unpacked for 0,
// IA5, Latin-1, UCS-2, ISO-8859-5/-8, and the string's bytes unchanged for
// the 8-bit codings. It reports an *EncodeError for a character dc cannot
// represent, and ErrUnsupported for codings it does not implement.
func Append(dst []byte, dc DataCoding, s string) ([]byte, error) {
	switch alphabetOf(dc) {
	case alphGSM7:
		return AppendGSM7(dst, s)
	case alphIA5:
		return AppendIA5(dst, s)
	case alphLatin1:
		return AppendLatin1(dst, s)
	case alphUCS2:
		return AppendUCS2(dst, s), nil
	case alph8Bit:
		return append(dst, s...), nil
	case alphCyrillic, alphHebrew:
		cm := charmap.ISO8859_5
		if alphabetOf(dc) == alphHebrew {
			cm = charmap.ISO8859_8
		}
		for i, r := range s {
			b, ok := cm.EncodeRune(r)
			if !ok {
				return dst, &EncodeError{Coding: dc, Rune: r, Offset: i}
			}
			dst = append(dst, b)
		}
		return dst, nil
	}
	return dst, fmt.Errorf("%w %v", ErrUnsupported, dc)
}

// Encode is like Append but returns a new slice.
func Encode(dc DataCoding, s string) ([]byte, error) {
	return Append(nil, dc, s)
}

// Best returns the cheapest data_coding that represents s on every handset:
// GSM7 when every character is in the GSM 03.38 default or extension table,
// UCS2 otherwise. It never returns Latin1 (see the package comment).
func Best(s string) DataCoding {
	if IsGSM7(s) {
		return GSM7
	}
	return UCS2
}
