package envconf_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orderservice/orders/shared/envconf"
)

// appConfig exercises every convention: shared settings with a fallback,
// settings of the service only, a required one, one without a default,
// types envconfig converts by kind and by TextUnmarshaler, an ignored one.
type appConfig struct {
	DatabaseURL string            `envconfig:"DATABASE_URL" required:"true" desc:"database URL"`
	LogLevel    envconf.LogLevel  `envconfig:"LOG_LEVEL" default:"info" desc:"least level logged"`
	LogFormat   envconf.LogFormat `envconfig:"LOG_FORMAT" default:"json" desc:"json or text"`
	BatchSize   int               `split_words:"true" default:"100" desc:"most messages a batch"`
	Timeout     time.Duration     `split_words:"true" default:"2s" desc:"time limit"`
	DBMaxConns  int32             `split_words:"true" default:"4" desc:"pool size"`
	Token       string            `split_words:"true" desc:"API token"`
	Verbose     bool              `split_words:"true" default:"false" desc:"say more"`
	Hidden      time.Duration     `ignored:"true"`
}

func (c *appConfig) Validate(p *envconf.Problems) {
	p.Check("BATCH_SIZE", envconf.Range(c.BatchSize, 1, 1000))
	p.Check("TIMEOUT", envconf.Positive(c.Timeout))
	p.Check("DB_MAX_CONNS", envconf.AtLeast(c.DBMaxConns, 1))
	if c.BatchSize > 100*int(c.DBMaxConns) {
		p.Add("BATCH_SIZE", "must be at most 100 × %s", p.Name("DB_MAX_CONNS"))
	}
	if c.Token != "" && len(c.Token) < 8 {
		p.Add("TOKEN", "must have 8 characters or more") // a file's value never in a message
	}
}

