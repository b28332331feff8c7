package source

import (
	_ "embed"
	"fmt"

	"github.com/orderservice/orders/shared/model"
)

// sampleJSON is a copy of shared/model/testdata/model.json, the upstream
// feed's reference order (a test keeps the two identical). It is embedded so
// that the binary works from any directory.
//
//go:embed sample.json
var sampleJSON []byte

// SampleOrder returns the canonical sample order, decoded and validated.
func SampleOrder() (*model.Order, error) {
	o, err := model.Decode(sampleJSON)
	if err != nil {
		return nil, fmt.Errorf("embedded sample: %w", err)
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("embedded sample: %w", err)
	}
	return o, nil
}

// Sample yields the sample order once, in its canonical encoding.
func Sample() (Source, error) {
	o, err := SampleOrder()
	if err != nil {
		return nil, err
	}
	m, err := orderMessage(o)
	if err != nil {
		return nil, err
	}
	return &slice{msgs: []Message{m}}, nil
}
