package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

func TestRunCommandLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		out     string // substring of stdout
		errText string // substring of the error, "" for none
	}{
		{[]string{"ingestor", "-vars"}, "INGESTOR_KAFKA_DLQ_TOPIC\n", ""},
		{[]string{"ingestor", "-help"}, "INGESTOR_BATCH_LINGER", ""},
		{[]string{"ingestor", "--bogus"}, "", `unknown argument "--bogus"`},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := run(context.Background(), tt.args, os.Getenv, &out)
		if tt.errText == "" && err != nil || tt.errText != "" && (err == nil || !strings.Contains(err.Error(), tt.errText)) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.errText)
		}
		if !strings.Contains(out.String(), tt.out) {
			t.Errorf("%v: output %q lacks %q", tt.args, out.String(), tt.out)
		}
	}
}

// A bad configuration stops the ingestor at once with an error naming the
// variable (and never the password in a URL).
func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"INGESTOR_DATABASE_URL": "postgres://u:hunter2@db/orders",
		"INGESTOR_REDIS_URL":    "redis://cache:6379/0",
		"INGESTOR_BATCH_LINGER": "soon",
	}
	getenv := func(k string) string { return vars[k] }
	err := run(context.Background(), []string{"ingestor"}, getenv, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "INGESTOR_BATCH_LINGER") {
		t.Fatalf("run: %v, want an error naming INGESTOR_BATCH_LINGER", err)
	}

	vars["INGESTOR_BATCH_LINGER"] = "5ms"
	vars["INGESTOR_DATABASE_URL"] = "postgres://u:hunter2@db:notaport/orders"
	err = run(context.Background(), []string{"ingestor"}, getenv, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "INGESTOR_DATABASE_URL") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("run: %v, want an error naming INGESTOR_DATABASE_URL that does not echo the password", err)
	}
}
