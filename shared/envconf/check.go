package envconf

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Problem is one bad variable.
type Problem struct {
	Var    string // the variable the value came from, e.g. DATABASE_URL or INGESTOR_DATABASE_URL_FILE
	Reason string // what is wrong, never the value itself
}

func (p Problem) String() string { return p.Var + ": " + p.Reason }

// Error is every problem Load found.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid configuration: " + strings.Join(parts, "; ")
}

// Problems collects the problems of one Load. A Validator names a setting
// by its name without the prefix ("BATCH_SIZE"); the problem names the
// variable the value came from.
type Problems struct {
	prefix string
	names  map[string]string // key → the variable its value came from
	failed map[string]bool   // keys whose value did not convert
	list   []Problem
}

// Name returns the variable the setting key was read from, or its
// prefixed name when it holds its default: for messages that point at
// another setting ("at most INGESTOR_DB_MAX_CONNS").
func (p *Problems) Name(key string) string {
	if n, ok := p.names[key]; ok {
		return n
	}
	return p.prefix + "_" + key
}

// Check records err, if not nil, as a problem of the setting key.
func (p *Problems) Check(key string, err error) {
	if err != nil {
		p.Add(key, "%s", err.Error())
	}
}

// Add records a problem of the setting key. A setting whose value did not
// convert has its problem already.
func (p *Problems) Add(key, format string, args ...any) {
	if p.failed[key] {
		return
	}
	p.list = append(p.list, Problem{Var: p.Name(key), Reason: fmt.Sprintf(format, args...)})
}

func (p *Problems) fail(key, name, reason string) {
	p.failed[key] = true
	p.list = append(p.list, Problem{Var: name, Reason: reason})
}

// URL checks that raw is an absolute URL with one of schemes and a host
// (a "host" query parameter, PostgreSQL's socket directory, counts; a unix
// URL needs a path instead). Its errors never repeat the URL: it may hold
// a password.
func URL(raw string, schemes ...string) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL") // url.Error quotes the URL
	}
	if !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("scheme must be %s", orList(schemes))
	}
	if u.Scheme == "unix" {
		if u.Path == "" {
			return errors.New("has no socket path")
		}
		return nil
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return errors.New("has no host")
	}
	return nil
}

// ListenAddr checks a listen address: host:port or :port, the port a
// number (0 picks a free one).
func ListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port or :port")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return errors.New("the port must be a number 0..65535")
	}
	return nil
}

// NotEmpty checks that s has more than spaces.
func NotEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// Positive checks that d is above zero.
func Positive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be positive, got %s", d)
	}
	return nil
}

// Range checks lo <= v <= hi.
func Range[T cmp.Ordered](v, lo, hi T) error {
	if v < lo || v > hi {
		return fmt.Errorf("must be %v..%v, got %v", lo, hi, v)
	}
	return nil
}

// AtLeast checks v >= lo.
func AtLeast[T cmp.Ordered](v, lo T) error {
	if v < lo {
		return fmt.Errorf("must be at least %v, got %v", lo, v)
	}
	return nil
}

// orList writes "a", "a or b", "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
