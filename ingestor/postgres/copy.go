package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// The COPY fast path writes PostgreSQL's binary COPY format itself, row by
// row from the orders, instead of through pgx's CopyFrom. pgx boxes every
// value of a row in an interface (an allocation per string and per large
// integer, and a []any per row) and looks each value's encode plan up in
// its type map: about a quarter of the ingestor's CPU once decoding and
// validation were cheap. The bytes are the same as pgx's: a text column is
// its bytes, bigint and smallint big-endian, timestamptz microseconds since
// 2000-01-01 UTC, bytea its bytes.
//
// The layout is fixed here while pgx would follow the columns' types, so
// each copy first checks the types PostgreSQL reports for its columns (a
// statement description, cached by pgx per connection) against the ones
// encoded. A migration that changes one fails every write with an error
// that is not a PostgreSQL data error: transient, retried while /readyz
// says not ready, never a batch of orders dead-lettered for a wrong
// encoding.

// colType is how a column is encoded.
type colType uint8

const (
	colText        colType = iota // text, varchar, char
	colInt8                       // bigint
	colInt2                       // smallint
	colTimestamptz                // timestamptz
	colBytea                      // bytea
)

// accepts reports whether a column of type oid takes values encoded as t.
func (t colType) accepts(oid uint32) bool {
	switch t {
	case colText:
		return oid == pgtype.TextOID || oid == pgtype.VarcharOID || oid == pgtype.BPCharOID
	case colInt8:
		return oid == pgtype.Int8OID
	case colInt2:
		return oid == pgtype.Int2OID
	case colTimestamptz:
		return oid == pgtype.TimestamptzOID
	case colBytea:
		return oid == pgtype.ByteaOID
	}
	return false
}

type column struct {
	name string
	typ  colType
}

// copyTable is a table the fast path copies into: its columns in the
// order its row encoder writes them.
type copyTable struct {
	name     string
	cols     []column
	copySQL  string
	describe string // selects the columns: its description gives their types
}

func newCopyTable(name string, cols ...column) *copyTable {
	t := &copyTable{name: name, cols: cols}
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = pgx.Identifier{c.name}.Sanitize()
	}
	list := strings.Join(quoted, ", ")
	table := pgx.Identifier{name}.Sanitize()
	t.copySQL = fmt.Sprintf("COPY %s (%s) FROM STDIN BINARY", table, list)
	t.describe = fmt.Sprintf("SELECT %s FROM %s", list, table)
	return t
}

// copy streams the rows that next encodes (see rowSource) into the table.
func (t *copyTable) copy(ctx context.Context, tx pgx.Tx, rows rowSource) error {
	// Prepare is idempotent per connection for the same name and SQL: one
	// round trip on a connection's first copy into the table, none later.
	sd, err := tx.Conn().Prepare(ctx, "ingestor_copy_"+t.name, t.describe)
	if err != nil {
		return fmt.Errorf("describe %s: %w", t.name, err)
	}
	if len(sd.Fields) != len(t.cols) {
		return fmt.Errorf("describe %s: %d columns, want %d", t.name, len(sd.Fields), len(t.cols))
	}
	for i, f := range sd.Fields {
		if !t.cols[i].typ.accepts(f.DataTypeOID) {
			return fmt.Errorf("column %s.%s has type OID %d, which the COPY encoder does not write", t.name, t.cols[i].name, f.DataTypeOID)
		}
	}
	r := &copyReader{rows: rows, cols: uint16(len(t.cols))}
	r.buf = append(r.buf, "PGCOPY\n\377\r\n\000"...)
	r.buf = binary.BigEndian.AppendUint32(r.buf, 0) // flags
	r.buf = binary.BigEndian.AppendUint32(r.buf, 0) // header extension length
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, r, t.copySQL); err != nil {
		return err
	}
	return nil
}

// rowSource appends the next row's fields to b (the field count is the
// reader's) and reports false when there is none.
type rowSource func(b []byte) ([]byte, bool)

// copyReader is the COPY data: the header (already in buf), the rows,
// encoded as the connection reads, and the trailer.
type copyReader struct {
	rows rowSource
	cols uint16
	buf  []byte
	off  int
	done bool
}

func (r *copyReader) Read(p []byte) (int, error) {
	if len(r.buf)-r.off < len(p) && !r.done {
		r.buf = r.buf[:copy(r.buf, r.buf[r.off:])]
		r.off = 0
		for len(r.buf) < len(p) {
			row := len(r.buf)
			b, ok := r.rows(binary.BigEndian.AppendUint16(r.buf, r.cols))
			if !ok {
				r.buf = binary.BigEndian.AppendUint16(r.buf[:row], 0xffff) // the trailer
				r.done = true
				break
			}
			r.buf = b
		}
	}
	if r.off == len(r.buf) {
		return 0, io.EOF
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

func appendText(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBytea(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

func appendInt8(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

func appendInt2(b []byte, v int16) []byte {
	b = binary.BigEndian.AppendUint32(b, 2)
	return binary.BigEndian.AppendUint16(b, uint16(v))
}

// y2k is PostgreSQL's epoch, in microseconds since the Unix epoch.
var y2k = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()

// appendTimestamptz encodes t as pgx does: whole microseconds since
// 2000-01-01 UTC, the nanoseconds below truncated.
func appendTimestamptz(b []byte, t time.Time) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	us := t.Unix()*1_000_000 + int64(t.Nanosecond())/1000
	return binary.BigEndian.AppendUint64(b, uint64(us-y2k))
}
