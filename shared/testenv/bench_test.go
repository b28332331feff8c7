package testenv

import (
	"context"
	"testing"

	"github.com/orderservice/orders/migrations"
)

// BenchmarkPostgres measures what a test pays for its database: a copy of
// the migrated template (the template itself is built once per server).
// Databases are dropped when the benchmark ends.
func BenchmarkPostgres(b *testing.B) {
	Postgres(b) // build the template outside the measurement
	b.ResetTimer()
	for b.Loop() {
		Postgres(b)
	}
}

// BenchmarkMigrateFresh is the alternative Postgres avoids: an empty
// database migrated from scratch, then dropped.
func BenchmarkMigrateFresh(b *testing.B) {
	srv, err := pgServerOnce()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		name := "t_" + randomHex(8)
		if _, err := srv.admin.Exec(ctx, "CREATE DATABASE "+ident(name)); err != nil {
			b.Fatal(err)
		}
		u, err := withDatabase(srv.url, name)
		if err != nil {
			b.Fatal(err)
		}
		if err := migrations.Up(u); err != nil {
			b.Fatal(err)
		}
		if _, err := srv.admin.Exec(ctx, "DROP DATABASE "+ident(name)+" WITH (FORCE)"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedis measures a Redis environment: a client and a key prefix.
func BenchmarkRedis(b *testing.B) {
	for b.Loop() {
		Redis(b)
	}
}

// BenchmarkKafka measures starting an in-process kfake cluster (or handing
// out a shared broker's address).
func BenchmarkKafka(b *testing.B) {
	for b.Loop() {
		Kafka(b)
	}
}
