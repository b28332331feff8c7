package deploytest

import "strconv"

// The ports and probe paths every deployment file must agree on. The
// services' own defaults are checked against these in env_test.go.
const (
	ingestorPort = 9101
	readerPort   = 8080
	livePath     = "/healthz"
	readyPath    = "/readyz"
	metricsPath  = "/metrics"

	grafanaDashboardDir = "/etc/grafana/dashboards"
)

func itoa(n int) string { return strconv.Itoa(n) }
