package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultMaxSize is the largest encoded order Decode accepts: 1 MiB. The
// largest valid order (1000 items of long strings) fits well below it, and
// anything bigger is far more likely an attack or a bug than a real order.
const DefaultMaxSize = 1 << 20

// Decoding failures. Every error Decode returns wraps exactly one of them, so
// that callers (the ingestor's dead-letter logic) classify with errors.Is.
var (
	// ErrEmpty means the input had no content at all.
	ErrEmpty = errors.New("empty message")
	// ErrTooLarge means the input exceeded the decoder's size limit.
	ErrTooLarge = errors.New("message too large")
	// ErrMalformed means the input is not one JSON object of the order's
	// shape: bad syntax, trailing data, a wrong type or null, a number out of
	// range, or a known key repeated or spelled in another case.
	ErrMalformed = errors.New("malformed order")
)

// TimePrecision is the finest date_created the system keeps: PostgreSQL's
// timestamptz holds microseconds. Decode and Canonical truncate to it, so an
// order read back from the database encodes to the same bytes (and the same
// content hash) as the one that was ingested.
const TimePrecision = time.Microsecond

// Decoder decodes orders strictly. The zero value is ready to use and limits
// input to DefaultMaxSize bytes.
type Decoder struct {
	// MaxSize is the largest input accepted, in bytes; 0 means DefaultMaxSize.
	MaxSize int
}

// Decode decodes one order with the default Decoder.
func Decode(data []byte) (*Order, error) { return Decoder{}.Decode(data) }

// Decode parses data as one JSON order object. Unknown fields are ignored (the
// upstream feed may add some), but everything else must be exact: one object,
// valid UTF-8, the right JSON type (not null) for every known field, integers
// that fit, known field names spelled with their exact case and given once,
// and nothing after the object. Decode does not validate the values; call
// Order.Validate for that.
func (d Decoder) Decode(data []byte) (*Order, error) {
	o, _, err := d.DecodeCanonical(data)
	return o, err
}

// DecodeCanonical decodes data as Decode does and also returns the order's
// canonical encoding when data already is it (trimmed of the whitespace
// around it), as the producer sends orders: then canonical is that part of
// data, bytes.Equal to what o.Canonical() would return, and the caller
// need not encode the order again. Otherwise canonical is nil. The
// ingestor hashes and caches the canonical bytes of every order it stores.
func (d Decoder) DecodeCanonical(data []byte) (o *Order, canonical []byte, err error) {
	limit := d.MaxSize
	if limit <= 0 {
		limit = DefaultMaxSize
	}
	if len(data) > limit {
		return nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), limit)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, nil, ErrEmpty
	}
	if !utf8.Valid(trimmed) {
		// encoding/json would silently replace bad bytes with U+FFFD,
		// storing something other than what was sent.
		return nil, nil, fmt.Errorf("%w: input is not valid UTF-8", ErrMalformed)
	}
	if trimmed[0] != '{' {
		return nil, nil, fmt.Errorf("%w: expected a JSON object", ErrMalformed)
	}
	if o, isCanonical, ok := decodeFast(trimmed); ok {
		if isCanonical {
			canonical = trimmed
		}
		return o, canonical, nil
	}
	o, err = decodeStrict(trimmed)
	return o, nil, err
}

// decodeStrict is Decode after its first checks, through encoding/json
// and checkKeys: the definition of what Decode accepts, and the source of
// its error texts. decodeFast is the shortcut for the common order.
func decodeStrict(trimmed []byte) (*Order, error) {
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	var o Order
	if err := dec.Decode(&o); err != nil {
		return nil, malformed(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: unexpected data after the order object", ErrMalformed)
	}
	if err := checkKeys(trimmed); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	o.DateCreated = o.DateCreated.Truncate(TimePrecision)
	return &o, nil
}

// malformed turns encoding/json's errors into messages that name the field.
func malformed(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var timeErr *time.ParseError
	switch {
	case errors.As(err, &timeErr), strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"):
		// time.Time's own errors do not say which field failed, and
		// date_created is the order's only time.
		return fmt.Errorf("%w: date_created: must be an RFC 3339 time string: %w", ErrMalformed, err)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(root)"
		}
		return fmt.Errorf("%w: %s: cannot use JSON %s as %s", ErrMalformed, field, typeErr.Value, typeErr.Type)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("%w: invalid JSON at byte %d: %w", ErrMalformed, syntaxErr.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("%w: truncated JSON", ErrMalformed)
	default:
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
}
