// Package model is the order domain shared by every part of the system: the
// Order type with the JSON field names of the upstream order feed, a strict
// decoder, validation rules (with the consistency rules named, for a
// service that may accept orders breaking only them), a canonical encoder,
// and the events message the ingestor announces to the readers after every
// batch (EventsChannel, Events).
//
// It imports no database, cache or broker code. The ingestor, the reader and
// the producer all use it, so that an order accepted by one is understood the
// same way by the others.
package model
