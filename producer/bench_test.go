package main

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkProduceGenerate sends b.N generated orders to a topic of the
// test broker (in-process kfake unless TEST_KAFKA_BROKERS names another)
// and reports delivered messages per second, end to end: generation,
// encoding, librdkafka and every delivery report. The figure is
//
//	go test -run '^$' -bench ProduceGenerate -benchtime 200000x .
func BenchmarkProduceGenerate(b *testing.B) {
	brokers, topic := kafkaTopic(b, 6)
	args := []string{"--brokers", brokers, "--topic", topic, "--generate", strconv.Itoa(b.N),
		"--seed", "1", "--progress", "off"}
	var stderr strings.Builder
	b.ResetTimer()
	start := time.Now()
	err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), io.Discard, &stderr)
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if n := countRecords(b, brokers, topic); n != int64(b.N) {
		b.Fatalf("topic holds %d records, want %d", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkRedrive redrives b.N dead letters (generated orders, each
// dead-lettered by the ingestor's own producer) from a 3-partition
// dead-letter topic back to their 6-partition source topic, and reports
// letters per second: from the first read of the dead-letter topic to the
// last commit, every record acknowledged. The figure in the README is
//
//	go test -run '^$' -bench Redrive -benchtime 20000x .
func BenchmarkRedrive(b *testing.B) {
	e := newDLQEnv(b, 6, 3)
	e.generated(b, b.N)
	originals := countRecords(b, e.brokers, e.source)
	var stderr strings.Builder
	b.ResetTimer()
	start := time.Now()
	err := run(context.Background(), e.dlqArgs("redrive"), func(string) string { return "" }, strings.NewReader(""), io.Discard, &stderr)
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if n := countRecords(b, e.brokers, e.source) - originals; n != int64(b.N) {
		b.Fatalf("%d letters redriven, want %d\n%s", n, b.N, stderr.String())
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "letters/s")
}
