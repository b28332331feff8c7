# syntax=docker/dockerfile:1.7
# The one-shot migration job (deploy/migrate). Build from the repository root:
#   docker build -f deploy/docker/migrate.Dockerfile -t orders/migrate .
# It runs to completion, so it has no HEALTHCHECK.

# --- build -------------------------------------------------------------------
FROM golang:1.26-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
COPY go.work go.work.sum ./
COPY shared/go.* shared/
COPY migrations/go.* migrations/
COPY ingestor/go.* ingestor/
COPY reader/go.* reader/
COPY producer/go.* producer/
COPY deploy/go.* deploy/
COPY shared/ shared/
COPY migrations/ migrations/
COPY deploy/migrate/ deploy/migrate/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags='-s -w' -o /out/migrate ./deploy/migrate

# --- runtime -----------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/migrate /usr/local/bin/migrate
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/migrate"]
