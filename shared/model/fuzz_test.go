package model_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/orderservice/orders/shared/model"
	"github.com/orderservice/orders/shared/ordergen"
)

// FuzzDecode feeds arbitrary bytes through the ingestor's path: Decode, then
// Validate, then Canonical, then Decode again. Nothing may panic, every
// error must carry its class, and an order must survive its own canonical
// encoding unchanged. The checked-in corpus in testdata/fuzz/FuzzDecode runs
// with plain go test.
func FuzzDecode(f *testing.F) {
	f.Add(sampleJSON(f))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"items":[{}],"payment":{},"delivery":{}}`))
	f.Add([]byte(`{"order_uid":"a","items":null,"date_created":"0000-01-01T00:00:00+01:00"}`))
	f.Add([]byte(`{"order_uid":"\u0000\ud800<>&\u2028","sm_id":-0,"payment":{"amount":1e3}}`))
	g := ordergen.New(1)
	for range 3 {
		b, err := g.Order().Canonical()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastAgrees(t, data)
		o, err := model.Decode(data)
		if err != nil {
			if o != nil {
				t.Fatalf("Decode returned an order with error %v", err)
			}
			if !errors.Is(err, model.ErrEmpty) && !errors.Is(err, model.ErrTooLarge) && !errors.Is(err, model.ErrMalformed) {
				t.Fatalf("Decode error %q has no class", err)
			}
			if strings.Contains(err.Error(), "unexpected JSON structure") {
				// The key checker met input that encoding/json accepted
				// but it could not follow: a scanner bug, not bad input.
				t.Fatalf("key checker lost its way: %v", err)
			}
			return
		}
		verr := o.Validate()
		checkLibraryAgrees(t, o, verr)
		if verr != nil {
			var ve *model.ValidationError
			if !errors.As(verr, &ve) || len(ve.Fields) == 0 || !errors.Is(verr, model.ErrInvalid) {
				t.Fatalf("Validate error %T %q is not a non-empty *ValidationError", verr, verr)
			}
		}
		_ = model.Validator{SkipConsistency: true}.Validate(o)

		canon, err := o.Canonical()
		if err != nil {
			if verr == nil {
				t.Fatalf("valid order cannot be encoded: %v", err)
			}
			return
		}
		// Escaping (<, >, & become \u003c...) can make the canonical form
		// longer than the input, so the second decode has no size limit.
		back, err := model.Decoder{MaxSize: 1 << 30}.Decode(canon)
		if err != nil {
			t.Fatalf("canonical encoding %q does not decode: %v", canon, err)
		}
		if !equalOrders(o, back) {
			t.Fatalf("round trip changed the order:\n%+v\n%+v", o, back)
		}
		again, err := back.Canonical()
		if err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("canonical form is not a fixed point (%v):\n%s\n%s", err, canon, again)
		}
		if verr2 := back.Validate(); (verr == nil) != (verr2 == nil) || (verr != nil && verr.Error() != verr2.Error()) {
			t.Fatalf("validation changed across the round trip:\n%v\n%v", verr, verr2)
		}
	})
}