const prefix = "APP"

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// file writes content to a file of the test's own and returns its path.
func file(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func defaults(url string) appConfig {
	return appConfig{
		DatabaseURL: url, LogLevel: envconf.LogLevel(slog.LevelInfo), LogFormat: envconf.LogJSON,
		BatchSize: 100, Timeout: 2 * time.Second, DBMaxConns: 4,
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		env    func(t *testing.T) map[string]string
		change func(*appConfig) // applied to defaults("db://fallback")
	}{
		{"defaults, fallback of a shared setting", func(*testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://fallback"}
		}, func(*appConfig) {}},
		{"prefixed wins over the fallback", func(*testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://fallback", "APP_DATABASE_URL": "db://prefixed"}
		}, func(c *appConfig) { c.DatabaseURL = "db://prefixed" }},
		{"empty prefixed counts as unset", func(*testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://fallback", "APP_DATABASE_URL": "", "APP_BATCH_SIZE": ""}
		}, func(*appConfig) {}},
		{"no fallback for the service's own settings", func(*testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://fallback", "BATCH_SIZE": "7", "TIMEOUT": "bad", "TOKEN": "x"}
		}, func(*appConfig) {}},
		{"every kind converted", func(*testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://fallback", "APP_BATCH_SIZE": "250", "APP_TIMEOUT": "150ms",
				"APP_DB_MAX_CONNS": "0x10", "APP_VERBOSE": "true", "LOG_LEVEL": "DEBUG", "APP_LOG_FORMAT": "text", "LOG_FORMAT": "json"}
		}, func(c *appConfig) {
			c.BatchSize, c.Timeout, c.DBMaxConns, c.Verbose = 250, 150*time.Millisecond, 16, true
			c.LogLevel, c.LogFormat = envconf.LogLevel(slog.LevelDebug), envconf.LogText
		}},
		{"ignored field is never read", func(*testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://fallback", "APP_HIDDEN": "1s", "HIDDEN": "1s"}
		}, func(*appConfig) {}},
		{"prefixed _FILE, newline trimmed", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://fallback", "APP_DATABASE_URL_FILE": file(t, "db://from-file\n"), "APP_TOKEN_FILE": file(t, "s3cr3t-token\r\n")}
		}, func(c *appConfig) { c.DatabaseURL, c.Token = "db://from-file", "s3cr3t-token" }},
		{"fallback _FILE", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL_FILE": file(t, "db://fallback-file\n")}
		}, func(c *appConfig) { c.DatabaseURL = "db://fallback-file" }},
		{"prefixed value wins over a fallback _FILE", func(t *testing.T) map[string]string {
			return map[string]string{"APP_DATABASE_URL": "db://prefixed", "DATABASE_URL_FILE": file(t, "db://fallback-file")}
		}, func(c *appConfig) { c.DatabaseURL = "db://prefixed" }},
		{"prefixed _FILE wins over a fallback value", func(t *testing.T) map[string]string {
			return map[string]string{"APP_DATABASE_URL_FILE": file(t, "db://from-file"), "DATABASE_URL": "db://fallback"}
		}, func(c *appConfig) { c.DatabaseURL = "db://from-file" }},
		{"_FILE of a setting that is not text", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://fallback", "APP_TIMEOUT_FILE": file(t, "5s\n"), "LOG_LEVEL_FILE": file(t, "warn\n")}
		}, func(c *appConfig) { c.Timeout, c.LogLevel = 5*time.Second, envconf.LogLevel(slog.LevelWarn) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got appConfig
			if err := envconf.Load(prefix, &got, getenv(tc.env(t))); err != nil {
				t.Fatal(err)
			}
			want := defaults("db://fallback")
			tc.change(&want)
			if got != want {
				t.Errorf("Load:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoadProblems(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t"
	tests := []struct {
		name string
		env  func(t *testing.T) map[string]string
		want []envconf.Problem
	}{
		{"required", func(*testing.T) map[string]string { return map[string]string{} },
			[]envconf.Problem{{"APP_DATABASE_URL", "required (or set DATABASE_URL)"}}},
		{"every bad variable at once", func(*testing.T) map[string]string {
			return map[string]string{"APP_BATCH_SIZE": "many", "APP_TIMEOUT": "0s", "LOG_LEVEL": "loud", "APP_LOG_FORMAT": "xml",
				"APP_DB_MAX_CONNS": "99999999999", "APP_VERBOSE": "yes please"}
		}, []envconf.Problem{
			{"APP_DATABASE_URL", "required (or set DATABASE_URL)"},
			{"LOG_LEVEL", "must be debug, info, warn or error"},
			{"APP_LOG_FORMAT", "must be json or text"},
			{"APP_BATCH_SIZE", "not an integer"},
			{"APP_DB_MAX_CONNS", "out of range for a 32-bit integer"},
			{"APP_VERBOSE", "not true or false"},
			{"APP_TIMEOUT", "must be positive, got 0s"},
		}},
		{"a value that does not convert is reported once, the others checked against its default", func(*testing.T) map[string]string {
			// 300 is within 100 × the default 4 connections.
			return map[string]string{"DATABASE_URL": "db://x", "APP_DB_MAX_CONNS": "four", "APP_BATCH_SIZE": "300", "APP_TIMEOUT": "soon"}
		}, []envconf.Problem{
			{"APP_TIMEOUT", "not a duration (e.g. 150ms, 2s, 1h)"},
			{"APP_DB_MAX_CONNS", "not an integer"},
		}},
		{"no second problem for a value that does not convert", func(*testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://x", "APP_BATCH_SIZE": "many", "APP_DB_MAX_CONNS": "0"}
		}, []envconf.Problem{
			{"APP_BATCH_SIZE", "not an integer"},
			{"APP_DB_MAX_CONNS", "must be at least 1, got 0"},
		}},
		{"a message names the variable the value came from", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://x", "APP_BATCH_SIZE": "900", "APP_DB_MAX_CONNS_FILE": file(t, "2\n")}
		}, []envconf.Problem{{"APP_BATCH_SIZE", "must be at most 100 × APP_DB_MAX_CONNS_FILE"}}},
		{"value and _FILE both set", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://x", "APP_TOKEN": "abcdefgh", "APP_TOKEN_FILE": file(t, "abcdefgh")}
		}, []envconf.Problem{{"APP_TOKEN", "set together with APP_TOKEN_FILE; set only one"}}},
		{"fallback value and _FILE both set", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://x", "DATABASE_URL_FILE": file(t, "db://y")}
		}, []envconf.Problem{{"DATABASE_URL", "set together with DATABASE_URL_FILE; set only one"}}},
		{"missing file", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL_FILE": filepath.Join(t.TempDir(), "absent")}
		}, []envconf.Problem{{"DATABASE_URL_FILE", "cannot read the file: open <dir>/absent: no such file or directory"}}},
		{"empty file", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://x", "APP_TOKEN_FILE": file(t, "\n")}
		}, []envconf.Problem{{"APP_TOKEN_FILE", "the file <dir>/secret is empty"}}},
		{"file too large", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://x", "APP_TOKEN_FILE": file(t, strings.Repeat("x", 64<<10+1))}
		}, []envconf.Problem{{"APP_TOKEN_FILE", "the file <dir>/secret is over 64 KiB"}}},
		{"a value from a file is never repeated", func(t *testing.T) map[string]string {
			return map[string]string{"DATABASE_URL": "db://x", "APP_TOKEN_FILE": file(t, secret), "APP_BATCH_SIZE_FILE": file(t, secret),
				"APP_TIMEOUT_FILE": file(t, secret), "LOG_LEVEL_FILE": file(t, secret), "APP_LOG_FORMAT_FILE": file(t, secret)}
		}, []envconf.Problem{
			{"LOG_LEVEL_FILE", "must be debug, info, warn or error"},
			{"APP_LOG_FORMAT_FILE", "must be json or text"},
			{"APP_BATCH_SIZE_FILE", "not an integer"},
			{"APP_TIMEOUT_FILE", "not a duration (e.g. 150ms, 2s, 1h)"},
			{"APP_TOKEN_FILE", "must have 8 characters or more"},
		}},
	}
	dir := regexp.MustCompile(`/\S*/`) // t.TempDir paths differ from run to run
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c appConfig
			err := envconf.Load(prefix, &c, getenv(tc.env(t)))
			cerr, ok := errors.AsType[*envconf.Error](err)
			if !ok {
				t.Fatalf("Load: %v, want an *envconf.Error", err)
			}
			got := slices.Clone(cerr.Problems)
			for i := range got {
				got[i].Reason = dir.ReplaceAllString(got[i].Reason, "<dir>/")
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "invalid configuration: ") || strings.Contains(msg, secret) {
				t.Errorf("error %q: want the invalid configuration prefix and no secret", msg)
			}
			for _, p := range cerr.Problems {
				if !strings.Contains(msg, p.String()) {
					t.Errorf("error %q lacks %q", msg, p)
				}
			}
		})
	}
}

