// Command devstack runs the whole order service on one machine for
// development (`make run`), and applies or creates schema migrations
// (`make migrate-up`, `make migrate-down`, `make migrate-create`).
//
// Usage:
//
//	devstack [flags]                  run the stack until Ctrl-C / SIGTERM
//	devstack migrate up|down [flags]  apply all / revert one (or --all) migrations
//	devstack migrate create NAME      write the next NNNNNN_NAME.up/down.sql pair
//
// The stack reuses PostgreSQL and Redis when they answer at DATABASE_URL and
// REDIS_URL (default: the local standard ports), otherwise starts throwaway
// servers from the system binaries; it always runs its own in-process Kafka
// broker (kfake), builds and starts the ingestor and the reader, seeds
// orders with the producer and prints where to look.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// SIGINT, SIGTERM and SIGHUP (the terminal closed) cancel the context;
	// everything shuts down from there and run returns nil, so Ctrl-C is a
	// clean exit (status 0).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

// run dispatches to a subcommand; the default is the dev stack.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		return runMigrate(ctx, args[1:], getenv, stdout)
	}
	return runStack(ctx, args, getenv, stdout)
}
