// Package migrations holds the database schema as golang-migrate SQL files,
// embedded so that every binary and test applies exactly the same schema.
package migrations

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/golang-migrate/migrate/v4"
	// Registers the pgx5:// database driver.
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

//go:embed sql/*.sql
var files embed.FS

// FS returns the migration files (NNNNNN_name.up.sql / .down.sql).
func FS() fs.FS {
	sub, err := fs.Sub(files, "sql")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory exists
	}
	return sub
}

// New returns a migrator for the PostgreSQL database at databaseURL
// (postgres:// or postgresql://). Close it when done.
func New(databaseURL string) (*migrate.Migrate, error) {
	src, err := iofs.New(FS(), ".")
	if err != nil {
		return nil, fmt.Errorf("open embedded migrations: %w", err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, pgx5URL(databaseURL))
	if err != nil {
		return nil, fmt.Errorf("connect migrator: %w", err)
	}
	return m, nil
}

// Up applies every pending migration. It is a no-op on an up-to-date schema.
func Up(databaseURL string) error {
	return run(databaseURL, func(m *migrate.Migrate) error { return m.Up() })
}

// Down reverts every migration.
func Down(databaseURL string) error {
	return run(databaseURL, func(m *migrate.Migrate) error { return m.Down() })
}

func run(databaseURL string, step func(*migrate.Migrate) error) error {
	return With(databaseURL, func(m *migrate.Migrate) error {
		if err := step(m); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate: %w", err)
		}
		return nil
	})
}

// With opens a migrator for databaseURL (see New), calls fn with it and
// closes it, returning fn's error joined with those of closing.
func With(databaseURL string, fn func(*migrate.Migrate) error) (err error) {
	m, err := New(databaseURL)
	if err != nil {
		return err
	}
	defer func() {
		srcErr, dbErr := m.Close()
		err = errors.Join(err, srcErr, dbErr)
	}()
	return fn(m)
}

// pgx5URL switches a libpq-style URL to the scheme golang-migrate's pgx/v5
// driver registers, so that users configure one DATABASE_URL everywhere.
func pgx5URL(u string) string {
	for _, p := range []string{"postgres://", "postgresql://"} {
		if len(u) >= len(p) && u[:len(p)] == p {
			return "pgx5://" + u[len(p):]
		}
	}
	return u
}
