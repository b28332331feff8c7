package benchscale

import (
	"fmt"
	"strconv"
	"strings"
)

// parseSteps reads a comma-separated list of stored-order counts, each a
// non-negative integer with an optional k (thousand) or M (million)
// suffix, in strictly increasing order: "0,1M,3M", "0,100000,300000".
func parseSteps(s string) ([]int, error) {
	var out []int
	for field := range strings.SplitSeq(s, ",") {
		field = strings.TrimSpace(field)
		n, err := parseCount(field)
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", field, err)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("step %q: steps must increase (%d after %d)", field, n, out[len(out)-1])
		}
		out = append(out, n)
	}
	return out, nil
}

// parseCount reads a non-negative count with an optional k or M suffix.
func parseCount(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1_000, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1_000_000, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a count (a non-negative integer, optionally with k or M)")
	}
	if n > 1_000_000_000/mult {
		return 0, fmt.Errorf("over a billion orders")
	}
	return n * mult, nil
}

// parseEnv reads environment assignments separated by white space:
// "READER_GC_PERCENT=100 GOMAXPROCS=1".
func parseEnv(s string) ([]string, error) {
	var out []string
	for _, kv := range strings.Fields(s) {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsAny(k, "\"'$") {
			return nil, fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		out = append(out, kv)
	}
	return out, nil
}
