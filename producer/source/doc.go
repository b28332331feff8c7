// Package source produces the messages the producer sends: the embedded
// sample order, generated orders, orders read from a file, and deliberately
// bad messages covering every class the ingestor dead-letters.
//
// Every source is an iterator (Next returns io.EOF at the end) driven from one
// goroutine, so that a seeded run yields the same bytes every time.
package source
