package model

// CacheKey is the key of the order uid in the shared Redis cache:
// <prefix>order:<uid>, its value the order's Canonical encoding. The
// ingestor writes under it and the reader reads under it, so it is as much
// a contract between the two as the encoding is; prefix is each service's
// configured key prefix (empty by default), the same for both.
func CacheKey(prefix, uid string) string { return prefix + "order:" + uid }
