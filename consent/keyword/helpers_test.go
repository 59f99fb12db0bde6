package keyword

// fullWidth maps printable ASCII to the full-width forms (U+FF01..U+FF5E)
// and the space to the ideographic space.
func fullWidth(s string) string {
	r := []rune(s)
	for i, c := range r {
		switch {
		case c == ' ':
			r[i] = '\u3000'
		case c > ' ' && c < 0x7f:
			r[i] = c - 0x21 + 0xff01
		}
	}
	return string(r)
}
