package deploytest

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// root is the repository root (the directory holding go.work), found from
// this package's directory so that `go test` works from anywhere.
func root(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.work not found above the test directory")
		}
		dir = parent
	}
}

// path joins elem to the repository root.
func path(t testing.TB, elem ...string) string {
	return filepath.Join(append([]string{root(t)}, elem...)...)
}

func readFile(t testing.TB, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(path(t, elem...))
	if err != nil {
		t.Fatalf("read %s: %v", filepath.Join(elem...), err)
	}
	return b
}

// readYAML decodes the single YAML document in a file into v, rejecting
// unknown fields only where v's type says so (structs via KnownFields).
func readYAML(t testing.TB, v any, elem ...string) {
	t.Helper()
	if err := yaml.Unmarshal(readFile(t, elem...), v); err != nil {
		t.Fatalf("parse %s: %v", filepath.Join(elem...), err)
	}
}

// readYAMLDocs decodes every document of a multi-document YAML file.
func readYAMLDocs(t testing.TB, elem ...string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, elem...)))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if err != nil {
			if err.Error() == "EOF" {
				return docs
			}
			t.Fatalf("parse %s: %v", filepath.Join(elem...), err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// readEnvFile parses KEY=VALUE lines (comments and blank lines skipped), as
// Docker Compose's .env and kustomize's generator env files use them.
func readEnvFile(t testing.TB, elem ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, elem...)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(k) {
			t.Fatalf("%s:%d: not KEY=VALUE: %q", filepath.Join(elem...), n, line)
		}
		if _, dup := out[k]; dup {
			t.Errorf("%s:%d: %s set twice", filepath.Join(elem...), n, k)
		}
		out[k] = v
	}
	return out
}

// dig walks nested maps and lists: dig(m, "spec", "template", 0) etc.
func dig(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func digString(v any, keys ...any) string {
	s, _ := dig(v, keys...).(string)
	return s
}

func digList(v any, keys ...any) []any {
	l, _ := dig(v, keys...).([]any)
	return l
}

func digMap(v any, keys ...any) map[string]any {
	m, _ := dig(v, keys...).(map[string]any)
	return m
}

// asInt reads a YAML number or numeric string.
func asInt(v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case string:
		var n int
		for _, c := range v {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, v != ""
	}
	return 0, false
}
