package config

import (
	"testing"

	"github.com/orderservice/orders/shared/envconf/envconftest"
)

// FuzzLoad: arbitrary values in any two variables never panic Load, and
// its error names the variables at fault without repeating a value.
func FuzzLoad(f *testing.F) {
	base := map[string]string{"DATABASE_URL": "postgres://order_reader@db:5432/orders", "REDIS_URL": "redis://cache:6379/0",
		"READER_API_KEYS_FILE": "/run/secrets/reader-api-keys"}
	envconftest.Fuzz(f, Vars(), base, func(getenv func(string) string) error {
		_, err := Load(getenv)
		return err
	})
}
