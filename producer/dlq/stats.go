package dlq

import (
	"cmp"
	"maps"
	"slices"
)

// Stats summarises letters.
type Stats struct {
	// Scanned is how many letters were read, Letters how many the filter
	// selected; the rest counts only those.
	Scanned int64 `json:"scanned"`
	Letters int64 `json:"letters"`
	// ByReason counts letters per reason.
	ByReason map[string]int64 `json:"by_reason"`
	// Redriven counts letters whose record had been redriven before.
	Redriven int64 `json:"redriven"`
	// Oldest and Newest are the letters dead-lettered first and last (by
	// Time), nil when there are none.
	Oldest *Brief `json:"oldest"`
	Newest *Brief `json:"newest"`
	// BySource counts letters per source topic and partition.
	BySource []SourceStats `json:"by_source_partition"`

	bySource map[sourceKey]*SourceStats
}

// SourceStats counts the letters of one source partition.
type SourceStats struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"` // -1: unknown
	Letters   int64  `json:"letters"`
	// FirstOffset and LastOffset are the smallest and largest source
	// offsets among them (-1: unknown).
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
}

type sourceKey struct {
	topic     string
	partition int32
}

// NewStats returns empty stats.
func NewStats() *Stats {
	return &Stats{ByReason: map[string]int64{}, bySource: map[sourceKey]*SourceStats{}}
}

// Add counts a selected letter.
func (s *Stats) Add(l *Letter) {
	s.Letters++
	s.ByReason[l.Reason]++
	if l.RedriveCount > 0 {
		s.Redriven++
	}
	if s.Oldest == nil || l.Time.Before(s.Oldest.Time) {
		b := BriefOf(l)
		s.Oldest = &b
	}
	if s.Newest == nil || !l.Time.Before(s.Newest.Time) {
		b := BriefOf(l)
		s.Newest = &b
	}
	k := sourceKey{l.SourceTopic, l.SourcePartition}
	src := s.bySource[k]
	if src == nil {
		src = &SourceStats{Topic: l.SourceTopic, Partition: l.SourcePartition, FirstOffset: l.SourceOffset, LastOffset: l.SourceOffset}
		s.bySource[k] = src
	}
	src.Letters++
	if l.SourceOffset >= 0 {
		if src.FirstOffset < 0 || l.SourceOffset < src.FirstOffset {
			src.FirstOffset = l.SourceOffset
		}
		src.LastOffset = max(src.LastOffset, l.SourceOffset)
	}
}

// Done fills BySource, sorted by topic and partition.
func (s *Stats) Done() {
	s.BySource = s.BySource[:0]
	for _, k := range slices.SortedFunc(maps.Keys(s.bySource), func(a, b sourceKey) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	}) {
		s.BySource = append(s.BySource, *s.bySource[k])
	}
}

// Reasons returns the reasons counted, most letters first.
func (s *Stats) Reasons() []string {
	rs := slices.Collect(maps.Keys(s.ByReason))
	slices.SortFunc(rs, func(a, b string) int {
		return cmp.Or(cmp.Compare(s.ByReason[b], s.ByReason[a]), cmp.Compare(a, b))
	})
	return rs
}
