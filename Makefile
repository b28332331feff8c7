# The project's vocabulary: people, the README and CI use these targets.
#
#   make run                 the whole service locally (Ctrl-C stops it); ARGS="--no-seed" etc.
#   make test                go test -race over every module (starts/installs PostgreSQL and Redis if needed)
#   make lint                golangci-lint v2 over every module, shellcheck, Redocly CLI over openapi.yaml
#   make bench               every benchmark, figures in .artifacts/bench.txt
#   make bench-scale         costs against stored orders (SCALE_STEPS=0,1000000,3000000), BENCHMARKS.md
#   make bench-ingestors     1, 2, 3 and 6 ingestors on a 6-partition topic (minutes), BENCHMARKS.md
#   make bench-search        GET /orders over 1,000,000 stored orders (minutes), in .artifacts/bench-search.txt
#   make fuzz                every fuzz target for FUZZTIME (30s) each; new corpus inputs land in testdata/fuzz
#   make soak                the long, full-size runs (TestSoak*, e.g. 10,000 idle HTTP connections)
#   make build               every binary into ./bin
#   make migrate-up          apply migrations to $DATABASE_URL (default: local database "orders")
#   make migrate-down        revert the newest migration (ARGS=--all: every one)
#   make migrate-create NAME=add_something
#   make compose-up          the stack in Docker (needs a Docker engine)

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO ?= go
# The workspace's modules, as listed in go.work (e.g. "shared migrations ...").
MODULES := $(patsubst $(CURDIR)/%,%,$(shell $(GO) list -m -f '{{.Dir}}'))
# go test and go build take one package pattern per module in a workspace.
PKGS := $(addprefix ./,$(addsuffix /...,$(MODULES)))

# A hung test fails its package after TEST_TIMEOUT instead of stalling CI.
TEST_TIMEOUT ?= 10m
# Packages tested at once: the machines have 2 cores.
TEST_P ?= 2
TESTFLAGS ?=
BENCHFLAGS ?= -benchtime=1s -count=1
ARGS ?=

.PHONY: help run test lint bench bench-scale bench-ingestors bench-search fuzz soak build devstack migrate-up migrate-down migrate-create compose-up compose-down services clean

help:
	@sed -n '3,17p' $(firstword $(MAKEFILE_LIST)) | sed 's/^# \{0,1\}//'

# devstack is rebuilt every time (the Go build cache makes that quick).
devstack:
	@$(GO) build -o bin/devstack ./deploy/devstack

run: devstack
	./bin/devstack $(ARGS)

# PostgreSQL and Redis started (or installed, as root on Debian/Ubuntu),
# Chromium for the browser tests and promtool for the alert rules' tests.
services:
	@scripts/ensure-services.sh --browser --promtool

test: services
	$(GO) test -race -count=1 -p $(TEST_P) -timeout $(TEST_TIMEOUT) $(TESTFLAGS) $(PKGS)

lint:
	scripts/lint.sh

# Benchmarks run one package at a time so that they do not share the CPU.
# The system benchmarks are sized by count, not time: 100,000 orders through
# the ingestor, 200,000 through the producer, and the reader's wrk runs of
# READER_BENCH_SECONDS each against a minimal net/http ceiling in the same
# run. Figures land in .artifacts/bench.txt; the run ends with the table of
# targets (deploy/benchtargets/targets.go), also in .artifacts/bench-targets.txt,
# even when a benchmark failed.
READER_BENCH_SECONDS ?= 9
bench:
	@scripts/ensure-services.sh --bench
	@mkdir -p .artifacts
	{ \
	$(GO) test -run '^$$' -bench . -benchmem -p 1 $(BENCHFLAGS) ./shared/... ./reader/postgres ./reader/httpapi ./ingestor/ingest ./producer/source && \
	$(GO) test -run '^$$' -bench . -benchtime=100000x -p 1 ./ingestor ./ingestor/postgres && \
	$(GO) test -run '^$$' -bench . -benchtime=200000x ./producer && \
	READER_BENCH_SECONDS=$(READER_BENCH_SECONDS) $(GO) test -run '^$$' -bench . -benchtime=1x ./reader; \
	} 2>&1 | tee .artifacts/bench.txt || status=$$?; \
	echo; $(GO) run ./deploy/benchtargets .artifacts/bench.txt | tee .artifacts/bench-targets.txt; \
	exit $${status:-0}

