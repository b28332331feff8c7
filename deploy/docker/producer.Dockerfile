# syntax=docker/dockerfile:1.7
# The demo producer image. Build from the repository root (the Go workspace):
#   docker build -f deploy/docker/producer.Dockerfile -t orders/producer .
# A one-shot CLI, so it has no HEALTHCHECK.

# --- build -------------------------------------------------------------------
# cgo is required: confluent-kafka-go links its bundled static librdkafka
# (glibc, linux/amd64 and linux/arm64).
FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=1 GOFLAGS=-buildvcs=false
COPY go.work go.work.sum ./
COPY shared/go.* shared/
COPY migrations/go.* migrations/
COPY ingestor/go.* ingestor/
COPY reader/go.* reader/
COPY producer/go.* producer/
COPY deploy/go.* deploy/
COPY shared/ shared/
COPY producer/ producer/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags='-s -w' -o /out/producer ./producer

# --- runtime -----------------------------------------------------------------
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/producer /usr/local/bin/producer
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/producer"]
