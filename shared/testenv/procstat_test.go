package testenv

import (
	"testing"
	"time"
)

func TestParseProcessStat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		err      bool
	}{
		{name: "postgres backend", in: "2207 (postgres) S 1 2207 2207 0 -1 4194560 3620 0 0 0 150 37 0 0 20 0 1 0 1013 230 1\n",
			want: 1870 * time.Millisecond},
		{name: "spaces and parentheses in the name", in: "42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 5 1 1",
			want: 100 * time.Millisecond},
		{name: "no name", in: "42 R 1 42", err: true},
		{name: "cut short", in: "42 (x) S 1 2 3", err: true},
		{name: "not a number", in: "42 (x) S 1 42 42 0 -1 0 0 0 0 0 x 3 0 0", err: true},
	} {
		got, err := parseProcessStat(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("%s: parseProcessStat = %v, want an error", tc.name, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: parseProcessStat = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}
