package main

// targets is every speed goal `make bench` measures, in one place. Each is
// one metric of one benchmark (as reported with b.ReportMetric); the
// READMEs explain the goals and the benchmarks.
var targets = []target{
	{Name: "ingest (broker to committed rows)", Pkg: "github.com/orderservice/orders/ingestor", Bench: "Ingest",
		Unit: "orders/s", AtLeast: true, Limit: 10_000},
	{Name: "producer (generated orders)", Pkg: "github.com/orderservice/orders/producer", Bench: "ProduceGenerate",
		Unit: "msgs/s", AtLeast: true, Limit: 50_000},
	{Name: "reader cached: req/s of the ceiling's", Pkg: "github.com/orderservice/orders/reader", Bench: "GetCached",
		Unit: "rps-ratio", AtLeast: true, Limit: 0.7},
	{Name: "reader cached: p99 of the ceiling's", Pkg: "github.com/orderservice/orders/reader", Bench: "GetCached",
		Unit: "p99-ratio", AtLeast: false, Limit: 1.5},
	{Name: "reader unknown flood: req/s of the ceiling's", Pkg: "github.com/orderservice/orders/reader", Bench: "GetUnknownFlood",
		Unit: "rps-ratio", AtLeast: true, Limit: 0.5},
	{Name: "reader uncached (PostgreSQL lookups)", Pkg: "github.com/orderservice/orders/reader", Bench: "GetUncached",
		Unit: "req/s", AtLeast: true, Limit: 8_000},
}
