// Package deploytest checks the deployment files without a Docker engine or
// a cluster: it parses docker-compose.yml, the Dockerfiles, the Prometheus
// config and alert rules, the Grafana dashboard and the k8s kustomize base,
// and cross-checks them against each other and against the services
// themselves (the environment variables their config packages read, the
// metrics they export after real traffic, their ports and probe paths).
//
// The package has no non-test API beyond the small parsers the tests share
// (PromQL metric names, Dockerfile instructions, .dockerignore patterns).
package deploytest
