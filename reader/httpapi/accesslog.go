package httpapi

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// accessEntry is one access log line.
type accessEntry struct {
	time      time.Time
	requestID string
	method    string
	path      string
	route     string
	status    int
	bytes     int
	duration  time.Duration
	remote    string
	xCache    string
}

// AccessLog writes the access log as JSON lines of exactly the shape
// slog's JSONHandler gives (time, level, msg, the logger's fixed
// attributes, then the request's), without slog's generic machinery: the
// line is written for every request, and formatting it through slog cost
// about a third of a cached answer. A test checks the two agree.
//
// A buffered log (NewBufferedAccessLog) keeps the lines in memory and
// writes them in one call every flush interval: a write system call per
// request cost more than the rest of the line.
type AccessLog struct {
	w      io.Writer
	prefix string // fixed attributes, e.g. `"service":"reader",`
	pool   sync.Pool
	times  timeText

	flushMu sync.Mutex // held while writing to w, so that lines keep their order
	mu      sync.Mutex // guards the fields below
	buf     []byte     // lines not yet written
	spare   []byte     // the other buffer, reused while buf is written
	direct  bool       // write each line at once: unbuffered, or after Close
	stop    chan struct{}
	stopped chan struct{}
}

// accessLogMaxPending is how many bytes of lines wait at most: a burst
// larger than that is written before the timer fires.
const accessLogMaxPending = 256 << 10

// NewAccessLog writes each line to w as it is made; attrs are fixed string
// attributes written after msg on every line (the service's logger's With
// attributes).
func NewAccessLog(w io.Writer, attrs ...string) *AccessLog {
	a := newAccessLog(w, attrs)
	a.direct = true
	return a
}

// NewBufferedAccessLog writes the lines to w every flushEvery, or sooner
// when 256 KiB are waiting. Close writes what is left: call it once the
// server has stopped, or lines are lost.
func NewBufferedAccessLog(w io.Writer, flushEvery time.Duration, attrs ...string) *AccessLog {
	a := newAccessLog(w, attrs)
	a.stop, a.stopped = make(chan struct{}), make(chan struct{})
	go a.flushLoop(flushEvery)
	return a
}

func (a *AccessLog) flushLoop(every time.Duration) {
	defer close(a.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			_ = a.Flush()
		}
	}
}

// Flush writes the waiting lines.
func (a *AccessLog) Flush() error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	a.mu.Lock()
	b := a.buf
	a.buf, a.spare = a.spare[:0], nil
	a.mu.Unlock()
	var err error
	if len(b) > 0 {
		_, err = a.w.Write(b)
	}
	a.mu.Lock()
	a.spare = b[:0]
	a.mu.Unlock()
	return err
}

// Close stops the timer and writes the waiting lines; a line logged after
// Close (a request that outlived the shutdown) is written at once. Close
// of a nil or unbuffered log does nothing.
func (a *AccessLog) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	if a.direct {
		a.mu.Unlock()
		return nil
	}
	a.direct = true
	a.mu.Unlock()
	close(a.stop)
	<-a.stopped
	return a.Flush()
}

func newAccessLog(w io.Writer, attrs []string) *AccessLog {
	var p []byte
	for i := 0; i+1 < len(attrs); i += 2 {
		p = appendJSONString(p, attrs[i])
		p = append(p, ':')
		p = appendJSONString(p, attrs[i+1])
		p = append(p, ',')
	}
	a := &AccessLog{w: w, prefix: string(p)}
	a.pool.New = func() any { b := make([]byte, 0, 512); return &b }
	return a
}

func (a *AccessLog) write(e *accessEntry) {
	bp := a.pool.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = a.times.append(b, e.time)
	b = append(b, `","level":"INFO","msg":"request",`...)
	b = append(b, a.prefix...)
	b = append(b, `"request_id":`...)
	b = appendJSONString(b, e.requestID)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.method)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.path)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, e.route)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, int64(e.bytes), 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, int64(e.duration), 10)
	b = append(b, `,"remote":`...)
	b = appendJSONString(b, e.remote)
	b = append(b, `,"x_cache":`...)
	b = appendJSONString(b, e.xCache)
	b = append(b, "}\n"...)
	a.mu.Lock()
	a.buf = append(a.buf, b...)
	now := a.direct || len(a.buf) >= accessLogMaxPending
	a.mu.Unlock()
	if now {
		// A log that cannot be written must not fail the request.
		_ = a.Flush()
	}
	*bp = b
	a.pool.Put(bp)
}

// timeText formats times as time.RFC3339Nano does, for lines that come
// many a second: the lines of one second share its formatted date and
// zone, which AppendFormat would work out again for each (a sizeable part
// of a line's cost). The same instant in the same location has the same
// zone offset, so the text is the same. The zero value is ready; it is
// safe for concurrent use.
type timeText struct {
	last atomic.Pointer[secondText]
}

// secondText is one second, formatted: the date and time up to the
// second, and the zone.
type secondText struct {
	unix int64
	loc  *time.Location
	date string // "2006-01-02T15:04:05"
	zone string // "Z07:00"
}

// append appends t as t.AppendFormat(b, time.RFC3339Nano) does: the
// fraction without its trailing zeros, and no dot when it is zero.
func (tt *timeText) append(b []byte, t time.Time) []byte {
	s := tt.last.Load()
	if s == nil || s.unix != t.Unix() || s.loc != t.Location() {
		if y := t.Year(); y < 0 || y > 9999 {
			return t.AppendFormat(b, time.RFC3339Nano)
		}
		s = &secondText{unix: t.Unix(), loc: t.Location(),
			date: t.Format("2006-01-02T15:04:05"), zone: t.Format("Z07:00")}
		tt.last.Store(s)
	}
	b = append(b, s.date...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i > 0; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, s.zone...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string escaped as slog's JSON
// handler does: quotes, backslashes, control characters, U+2028 and
// U+2029; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
