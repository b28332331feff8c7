package model

// The two decoding paths, for the tests that check they agree: decodeFast
// may only return orders that decodeStrict returns too.
var (
	DecodeFast   = decodeFast
	DecodeStrict = decodeStrict
)
