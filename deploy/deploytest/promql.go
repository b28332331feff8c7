package deploytest

import (
	"slices"
	"strings"
)

// promqlKeywords are bare words of PromQL that are not metric names.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
	"group_right": true, "bool": true, "and": true, "or": true, "unless": true,
	"offset": true, "inf": true, "nan": true, "atan2": true,
}

// MetricNames returns the metric names a PromQL expression selects, sorted
// and without duplicates. It is a lexer, not a full parser: it skips string
// literals, label matchers {...}, ranges [...], label lists after by/without/
// on/ignoring/group_left/group_right, function names (a word followed by
// "("), numbers, durations and Grafana variables ($var, ${var}), and keeps
// every other word. That is exact for the expressions dashboards and alert
// rules use, and a test in this package pins it down.
func MetricNames(expr string) []string {
	var out []string
	i := 0
	skipTo := func(open, close byte) {
		depth := 0
		for i < len(expr) {
			c := expr[i]
			switch {
			case c == '"' || c == '\'' || c == '`':
				i = skipString(expr, i)
				continue
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					i++
					return
				}
			}
			i++
		}
	}
	listNext := false // the previous word takes a (label, list)
	for i < len(expr) {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '#': // comment to end of line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '{':
			skipTo('{', '}')
		case c == '[':
			skipTo('[', ']')
		case c == '(' && listNext:
			skipTo('(', ')')
			listNext = false
		case c == '$':
			i++
			if i < len(expr) && expr[i] == '{' {
				skipTo('{', '}')
			} else {
				for i < len(expr) && isWordByte(expr[i]) {
					i++
				}
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			for i < len(expr) && (isWordByte(expr[i]) || expr[i] == '.' ||
				(expr[i] == '+' || expr[i] == '-') && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
				i++
			}
		case isWordStart(c):
			start := i
			for i < len(expr) && isWordByte(expr[i]) {
				i++
			}
			word := expr[start:i]
			j := i
			for j < len(expr) && (expr[j] == ' ' || expr[j] == '\t' || expr[j] == '\n' || expr[j] == '\r') {
				j++
			}
			lower := strings.ToLower(word)
			switch {
			case lower == "by" || lower == "without" || lower == "on" || lower == "ignoring" ||
				lower == "group_left" || lower == "group_right":
				listNext = true
				continue
			case promqlKeywords[lower]:
			case aggregations[lower] && (hasWordAt(expr, j, "by") || hasWordAt(expr, j, "without")):
				// `sum by (x) (...)`: an aggregation with its grouping first.
			case j < len(expr) && expr[j] == '(':
				// A function or an aggregation.
			default:
				out = append(out, word)
			}
			listNext = false
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
				listNext = false
			}
			i++
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// aggregations are PromQL's aggregation operators, which may put their
// grouping clause before the parenthesis.
var aggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
	"quantile": true, "limitk": true, "limit_ratio": true,
}

// hasWordAt reports whether s has the whole word w at i (case-insensitive).
func hasWordAt(s string, i int, w string) bool {
	if i+len(w) > len(s) || !strings.EqualFold(s[i:i+len(w)], w) {
		return false
	}
	return i+len(w) == len(s) || !isWordByte(s[i+len(w)])
}

func skipString(s string, i int) int {
	q := s[i]
	i++
	for i < len(s) {
		switch s[i] {
		case '\\':
			if q != '`' {
				i += 2
				continue
			}
		case q:
			return i + 1
		}
		i++
	}
	return i
}

func isWordStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isWordByte(c byte) bool { return isWordStart(c) || c >= '0' && c <= '9' }
