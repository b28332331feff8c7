package benchscale

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParsePGConf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []pgSetting
		wantErr string
	}{
		{"forms", "# comment\n\nshared_buffers = 2GB   # the cache\nwal_compression=lz4\nMax_WAL_Size 8GB\n",
			[]pgSetting{{"shared_buffers", "2GB"}, {"wal_compression", "lz4"}, {"max_wal_size", "8GB"}}, ""},
		{"quoted", "listen_addresses = '*'  # all\nlog_line_prefix = 'it''s # not a comment '\n",
			[]pgSetting{{"listen_addresses", "*"}, {"log_line_prefix", "it's # not a comment "}}, ""},
		{"no value", "shared_buffers =\n", nil, "want one word"},
		{"two words", "shared_buffers = 2 GB\n", nil, "want one word"},
		{"unterminated", "listen_addresses = '*\n", nil, "unterminated"},
		{"junk after quote", "listen_addresses = '*' x\n", nil, "after the quoted value"},
		{"include", "include_dir = 'conf.d'\n", nil, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parsePGConf(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDeployedPGConf checks that the deployment's configuration, which
// bench-scale's server runs with, parses and sets what the benchmark
// relies on.
func TestDeployedPGConf(t *testing.T) {
	t.Parallel()
	f, err := os.Open(filepath.Join("..", "postgres", "postgresql.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	settings, err := parsePGConf(f)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range settings {
		got[s.Name] = s.Value
	}
	for _, name := range []string{"shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression", "wal_buffers", "effective_cache_size"} {
		if got[name] == "" {
			t.Errorf("%s not set", name)
		}
	}
	args := serverArgs(settings, "listen_addresses")
	if strings.Contains(strings.Join(args, " "), "listen_addresses") {
		t.Errorf("serverArgs kept listen_addresses: %v", args)
	}
	if len(args) != 2*(len(settings)-1) {
		t.Errorf("serverArgs: %d arguments for %d settings less one", len(args), len(settings))
	}
}
