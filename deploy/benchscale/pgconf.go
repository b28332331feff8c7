package benchscale

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
)

// pgSetting is one "name = value" line of a postgresql.conf.
type pgSetting struct{ Name, Value string }

// parsePGConf reads the settings of a postgresql.conf in order: one
// "name = value" (or "name value") a line, # comments, values optionally
// in single quotes with ” for a quote. It refuses include directives, so
// that every setting the file means is in what it returns.
func parsePGConf(r io.Reader) ([]pgSetting, error) {
	var out []pgSetting
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, " \t=")
		if i <= 0 {
			return nil, fmt.Errorf("line %d: %q: want name = value", n, line)
		}
		name := line[:i]
		if strings.HasPrefix(name, "include") {
			return nil, fmt.Errorf("line %d: %s is not supported", n, name)
		}
		rest := strings.TrimLeft(line[i:], " \t")
		rest = strings.TrimLeft(strings.TrimPrefix(rest, "="), " \t")
		value, err := pgConfValue(rest)
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n, name, err)
		}
		out = append(out, pgSetting{Name: strings.ToLower(name), Value: value})
	}
	return out, sc.Err()
}

// pgConfValue reads a value and drops a trailing comment.
func pgConfValue(s string) (string, error) {
	if !strings.HasPrefix(s, "'") {
		v, _, _ := strings.Cut(s, "#")
		v = strings.TrimSpace(v)
		if v == "" || strings.ContainsAny(v, " \t") {
			return "", fmt.Errorf("value %q: want one word or a quoted string", v)
		}
		return v, nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '\'' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '\'' {
			b.WriteByte('\'')
			i++
			continue
		}
		if after := strings.TrimSpace(s[i+1:]); after != "" && after[0] != '#' {
			return "", fmt.Errorf("%q after the quoted value", after)
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unterminated quote in %q", s)
}

// serverArgs turns settings into a postgres command line ("-c",
// "name=value" each), without those named in skip.
func serverArgs(settings []pgSetting, skip ...string) []string {
	var args []string
	for _, s := range settings {
		if !slices.Contains(skip, s.Name) {
			args = append(args, "-c", s.Name+"="+s.Value)
		}
	}
	return args
}