# The order search over a large table: READER_BENCH_SEARCH_ORDERS orders are
# stored with COPY first (minutes for 1,000,000), so it is not part of bench;
# there BenchmarkSearch skips.
READER_BENCH_SEARCH_ORDERS ?= 1000000
bench-search:
	@scripts/ensure-services.sh --bench
	@mkdir -p .artifacts
	READER_BENCH_SEARCH_ORDERS=$(READER_BENCH_SEARCH_ORDERS) READER_BENCH_SECONDS=$(READER_BENCH_SECONDS) \
	$(GO) test -v -run '^$$' -bench BenchmarkSearch -benchtime=1x -timeout 60m ./reader 2>&1 | tee .artifacts/bench-search.txt

# Each fuzz target in turn (scripts/fuzz.sh); the inputs they find
# interesting are copied from Go's fuzz cache into testdata/fuzz, to commit.
# FuzzPublicAPI runs over real PostgreSQL and Redis.
FUZZTIME ?= 30s
fuzz: services
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

# The soaks are the full-size variants of tests that make test runs small
# (TestSoak*, skipped unless SOAK is set). No race detector: they measure
# memory and hold thousands of goroutines, which it inflates.
SOAK_TIMEOUT ?= 30m
soak: services
	SOAK=1 $(GO) test -count=1 -p 1 -timeout $(SOAK_TIMEOUT) -run 'Soak' $(PKGS)

# How each cost grows with the stored orders (deploy/benchscale, build tag
# benchscale): the database is loaded in steps and measured at each;
# about 15 minutes with the default steps (its own PostgreSQL server). A quick run:
#   make bench-scale SCALE_STEPS=0,100000,300000
# Figures, plots and logs land in .artifacts/bench-scale/, the table in
# BENCHMARKS.md. SCALE_SLICE, SCALE_GETS, SCALE_GET_RATE and
# SCALE_SCHEMA_VERSION are described in deploy/benchscale/doc.go.
SCALE_STEPS ?= 0,1000000,3000000
bench-scale:
	@scripts/ensure-services.sh
	@mkdir -p .artifacts/bench-scale
	SCALE_STEPS=$(SCALE_STEPS) SCALE_BENCHMARKS_MD=$(CURDIR)/BENCHMARKS.md \
		$(GO) test -tags benchscale -run '^TestScale$$' -count=1 -timeout 90m -v ./deploy/benchscale \
		2>&1 | tee .artifacts/bench-scale/run.log

# The total ingest rate of 1, 2, 3 and 6 ingestor processes (one consumer
# group) on a 6-partition topic, against the ingestor's writer called
# directly, with the CPU of each party (BenchmarkIngestors in
# deploy/benchscale; a benchmark, so make test compiles it and never runs
# it). SCALE_INGESTORS=1,2,3,6, SCALE_INGESTORS_ORDERS=100000 and
# SCALE_INGESTORS_ROUNDS=3 size it; the table lands in BENCHMARKS.md and
# .artifacts/bench-ingestors/, with the ingestors' logs.
bench-ingestors:
	@scripts/ensure-services.sh
	@mkdir -p .artifacts/bench-ingestors
	SCALE_BENCHMARKS_MD=$(CURDIR)/BENCHMARKS.md \
		$(GO) test -run '^$$' -bench '^BenchmarkIngestors$$' -benchtime=1x -count=1 -timeout 30m ./deploy/benchscale \
		2>&1 | tee .artifacts/bench-ingestors/run.log

# Every main package of the workspace, named after its directory.
build:
	@mkdir -p bin
	$(GO) build -o bin/ $$($(GO) list -f '{{if eq .Name "main"}}{{.Dir}}{{end}}' $(PKGS) | sed "s|^$(CURDIR)|.|")

migrate-up: devstack
	./bin/devstack migrate up $(ARGS)

migrate-down: devstack
	./bin/devstack migrate down $(ARGS)

migrate-create: devstack
	@test -n "$(NAME)" || { echo 'usage: make migrate-create NAME=add_something' >&2; exit 2; }
	./bin/devstack migrate create '$(NAME)'

compose-up:
	docker compose up --build -d

compose-down:
	docker compose down

clean:
	rm -rf bin .artifacts
