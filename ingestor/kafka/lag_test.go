package kafka

import (
	"testing"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// A partition not consumed from yet starts where librdkafka would start
// it: the committed offset, or the low watermark (auto.offset.reset is
// "earliest") when there is none or it is outside the log. The cases with
// a broker are covered by the ingestor's TestConsumerLagOfPartitionsNotConsumedYet.
func TestStartOffset(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                 string
		committed, low, high int64
		want                 int64
	}{
		{"committed", 5, 0, 9, 5},
		{"committed at the end", 9, 0, 9, 9},
		{"committed at the start", 3, 3, 9, 3},
		{"none", int64(ckafka.OffsetInvalid), 0, 9, 0},
		{"none, log truncated", int64(ckafka.OffsetInvalid), 4, 9, 4},
		{"below the log (deleted by retention)", 2, 4, 9, 4},
		{"beyond the log", 12, 4, 9, 4},
	} {
		if got := startOffset(c.committed, c.low, c.high); got != c.want {
			t.Errorf("%s: startOffset(%d, %d, %d) = %d, want %d", c.name, c.committed, c.low, c.high, got, c.want)
		}
	}
}
