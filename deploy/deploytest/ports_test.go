package deploytest

import "strconv"

// The ports and probe paths every deployment file must agree on. The
// services' own defaults are checked against these in env_test.go.
const (
	ingestorPort  = 9101 // ops: metrics, health, pprof
	readerPort    = 8080 // public: API, UI, health
	readerOpsPort = 9102 // ops: metrics, pprof, health
	livePath      = "/healthz"
	readyPath     = "/readyz"
	metricsPath   = "/metrics"

	grafanaDashboardDir = "/etc/grafana/dashboards"
)

func itoa(n int) string { return strconv.Itoa(n) }