// convert relies on no environment holding a variable named "=".
func TestNoVariableNamedEquals(t *testing.T) {
	t.Parallel()
	if err := os.Setenv("=", "x"); err == nil {
		_ = os.Unsetenv("=")
		t.Fatal(`the environment accepted a variable named "="`)
	}
	if _, ok := os.LookupEnv("="); ok {
		t.Fatal(`a variable named "=" is set`)
	}
}

func TestVars(t *testing.T) {
	t.Parallel()
	type row struct {
		Name, Fallback, Default string
		Required                bool
		Desc                    string
	}
	var got []row
	for _, v := range envconf.Vars(prefix, &appConfig{}) {
		got = append(got, row{v.Name, v.Fallback, v.Default, v.Required, v.Desc})
	}
	want := []row{
		{"APP_DATABASE_URL", "DATABASE_URL", "", true, "database URL"},
		{"APP_LOG_LEVEL", "LOG_LEVEL", "info", false, "least level logged"},
		{"APP_LOG_FORMAT", "LOG_FORMAT", "json", false, "json or text"},
		{"APP_BATCH_SIZE", "", "100", false, "most messages a batch"},
		{"APP_TIMEOUT", "", "2s", false, "time limit"},
		{"APP_DB_MAX_CONNS", "", "4", false, "pool size"},
		{"APP_TOKEN", "", "", false, "API token"},
		{"APP_VERBOSE", "", "false", false, "say more"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Vars:\n got %+v\nwant %+v", got, want)
	}
	wantNames := []string{"APP_BATCH_SIZE", "APP_DATABASE_URL", "APP_DB_MAX_CONNS", "APP_LOG_FORMAT", "APP_LOG_LEVEL",
		"APP_TIMEOUT", "APP_TOKEN", "APP_VERBOSE", "DATABASE_URL", "LOG_FORMAT", "LOG_LEVEL"}
	if names := envconf.Names(envconf.Vars(prefix, &appConfig{})); !slices.Equal(names, wantNames) {
		t.Errorf("Names:\n got %v\nwant %v", names, wantNames)
	}
}

func TestInvalidSpecPanics(t *testing.T) {
	t.Parallel()
	type nested struct {
		Inner struct {
			X int `default:"1"`
		}
	}
	type badDefault struct {
		N int `default:"lots"`
	}
	for name, call := range map[string]func(){
		"not a pointer":  func() { envconf.Vars(prefix, appConfig{}) },
		"no prefix":      func() { envconf.Vars("", &appConfig{}) },
		"nested struct":  func() { envconf.Vars(prefix, &nested{}) },
		"a bad default":  func() { _ = envconf.Load(prefix, &badDefault{}, getenv(nil)) },
		"usage of a bad": func() { _ = envconf.Usage(&strings.Builder{}, "app", prefix, 3) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			call()
		}()
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	if err := envconf.Usage(&b, "app", prefix, &appConfig{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.HasPrefix(out, "Usage: app\n\nConfigured by environment variables:\n\n") {
		t.Errorf("no header:\n%s", out)
	}
	rows := map[string][2]string{ // first column → default, meaning
		"VARIABLE":                           {"DEFAULT", "MEANING"},
		"APP_DATABASE_URL (or DATABASE_URL)": {"required", "database URL"},
		"APP_LOG_LEVEL (or LOG_LEVEL)":       {"info", "least level logged"},
		"APP_BATCH_SIZE":                     {"100", "most messages a batch"},
		"APP_TOKEN":                          {"(empty)", "API token"},
		"APP_VERBOSE":                        {"false", "say more"},
	}
	columns := map[int]bool{} // where the DEFAULT and MEANING columns start
	for line := range strings.Lines(out) {
		for first, rest := range rows {
			if !strings.HasPrefix(line, first+"  ") {
				continue
			}
			fields := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
			if len(fields) != 3 || fields[0] != first || fields[1] != rest[0] || fields[2] != rest[1] {
				t.Errorf("row %q, want %q | %q | %q", line, first, rest[0], rest[1])
			}
			columns[strings.Index(line, "  "+rest[0])*1000+strings.LastIndex(line, "  "+rest[1])] = true
			delete(rows, first)
		}
	}
	for first := range rows {
		t.Errorf("no row for %s:\n%s", first, out)
	}
	if len(columns) != 1 {
		t.Errorf("columns not aligned:\n%s", out)
	}
	if strings.Contains(out, "HIDDEN") {
		t.Errorf("an ignored field is listed:\n%s", out)
	}
	if !strings.Contains(out, "X_FILE") {
		t.Errorf("the _FILE convention is not explained:\n%s", out)
	}
}

func TestValidators(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string // "" for valid
	}{
		{"postgres URL", envconf.URL("postgres://u:pw@db:5432/orders?sslmode=disable", "postgres", "postgresql"), ""},
		{"postgres socket", envconf.URL("postgresql:///orders?host=/run/postgresql", "postgres", "postgresql"), ""},
		{"unix socket", envconf.URL("unix:///run/redis.sock", "redis", "unix"), ""},
		{"unix without path", envconf.URL("unix://", "redis", "unix"), "has no socket path"},
		{"empty URL", envconf.URL("", "redis"), "required"},
		{"wrong scheme", envconf.URL("mysql://u:s3cr3t@db", "postgres", "postgresql"), "scheme must be postgres or postgresql"},
		{"three schemes", envconf.URL("http://h", "redis", "rediss", "unix"), "scheme must be redis, rediss or unix"},
		{"no host", envconf.URL("redis://", "redis"), "has no host"},
		{"not a URL", envconf.URL("postgres://u:s3cr3t@db:port/x", "postgres"), "not a valid URL"},
		{"address", envconf.ListenAddr("127.0.0.1:8080"), ""},
		{"port only", envconf.ListenAddr(":0"), ""},
		{"IPv6", envconf.ListenAddr("[::1]:9101"), ""},
		{"no port", envconf.ListenAddr("8080"), "want host:port or :port"},
		{"named port", envconf.ListenAddr(":http"), "the port must be a number 0..65535"},
		{"port too big", envconf.ListenAddr(":65536"), "the port must be a number 0..65535"},
		{"not empty", envconf.NotEmpty("orders"), ""},
		{"empty", envconf.NotEmpty("  "), "must not be empty"},
		{"positive", envconf.Positive(time.Nanosecond), ""},
		{"zero duration", envconf.Positive(0), "must be positive, got 0s"},
		{"negative duration", envconf.Positive(-time.Second), "must be positive, got -1s"},
		{"in range", envconf.Range(16, 1, 16), ""},
		{"below range", envconf.Range(0, 1, 16), "must be 1..16, got 0"},
		{"above range", envconf.Range(2*time.Minute, 0, time.Minute), "must be 0s..1m0s, got 2m0s"},
		{"at least", envconf.AtLeast(int64(1024), 1024), ""},
		{"below", envconf.AtLeast(int32(0), 1), "must be at least 1, got 0"},
	}
	for _, tc := range tests {
		switch {
		case tc.want == "" && tc.err != nil:
			t.Errorf("%s: %v", tc.name, tc.err)
		case tc.want != "" && (tc.err == nil || tc.err.Error() != tc.want):
			t.Errorf("%s: error %v, want %q", tc.name, tc.err, tc.want)
		case tc.err != nil && strings.Contains(tc.err.Error(), "s3cr3t"):
			t.Errorf("%s: the error repeats the password: %v", tc.name, tc.err)
		}
	}
}

func TestLogTypes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		level   slog.Level
		wantErr bool
	}{
		{"debug", slog.LevelDebug, false},
		{"INFO", slog.LevelInfo, false},
		{"Warn", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{"warning", 0, true},
		{"info+2", 0, true},
		{"", 0, true},
	} {
		var l envconf.LogLevel
		err := l.UnmarshalText([]byte(tc.in))
		if (err != nil) != tc.wantErr || err == nil && l.Level() != tc.level {
			t.Errorf("LogLevel %q: %v, %v", tc.in, l.Level(), err)
		}
	}
	var leveler slog.Leveler = envconf.LogLevel(slog.LevelWarn) // usable as HandlerOptions.Level
	if leveler.Level() != slog.LevelWarn {
		t.Errorf("Level() = %v", leveler.Level())
	}
	for in, want := range map[string]envconf.LogFormat{"json": envconf.LogJSON, "text": envconf.LogText, "JSON": "", "xml": "", "": ""} {
		var f envconf.LogFormat
		err := f.UnmarshalText([]byte(in))
		if (err != nil) != (want == "") || f != want {
			t.Errorf("LogFormat %q: %q, %v", in, f, err)
		}
	}
	if reflect.TypeFor[envconf.LogFormat]().Kind() != reflect.String {
		t.Error("LogFormat is not a string type") // the services compare it with "json"
	}
}

// A type's own conversion error is shown only when it does not repeat the
// value: slog.Level's quotes it.
func TestTypeErrorThatRepeatsTheValue(t *testing.T) {
	t.Parallel()
	var c struct {
		Level slog.Level `split_words:"true"`
	}
	err := envconf.Load(prefix, &c, getenv(map[string]string{"APP_LEVEL_FILE": file(t, "s3cr3t")}))
	want := "invalid configuration: APP_LEVEL_FILE: not a valid slog.Level"
	if err == nil || err.Error() != want {
		t.Errorf("Load: %v, want %q", err, want)
	}
}
