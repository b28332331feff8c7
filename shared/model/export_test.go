package model

// The two decoding paths, for the tests that check they agree: decodeFast
// may only return orders that decodeStrict returns too.
var (
	DecodeFast   = decodeFast
	DecodeStrict = decodeStrict
)

// ValidateLibrary is Validate with every field's invopop/validation rules
// applied, the shortcuts ignored: what Validate must always agree with.
func ValidateLibrary(o *Order) error { return Validator{}.validate(o, true) }
