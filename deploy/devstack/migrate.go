package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/golang-migrate/migrate/v4"

	"github.com/orderservice/orders/migrations"
)

const migrateUsage = `Usage:
  devstack migrate up [--database URL]          apply every pending migration
  devstack migrate down [--all] [--database URL] revert the newest migration (or all)
  devstack migrate create [--dir DIR] NAME      write the next NNNNNN_NAME.up.sql/.down.sql pair

The database defaults to $DATABASE_URL, else ` + defaultDatabaseURL + `
(created when missing, for up).
`

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, migrateUsage)
		return errors.New("migrate: missing up, down or create")
	}
	verb := args[0]
	fs := flag.NewFlagSet("devstack migrate "+verb, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { fmt.Fprint(stdout, migrateUsage) }
	dsn := fs.String("database", "", "database URL (default $DATABASE_URL or "+defaultDatabaseURL+")")
	all := fs.Bool("all", false, "down: revert every migration")
	dir := fs.String("dir", "", "create: migration directory (default <repo>/migrations/sql)")
	if err := fs.Parse(args[1:]); err != nil {
		return ignoreHelp(err)
	}
	if *dsn == "" {
		*dsn = getenv("DATABASE_URL")
	}
	if *dsn == "" {
		*dsn = defaultDatabaseURL
	}

	switch verb {
	case "up":
		if fs.NArg() != 0 {
			return fmt.Errorf("migrate up: unexpected argument %q", fs.Arg(0))
		}
		if err := ensureDatabase(ctx, *dsn); err != nil {
			return err
		}
		if err := migrations.Up(*dsn); err != nil {
			return err
		}
		return printVersion(stdout, *dsn)
	case "down":
		if fs.NArg() != 0 {
			return fmt.Errorf("migrate down: unexpected argument %q", fs.Arg(0))
		}
		if *all {
			if err := migrations.Down(*dsn); err != nil {
				return err
			}
		} else if err := downOne(*dsn); err != nil {
			return err
		}
		return printVersion(stdout, *dsn)
	case "create":
		if fs.NArg() != 1 {
			return errors.New("migrate create: want exactly one NAME (e.g. add_order_status)")
		}
		if *dir == "" {
			root, err := findRoot()
			if err != nil {
				return err
			}
			*dir = filepath.Join(root, "migrations", "sql")
		}
		up, down, err := createMigration(*dir, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created %s\ncreated %s\n", up, down)
		return nil
	default:
		fmt.Fprint(stdout, migrateUsage)
		return fmt.Errorf("migrate: unknown command %q", verb)
	}
}

// downOne reverts the newest applied migration.
func downOne(dsn string) error {
	return migrations.With(dsn, func(m *migrate.Migrate) error {
		if err := m.Steps(-1); err != nil {
			if errors.Is(err, migrate.ErrNoChange) || errors.Is(err, os.ErrNotExist) {
				return nil // nothing applied: nothing to revert
			}
			return fmt.Errorf("revert newest migration: %w", err)
		}
		return nil
	})
}

// printVersion reports the schema version after a change.
func printVersion(w io.Writer, dsn string) error {
	return migrations.With(dsn, func(m *migrate.Migrate) error {
		v, dirty, err := m.Version()
		switch {
		case errors.Is(err, migrate.ErrNilVersion):
			fmt.Fprintf(w, "%s: no migration applied\n", redact(dsn))
			return nil
		case err != nil:
			return fmt.Errorf("read schema version: %w", err)
		}
		fmt.Fprintf(w, "%s: schema version %d (dirty: %t)\n", redact(dsn), v, dirty)
		return nil
	})
}

var (
	migrationFile = regexp.MustCompile(`^(\d+)_.+\.(up|down)\.sql$`)
	migrationName = regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)
)

// nextMigrationVersion is one more than the highest version among names.
func nextMigrationVersion(names []string) (int, error) {
	highest := 0
	for _, n := range names {
		m := migrationFile.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		v, err := strconv.Atoi(m[1])
		if err != nil {
			return 0, fmt.Errorf("migration %s: %w", n, err)
		}
		highest = max(highest, v)
	}
	return highest + 1, nil
}

// createMigration writes an empty up/down pair with the next version number.
// The name is lower-cased with spaces and dashes turned into underscores.
func createMigration(dir, name string) (up, down string, err error) {
	name = strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(name)))
	if !migrationName.MatchString(name) {
		return "", "", fmt.Errorf("migration name %q: use letters, digits and underscores (e.g. add_order_status)", name)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", "", fmt.Errorf("read migrations: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	v, err := nextMigrationVersion(names)
	if err != nil {
		return "", "", err
	}
	base := fmt.Sprintf("%06d_%s", v, name)
	up = filepath.Join(dir, base+".up.sql")
	down = filepath.Join(dir, base+".down.sql")
	if err := writeNew(up, "-- "+base+": describe the change and why.\n"); err != nil {
		return "", "", err
	}
	if err := writeNew(down, "-- Reverts "+base+".up.sql.\n"); err != nil {
		_ = os.Remove(up)
		return "", "", err
	}
	return up, down, nil
}

// writeNew creates path with content, refusing to overwrite a file.
func writeNew(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.WriteString(content); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
