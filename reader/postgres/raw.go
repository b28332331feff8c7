package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// Rows read in bulk (search pages, warm-up pages) are decoded from pgx's
// raw values rather than with Scan, whose per-value scan plans and
// allocations were most of the reader's cost of a row: the numbers are
// big-endian, the dates µs since 2000, and the texts the bytes as sent
// (the text and binary formats of a text type are the same). A result
// whose columns are not the expected types (a schema changed under the
// reader) goes through Scan instead; decodable says which.

// textOID in a table of column types stands for any text type (text,
// varchar, char).
const textOID = 0

// decodable reports whether fields are the columns of types want (see
// textOID), the numbers and dates in binary.
func decodable(fields []pgconn.FieldDescription, want []uint32) bool {
	if len(fields) != len(want) {
		return false
	}
	for k, f := range fields {
		switch w := want[k]; {
		case w == textOID:
			if f.DataTypeOID != pgtype.TextOID && f.DataTypeOID != pgtype.VarcharOID && f.DataTypeOID != pgtype.BPCharOID {
				return false
			}
		case f.DataTypeOID != w || f.Format != pgx.BinaryFormatCode:
			return false
		}
	}
	return true
}

// columnTypes is the table of column types (for decodable) of rows
// decoded into dests by decodeRow.
func columnTypes(dests []any) []uint32 {
	want := make([]uint32, len(dests))
	for k, d := range dests {
		switch d.(type) {
		case *string:
			want[k] = textOID
		case *int16:
			want[k] = pgtype.Int2OID
		case *int32:
			want[k] = pgtype.Int4OID
		case *int64:
			want[k] = pgtype.Int8OID
		case *time.Time:
			want[k] = pgtype.TimestamptzOID
		default:
			panic(fmt.Sprintf("postgres: columnTypes: no raw decoding into %T", d))
		}
	}
	return want
}

// pgEpoch is PostgreSQL's timestamp zero, in µs since 1970.
var pgEpoch = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// errRawValue is a value the raw decoding cannot read: NULL, or a number
// or date of the wrong size.
var errRawValue = errors.New("unexpected value in a row")

// decodeTimestamptz reads a binary timestamptz, in UTC.
func decodeTimestamptz(b []byte) (time.Time, error) {
	if len(b) != 8 {
		return time.Time{}, errRawValue
	}
	us := int64(binary.BigEndian.Uint64(b))
	if us == math.MaxInt64 || us == math.MinInt64 {
		return time.Time{}, fmt.Errorf("%w: an infinite date", errRawValue) // 'infinity', '-infinity'
	}
	return time.UnixMicro(pgEpoch + us).UTC(), nil
}

// texts collects the text values of a result in one allocation: add
// appends a value's bytes and notes its place, and once every row is read,
// set hands the values out, in the order they were added, as substrings of
// one string. The values therefore share one allocation, which lives as
// long as any of them: for values that are released together.
type texts struct {
	arena []byte
	spans [][2]int32
	all   string
	next  int
}

// newTexts returns texts with room for n values of size bytes in all.
func newTexts(size, n int) texts {
	return texts{arena: make([]byte, 0, size), spans: make([][2]int32, 0, n)}
}

func (t *texts) add(b []byte) {
	t.arena = append(t.arena, b...)
	t.spans = append(t.spans, [2]int32{int32(len(t.arena) - len(b)), int32(len(t.arena))})
}

// done ends the adding: from here on set hands the values out.
func (t *texts) done() {
	t.all, t.arena = string(t.arena), nil
	t.next = 0
}

// set gives each *string of dests the next value, in order.
func (t *texts) set(dests []any) {
	for _, d := range dests {
		if p, ok := d.(*string); ok {
			s := t.spans[t.next]
			*p = t.all[s[0]:s[1]]
			t.next++
		}
	}
}

// decodeRow reads the raw values v of a row whose columns decodable
// accepted for columnTypes(dests) into dests: the numbers and dates now,
// the texts added to tx, for tx.set once the result is read. NULL is an
// error, as Scan into these types makes it.
func decodeRow(v [][]byte, dests []any, tx *texts) error {
	if len(v) != len(dests) {
		return fmt.Errorf("%w: %d values for %d columns", errRawValue, len(v), len(dests))
	}
	for k, d := range dests {
		b := v[k]
		if b == nil {
			return fmt.Errorf("%w: NULL in column %d", errRawValue, k)
		}
		switch d := d.(type) {
		case *string:
			tx.add(b)
		case *int16:
			if len(b) != 2 {
				return errRawValue
			}
			*d = int16(binary.BigEndian.Uint16(b))
		case *int32:
			if len(b) != 4 {
				return errRawValue
			}
			*d = int32(binary.BigEndian.Uint32(b))
		case *int64:
			if len(b) != 8 {
				return errRawValue
			}
			*d = int64(binary.BigEndian.Uint64(b))
		case *time.Time:
			t, err := decodeTimestamptz(b)
			if err != nil {
				return err
			}
			*d = t
		default:
			return fmt.Errorf("%w: no raw decoding into %T", errRawValue, d)
		}
	}
	return nil
}
