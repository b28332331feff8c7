package pii

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"

	"github.com/orderservice/orders/shared/model"
)

// MaskRune is the character that replaces hidden text. The web UI marks a
// field of a masked order that contains it.
const MaskRune = '*'

const (
	wordMask  = "***"
	zipMask   = "***"
	phoneMask = "******"
	// phoneTail is how many trailing digits of a phone stay visible, and
	// phoneHidden how many other digits of the national number must stay
	// hidden for them to be shown. A national number of nine digits or
	// more (Russia, the US, most mobile plans) shows its last four; a
	// shorter one shows none, or most of it would be revealed.
	phoneTail   = 4
	phoneHidden = 5
)

// Mask returns a copy of o with its personal data masked (see the package
// comment for which fields and how). o is not changed; the copy has its own
// items slice, so changing the result cannot reach o either.
func Mask(o model.Order) model.Order {
	o.Items = slices.Clone(o.Items)
	d := &o.Delivery
	d.Name = maskName(d.Name)
	d.Phone = maskPhone(d.Phone)
	d.Zip = maskZip(d.Zip)
	d.Address = maskAddress(d.Address)
	d.Email = maskEmail(d.Email)
	return o
}

// MaskJSON decodes an order (the canonical JSON the reader caches), masks
// it and encodes it again with the same canonical encoder, so that the
// masked view is as stable, byte for byte, as the full one. The reader
// calls it once when an order enters its cache, not per request. Decoding
// is most of its cost; a caller that already holds the decoded order (a
// PostgreSQL load) can call Mask and Canonical instead. The error wraps the
// model's decoding error, which quotes no field value.
func MaskJSON(canonical []byte) ([]byte, error) {
	o, err := model.Decode(canonical)
	if err != nil {
		return nil, fmt.Errorf("mask order: %w", err)
	}
	masked := Mask(*o)
	b, err := masked.AppendCanonical(make([]byte, 0, len(canonical)))
	if err != nil {
		return nil, fmt.Errorf("mask order: %w", err)
	}
	return b, nil
}

// maskName masks a person's name word by word: "Иван Петров" is "И*** П***".
func maskName(s string) string { return maskWords(s, true) }

// maskAddress hides every word of an address: "Ploshad Mira 15" is
// "*** *** ***".
func maskAddress(s string) string { return maskWords(s, false) }

// maskZip hides a postal code whole.
func maskZip(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	return zipMask
}

// maskEmail keeps the first letter of the local part and the domain:
// "test@gmail.com" is "t***@gmail.com". A value without "@" is masked as
// one word.
func maskEmail(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return maskWords(s, true)
	}
	return maskWord(strings.TrimSpace(s[:at]), true) + s[at:]
}

// maskPhone keeps a leading "+" with the country calling code, and the last
// four digits when at least five others stay hidden; six asterisks stand
// for the hidden digits whatever their number: "+79161234567" is
// "+7******4567", "89161234567" is "******4567", "+9720000000" is
// "+972******". Separators (spaces, dashes, brackets) and other non-digits
// are dropped. Asterisks count as hidden digits, so that a masked phone
// masks to itself.
func maskPhone(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	plus := s[0] == '+'
	// seq holds the digits and asterisks, in order; both are ASCII.
	seq := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c >= '0' && c <= '9') || c == MaskRune {
			seq = append(seq, c)
		}
	}
	var b strings.Builder
	b.Grow(1 + 3 + len(phoneMask) + phoneTail)
	national := seq
	if plus {
		b.WriteByte('+')
		cc := callingCode(seq)
		b.Write(seq[:cc])
		national = seq[cc:]
	}
	b.WriteString(phoneMask)
	if len(national) >= phoneTail+phoneHidden {
		b.Write(national[len(national)-phoneTail:])
	}
	return b.String()
}

// callingCode returns the length of the country calling code at the start
// of digits, 0 when there is none. Calling codes are prefix-free (ITU-T
// E.164), so the first known prefix of one to three digits is the code;
// this is libphonenumber's own rule, with its list of codes.
func callingCode(digits []byte) int {
	code := 0
	for i := 0; i < len(digits) && i < phonenumbers.MAX_LENGTH_COUNTRY_CODE; i++ {
		c := digits[i]
		if c < '0' || c > '9' || (i == 0 && c == '0') {
			return 0
		}
		code = code*10 + int(c-'0')
		if len(phonenumbers.GetRegionCodesForCountryCode(code)) > 0 {
			return i + 1
		}
	}
	return 0
}

// maskWords masks each whitespace-separated word of s and joins them with
// single spaces.
func maskWords(s string, keepInitial bool) string {
	words := strings.Fields(s)
	for i, w := range words {
		words[i] = maskWord(w, keepInitial)
	}
	return strings.Join(words, " ")
}

// maskWord is the word's first rune and "***" when keepInitial is set and
// that rune is a letter, else "***"; "" stays "".
func maskWord(w string, keepInitial bool) string {
	if w == "" {
		return ""
	}
	r, size := utf8.DecodeRuneInString(w)
	if keepInitial && r != utf8.RuneError && unicode.IsLetter(r) {
		return w[:size] + wordMask
	}
	return wordMask
}
