// Package dlq reads the ingestor's dead-letter topic and puts its letters
// back: the engine of `producer dlq stats`, `ls` and `redrive`.
//
// A dead letter (see ingestor/kafka/dlq.go) is the original record's key,
// value and headers, followed by the ingestor's diagnostic headers: reason,
// error, source_* and failed_at, and the Kafka Connect __connect.errors.*
// headers that existing tooling reads (the source topic, partition and
// offset among them). Parse splits the two apart, so that a redrive
// republishes exactly what the source topic once held, plus a
// redrive-count header.
//
// Reading. Scan reads partitions from given offsets up to the high
// watermarks seen when it started, then stops: letters that arrive while a
// redrive runs (its own records failing again, for one) wait for the next
// run instead of looping.
//
// Progress. A redrive keeps its position as a consumer group's committed
// offsets (the group never joins: partitions are assigned by hand). A
// partition's committed offset only moves past a letter once that letter
// is done: skipped by the filter, or republished (or parked) and
// acknowledged by the broker. A run that is interrupted stops reading,
// waits for the records in flight and commits, so the next run with the
// same group resumes after every acknowledged letter and sends none of
// them again.
package dlq
