package model

import (
	"encoding/json"
	"fmt"
)

// Canonical returns the canonical JSON encoding of o: compact, fields in the
// order of the upstream sample, date_created in UTC truncated to
// TimePrecision, items as an array even
// when empty. The same order always gives the same bytes, so the encoding can
// be hashed to tell a redelivered order from a conflicting one, cached, and
// compared byte for byte.
func (o *Order) Canonical() ([]byte, error) {
	c := *o
	c.DateCreated = c.DateCreated.UTC().Truncate(TimePrecision)
	if c.Items == nil {
		c.Items = []Item{}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encode order %q: %w", o.OrderUID, err)
	}
	return b, nil
}
