package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/orderservice/orders/reader/cache"
	"github.com/orderservice/orders/shared/model"
)

// A cursor (next_cursor, and the cursor parameter that brings it back) is
// the key of the last order of a page and a digest of the filters it was
// issued for, with an integrity tag, in unpadded base64url:
//
//	version 1 | date_created: µs since 1970, int64 big-endian (8) |
//	filters digest (8) | len(order_uid) (1) | order_uid | tag (16)
//
// The tag is the first 16 bytes of SHA-256 over cursorLabel and the bytes
// before it. It is deliberately not keyed (not an HMAC): every reader
// instance must take every other's cursors, across restarts and deploys,
// and a key shared by all of them would have to be distributed and
// rotated while protecting nothing, because a cursor grants nothing. It
// says where in a list to resume, and any place it could name, a client
// reaches as well with created_to and the same filters. So the tag is an
// integrity check, not a signature: a cursor cut short, edited or mangled
// in a copy is refused (400) instead of silently answering another page;
// one built by hand on purpose is only another position, and the decoder
// checks what it reads (the uid's pattern, the date's range) so that it
// cannot make a query fail.
//
// The filters digest is of the parsed filters (see filterDigest), so the
// same filters written differently (another offset for the same instant)
// match, and a cursor brought to other filters is refused: a position in
// one list means nothing in another. limit is not a filter; a client may
// change its page size between pages.
const (
	cursorVersion = 1
	cursorLabel   = "orderservice/reader cursor v1\x00"
	digestLen     = 8
	tagLen        = 16
	cursorHead    = 1 + 8 + digestLen + 1 // version, date, digest, uid length
	// maxCursorLen is the longest cursor encodeCursor writes.
	maxCursorLen = (cursorHead + model.MaxUIDLen + tagLen + 2) / 3 * 4
)

var cursorEncoding = base64.RawURLEncoding.Strict()

var (
	errCursorMalformed = errors.New("cursor is not one this API issued, or was altered: start again without it")
	errCursorFilters   = errors.New("cursor was issued for other filters: start again without it, or repeat the filters it was issued with")
)

// encodeCursor returns the cursor that resumes after k in the list of f.
func encodeCursor(k cache.Key, f cache.Filter) string {
	b := make([]byte, 0, cursorHead+len(k.OrderUID)+tagLen)
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(k.DateCreated.UnixMicro()))
	d := filterDigest(f)
	b = append(b, d[:]...)
	b = append(b, byte(len(k.OrderUID)))
	b = append(b, k.OrderUID...)
	tag := cursorTag(b)
	b = append(b, tag[:]...)
	return cursorEncoding.EncodeToString(b)
}

// decodeCursor returns the key s resumes after, if s is a cursor of the
// list of f.
func decodeCursor(s string, f cache.Filter) (cache.Key, error) {
	// The decoder skips line breaks; a cursor has one spelling.
	if len(s) > maxCursorLen || strings.ContainsAny(s, "\r\n") {
		return cache.Key{}, errCursorMalformed
	}
	b, err := cursorEncoding.DecodeString(s)
	if err != nil || len(b) < cursorHead+1+tagLen || b[0] != cursorVersion {
		return cache.Key{}, errCursorMalformed
	}
	uidLen := int(b[cursorHead-1])
	if len(b) != cursorHead+uidLen+tagLen {
		return cache.Key{}, errCursorMalformed
	}
	body, tag := b[:len(b)-tagLen], b[len(b)-tagLen:]
	if want := cursorTag(body); !bytes.Equal(tag, want[:]) {
		return cache.Key{}, errCursorMalformed
	}
	uid := string(body[cursorHead:])
	date := time.UnixMicro(int64(binary.BigEndian.Uint64(body[1:9]))).UTC()
	if !validUID(uid) || date.Year() < 1 || date.Year() > 9999 {
		return cache.Key{}, errCursorMalformed
	}
	if d := filterDigest(f); !bytes.Equal(body[9:9+digestLen], d[:]) {
		return cache.Key{}, errCursorFilters
	}
	return cache.Key{DateCreated: date, OrderUID: uid}, nil
}

func cursorTag(body []byte) [tagLen]byte {
	h := sha256.New()
	h.Write([]byte(cursorLabel))
	h.Write(body)
	var tag [tagLen]byte
	copy(tag[:], h.Sum(nil))
	return tag
}

// filterDigest identifies f: SHA-256 over each field, length-prefixed so
// that no two filters share an encoding, the dates as µs since 1970.
func filterDigest(f cache.Filter) [digestLen]byte {
	h := sha256.New()
	h.Write([]byte("filters v1\x00"))
	var buf []byte
	for _, s := range []string{f.TrackNumber, f.CustomerID, f.Currency} {
		buf = binary.AppendUvarint(buf[:0], uint64(len(s)))
		h.Write(buf)
		h.Write([]byte(s))
	}
	for _, t := range []time.Time{f.CreatedFrom, f.CreatedTo} {
		buf = buf[:0]
		if t.IsZero() {
			buf = append(buf, 0)
		} else {
			buf = binary.BigEndian.AppendUint64(append(buf, 1), uint64(t.UnixMicro()))
		}
		h.Write(buf)
	}
	var d [digestLen]byte
	copy(d[:], h.Sum(nil))
	return d
}
