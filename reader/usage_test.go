package main

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
)

// -help prints the configuration table and starts nothing.
func TestHelp(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if err := run(context.Background(), []string{"reader", "-help"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("run -help: %v", err)
	}
	for _, want := range []string{`^Usage: reader\n`, `\nREADER_DATABASE_URL \(or DATABASE_URL\) +required +PostgreSQL`, `\nREADER_WARM_COUNT +1000 `, `X_FILE`} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("-help lacks %s:\n%s", want, out.String())
		}
	}
}
