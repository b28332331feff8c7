package dlq

import (
	"strconv"
	"strings"
	"time"
)

// Headers the ingestor writes on a dead letter, after the original ones.
const (
	HeaderReason          = "reason"
	HeaderError           = "error"
	HeaderFailedAt        = "failed_at"
	HeaderValueDropped    = "value_dropped"
	HeaderSourceTopic     = "__connect.errors.topic"
	HeaderSourcePartition = "__connect.errors.partition"
	HeaderSourceOffset    = "__connect.errors.offset"

	// HeaderRedriveCount is how many times a record has been redriven. A
	// redrive sets it to the letter's count plus one; the ingestor copies
	// it onto the next dead letter with the other original headers.
	HeaderRedriveCount = "redrive-count"
)

// connectPrefix starts every Kafka Connect dead-letter header.
const connectPrefix = "__connect.errors."

// diagnostic is every header the ingestor adds to a dead letter, besides
// the __connect.errors.* ones.
var diagnostic = map[string]bool{
	HeaderReason: true, HeaderError: true, HeaderFailedAt: true, HeaderValueDropped: true,
	"source_topic": true, "source_partition": true, "source_offset": true, "source_timestamp": true,
}

func isDiagnostic(key string) bool { return diagnostic[key] || strings.HasPrefix(key, connectPrefix) }

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Letter is one record of the dead-letter topic, parsed.
type Letter struct {
	// Partition and Offset locate the letter in the dead-letter topic.
	Partition int32
	Offset    int64
	// Key and Value are the original record's (Value is nil when the
	// ingestor dropped it, see ValueDropped).
	Key, Value []byte
	// Headers are the letter's headers, all of them, as stored.
	Headers []Header
	// Original are the original record's headers: Headers without the
	// ingestor's diagnostic block and without redrive-count.
	Original []Header

	Reason string
	Error  string
	// Time is when the message was dead-lettered (failed_at), or the
	// letter's timestamp when that header is missing or unreadable.
	Time time.Time

	// SourceTopic, SourcePartition and SourceOffset say where the
	// original record was; the partition and offset are -1 when unknown.
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64

	// RedriveCount is the original record's redrive-count (0 if none).
	RedriveCount int
	// ValueDropped is set when the ingestor could not fit the original
	// value into the dead-letter topic and sent the letter without it; it
	// says how large the value was.
	ValueDropped string
}

// Parse reads a dead-letter record.
func Parse(partition int32, offset int64, key, value []byte, headers []Header, timestamp time.Time) Letter {
	l := Letter{
		Partition: partition, Offset: offset, Key: key, Value: value, Headers: headers,
		Time: timestamp, SourcePartition: -1, SourceOffset: -1,
	}
	start := diagnosticStart(headers)
	for _, h := range headers[:start] {
		if h.Key == HeaderRedriveCount {
			if n, err := strconv.Atoi(string(h.Value)); err == nil && n > 0 {
				l.RedriveCount = n
			}
			continue
		}
		l.Original = append(l.Original, h)
	}
	for _, h := range headers[start:] {
		v := string(h.Value)
		switch h.Key {
		case HeaderReason:
			l.Reason = v
		case HeaderError:
			l.Error = v
		case HeaderFailedAt:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				l.Time = t
			}
		case HeaderValueDropped:
			l.ValueDropped = v
		case HeaderSourceTopic:
			l.SourceTopic = v
		case HeaderSourcePartition:
			if n, err := strconv.ParseInt(v, 10, 32); err == nil && n >= 0 {
				l.SourcePartition = int32(n)
			}
		case HeaderSourceOffset:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				l.SourceOffset = n
			}
		}
	}
	if l.ValueDropped != "" {
		l.Value = nil
	}
	return l
}

// diagnosticStart returns the index of the first header of the trailing
// diagnostic block. The ingestor appends its headers after the original
// ones, starting with reason; an original header that happens to share a
// name (a "reason" of the upstream system's) comes before the block and
// stays original.
func diagnosticStart(headers []Header) int {
	start := len(headers)
	for start > 0 && isDiagnostic(headers[start-1].Key) {
		start--
	}
	// Within the block, the ingestor's own begins at its (only) reason.
	for i := len(headers) - 1; i >= start; i-- {
		if headers[i].Key == HeaderReason {
			return i
		}
	}
	return start
}

// Source returns "topic/partition@offset", with "?" for what is unknown.
func (l *Letter) Source() string {
	t, p, o := l.SourceTopic, "?", "?"
	if t == "" {
		t = "?"
	}
	if l.SourcePartition >= 0 {
		p = strconv.Itoa(int(l.SourcePartition))
	}
	if l.SourceOffset >= 0 {
		o = strconv.FormatInt(l.SourceOffset, 10)
	}
	return t + "/" + p + "@" + o
}
