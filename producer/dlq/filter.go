package dlq

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Filter selects letters. The zero Filter selects every letter; each field
// set narrows the selection (all of them must match).
type Filter struct {
	// Reasons the letter must have one of.
	Reasons []string
	// Keys the letter's key must be one of, exactly.
	Keys []string
	// KeyPattern is a glob (path.Match syntax: *, ?, [a-z], \ escapes)
	// the whole key must match.
	KeyPattern string
	// Since (inclusive) and Until (exclusive) bound the letter's Time.
	Since, Until time.Time
	// Partitions the original record must have been on, in its source topic.
	Partitions []int32
	// OffsetFrom and OffsetEnd bound the original record's offset: from
	// OffsetFrom (inclusive) to OffsetEnd (exclusive; 0 means no bound).
	OffsetFrom, OffsetEnd int64
}

// Validate reports a filter that cannot be used.
func (f *Filter) Validate() error {
	if f.KeyPattern != "" {
		if _, err := path.Match(f.KeyPattern, ""); err != nil {
			return fmt.Errorf("key pattern %q: %w", f.KeyPattern, err)
		}
	}
	switch {
	case !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since):
		return fmt.Errorf("until (%s) must be after since (%s)", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	case f.OffsetFrom < 0:
		return fmt.Errorf("offset from %d: want >= 0", f.OffsetFrom)
	case f.OffsetEnd < 0:
		return fmt.Errorf("offset end %d: want >= 0", f.OffsetEnd)
	case f.OffsetEnd > 0 && f.OffsetEnd <= f.OffsetFrom:
		return fmt.Errorf("offset range %d..%d is empty", f.OffsetFrom, f.OffsetEnd-1)
	}
	for _, p := range f.Partitions {
		if p < 0 {
			return fmt.Errorf("partition %d: want >= 0", p)
		}
	}
	return nil
}

// Match reports whether the filter selects l.
func (f *Filter) Match(l *Letter) bool {
	switch {
	case len(f.Reasons) > 0 && !slices.Contains(f.Reasons, l.Reason):
		return false
	case len(f.Keys) > 0 && !slices.Contains(f.Keys, string(l.Key)):
		return false
	case !f.Since.IsZero() && l.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !l.Time.Before(f.Until):
		return false
	case len(f.Partitions) > 0 && !slices.Contains(f.Partitions, l.SourcePartition):
		return false
	case f.OffsetFrom > 0 && l.SourceOffset < f.OffsetFrom:
		return false
	case f.OffsetEnd > 0 && (l.SourceOffset < 0 || l.SourceOffset >= f.OffsetEnd):
		return false
	}
	if f.KeyPattern != "" {
		ok, err := path.Match(f.KeyPattern, string(l.Key))
		return ok && err == nil
	}
	return true
}

// IsZero reports whether the filter selects every letter.
func (f *Filter) IsZero() bool { return f.String() == "" }

// String describes the filter canonically: equal selections give equal
// strings, whatever the order of the flags. "" is the zero filter.
func (f *Filter) String() string {
	var parts []string
	if len(f.Reasons) > 0 {
		parts = append(parts, "reason="+strings.Join(sortedUnique(f.Reasons), ","))
	}
	if len(f.Keys) > 0 {
		parts = append(parts, "key="+strings.Join(sortedUnique(f.Keys), ","))
	}
	if f.KeyPattern != "" {
		parts = append(parts, "key-pattern="+f.KeyPattern)
	}
	if !f.Since.IsZero() {
		parts = append(parts, "since="+f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "until="+f.Until.UTC().Format(time.RFC3339Nano))
	}
	if len(f.Partitions) > 0 {
		ps := slices.Clone(f.Partitions)
		slices.Sort(ps)
		ps = slices.Compact(ps)
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = strconv.Itoa(int(p))
		}
		parts = append(parts, "partition="+strings.Join(s, ","))
	}
	if f.OffsetFrom > 0 {
		parts = append(parts, "offset-from="+strconv.FormatInt(f.OffsetFrom, 10))
	}
	if f.OffsetEnd > 0 {
		parts = append(parts, "offset-to="+strconv.FormatInt(f.OffsetEnd-1, 10))
	}
	return strings.Join(parts, " ")
}

func sortedUnique(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
