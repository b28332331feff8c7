package model

import (
	"encoding/json"
	"errors"
	"fmt"
)

// EventsChannel is the Redis pub/sub channel on which the ingestor
// announces what each committed batch changed, for every reader to drop
// what it caches about those orders: <prefix>orders:events, where prefix
// is the services' Redis key prefix.
func EventsChannel(prefix string) string { return prefix + "orders:events" }

// Events is one message of the events channel: the order_uids a batch
// stored and those it erased. It is encoded as JSON,
// {"stored":["b563feb7b2b84b6test"],"erased":["…"]}, an empty list left
// out.
type Events struct {
	Stored []string `json:"stored,omitempty"`
	Erased []string `json:"erased,omitempty"`
}

// ErrBadEvents is wrapped by DecodeEvents' errors.
var ErrBadEvents = errors.New("malformed events message")

// DecodeEvents decodes one message of the events channel. Anyone who can
// publish on the channel can send anything, so every uid must match
// UIDPattern; the error names the first that does not by its position
// only.
func DecodeEvents(b []byte) (Events, error) {
	var ev Events
	if err := json.Unmarshal(b, &ev); err != nil {
		return Events{}, fmt.Errorf("%w: %w", ErrBadEvents, err)
	}
	for name, uids := range map[string][]string{"stored": ev.Stored, "erased": ev.Erased} {
		for i, uid := range uids {
			if !UIDPattern.MatchString(uid) {
				return Events{}, fmt.Errorf("%w: %s[%d] is not an order_uid", ErrBadEvents, name, i)
			}
		}
	}
	return ev, nil
}
