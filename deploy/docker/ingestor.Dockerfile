# syntax=docker/dockerfile:1.7
# The ingestor image. Build from the repository root (the Go workspace):
#   docker build -f deploy/docker/ingestor.Dockerfile -t orders/ingestor .

# --- build -------------------------------------------------------------------
# cgo is required: confluent-kafka-go links the librdkafka it bundles as a
# static archive for glibc linux/amd64 and linux/arm64, so the builder is a
# glibc (Debian) image and so is the runtime below.
FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=1 GOFLAGS=-buildvcs=false
# go.work names every workspace module, and Go refuses a workspace whose
# members are missing: copy every go.mod/go.sum, then only the sources the
# binary needs. Modules download inside the build step (workspace-wide
# `go mod download` would fetch every module of every member); the cache
# mounts keep them and the build cache between builds.
COPY go.work go.work.sum ./
COPY shared/go.* shared/
COPY migrations/go.* migrations/
COPY ingestor/go.* ingestor/
COPY reader/go.* reader/
COPY producer/go.* producer/
COPY deploy/go.* deploy/
COPY shared/ shared/
COPY migrations/ migrations/
COPY ingestor/ ingestor/
COPY deploy/healthcheck/ deploy/healthcheck/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags='-s -w' -o /out/ingestor ./ingestor \
 && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/healthcheck ./deploy/healthcheck

# --- runtime -----------------------------------------------------------------
# distroless base: glibc, CA certificates and tzdata, no shell, no package
# manager; the :nonroot tag runs as uid 65532.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/ingestor /usr/local/bin/ingestor
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
USER nonroot:nonroot
# Ops HTTP: /healthz, /readyz, /metrics.
EXPOSE 9101
ENV INGESTOR_OPS_ADDR=:9101 LOG_FORMAT=json
# Docker cannot curl inside distroless: the static healthcheck binary probes
# readiness (connected to Kafka, PostgreSQL and Redis).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:9101/readyz"]
ENTRYPOINT ["/usr/local/bin/ingestor"]
