# syntax=docker/dockerfile:1.7
# The reader image. Build from the repository root (the Go workspace):
#   docker build -f deploy/docker/reader.Dockerfile -t orders/reader .

# --- build -------------------------------------------------------------------
# The reader does not talk to Kafka, so it needs no cgo: a static binary on
# the smallest distroless image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# go.work names every workspace module, and Go refuses a workspace whose
# members are missing: copy every go.mod/go.sum, then only the sources the
# binary needs. Modules download inside the build step; the cache mounts
# keep them and the build cache between builds.
COPY go.work go.work.sum ./
COPY shared/go.* shared/
COPY migrations/go.* migrations/
COPY ingestor/go.* ingestor/
COPY reader/go.* reader/
COPY producer/go.* producer/
COPY deploy/go.* deploy/
COPY shared/ shared/
COPY migrations/ migrations/
COPY reader/ reader/
COPY deploy/healthcheck/ deploy/healthcheck/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags='-s -w' -o /out/reader ./reader \
 && go build -trimpath -ldflags='-s -w' -o /out/healthcheck ./deploy/healthcheck

# --- runtime -----------------------------------------------------------------
# distroless static: CA certificates and tzdata only; :nonroot is uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/reader /usr/local/bin/reader
COPY --from=build /out/healthcheck /usr/local/bin/healthcheck
USER nonroot:nonroot
# HTTP: /order/{uid}, /orders, the web UI, /healthz, /readyz; ops (keep it
# private): /metrics, /debug/pprof/.
EXPOSE 8080 9102
ENV READER_LISTEN_ADDR=:8080 READER_OPS_ADDR=:9102 LOG_FORMAT=json
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/reader"]
