// Package send delivers messages: to Kafka through an idempotent
// librdkafka producer that accounts for every delivery report, or to a writer
// for --dry-run. It also paces sending at a steady rate.
package send
