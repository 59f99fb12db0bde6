package consent

import (
	"fmt"
	"unicode/utf8"

	"github.com/optgate/optgate/smpp/coding"
)

// checkOneSegment reports why s does not fit one SMS segment: 160 septets in
// GSM-7 (the GSM 03.38 tables of smpp/coding, extension characters counting
// two), or 70 UTF-16 units when s needs UCS-2. It returns nil when it fits.
func checkOneSegment(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	if n, ok := coding.SeptetLen(s); ok {
		if n > 160 {
			return fmt.Errorf("%d GSM-7 septets, one segment holds 160", n)
		}
		return nil
	}
	if n := coding.UCS2Len(s); n > 70 {
		return fmt.Errorf("needs UCS-2 (not GSM-7) and is %d characters, one UCS-2 segment holds 70", n)
	}
	return nil
}
