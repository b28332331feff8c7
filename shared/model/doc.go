// Package model is the order domain shared by every part of the system: the
// Order type with the JSON field names of the upstream order feed, a strict
// decoder, validation rules and a canonical encoder.
//
// It imports no database, cache or broker code. The ingestor, the reader and
// the producer all use it, so that an order accepted by one is understood the
// same way by the others.
package model
