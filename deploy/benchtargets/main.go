// Command benchtargets reads `go test -bench` output (the file `make bench`
// writes, .artifacts/bench.txt) and prints a table of every speed target
// (targets.go): its figure, the figure's ratio to the target, PASS or FAIL.
// A target whose benchmark is not in the output is MISSING.
//
// Usage:
//
//	benchtargets [-strict] [file]   (standard input without a file)
//
// With -strict the exit status is 1 when a target fails or is missing.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchfmt"
)

// target is one goal: the benchmark's metric Unit at least (AtLeast) or at
// most Limit.
type target struct {
	Name    string
	Pkg     string // import path, as on the output's "pkg:" line
	Bench   string // without "Benchmark" and the GOMAXPROCS suffix
	Unit    string
	AtLeast bool
	Limit   float64
}

// verdict is a target against the figures.
type verdict struct {
	target
	Found  bool
	Figure float64 // the median of the runs
	Pass   bool
}

// Ratio is the figure over the limit: above 1 is better for an at-least
// target, below 1 for an at-most one.
func (v verdict) Ratio() float64 { return v.Figure / v.Limit }

func main() {
	code, err := run(os.Args[1:], os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtargets:", err)
	}
	os.Exit(code)
}

func run(args []string, stdin io.Reader, stdout io.Writer) (int, error) {
	fs := flag.NewFlagSet("benchtargets", flag.ContinueOnError)
	strict := fs.Bool("strict", false, "exit 1 when a target fails or is missing")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	in, name := stdin, "<stdin>"
	if fs.NArg() > 0 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return 2, err
		}
		defer f.Close()
		in, name = f, fs.Arg(0)
	}
	figures, err := parse(in, name)
	if err != nil {
		return 2, err
	}
	verdicts := judge(targets, figures)
	if err := printTable(stdout, verdicts); err != nil {
		return 2, err
	}
	if *strict && slices.ContainsFunc(verdicts, func(v verdict) bool { return !v.Pass }) {
		return 1, nil
	}
	return 0, nil
}

// key names one metric of one benchmark of one package.
type key struct{ pkg, bench, unit string }

// parse collects every value of every metric in go test -bench output.
func parse(r io.Reader, name string) (map[key][]float64, error) {
	out := map[key][]float64{}
	br := benchfmt.NewReader(r, name)
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue // a syntax error is a line that is not a result (a log line)
		}
		bench := strings.TrimPrefix(string(res.Name.Base()), "Benchmark")
		for _, v := range res.Values {
			unit, value := v.Unit, v.Value
			if v.OrigUnit != "" {
				unit, value = v.OrigUnit, v.OrigValue
			}
			k := key{res.GetConfig("pkg"), bench, unit}
			out[k] = append(out[k], value)
		}
	}
	if err := br.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

func judge(ts []target, figures map[key][]float64) []verdict {
	vs := make([]verdict, 0, len(ts))
	for _, t := range ts {
		v := verdict{target: t}
		if vals := figures[key{t.Pkg, t.Bench, t.Unit}]; len(vals) > 0 {
			v.Found, v.Figure = true, median(vals)
			if t.AtLeast {
				v.Pass = v.Figure >= t.Limit
			} else {
				v.Pass = v.Figure <= t.Limit
			}
		}
		vs = append(vs, v)
	}
	return vs
}

func median(vals []float64) float64 {
	s := slices.Sorted(slices.Values(vals))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func printTable(w io.Writer, vs []verdict) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tBENCHMARK\tFIGURE\tGOAL\tRATIO\tRESULT")
	failed := 0
	for _, v := range vs {
		goal := "≥ "
		if !v.AtLeast {
			goal = "≤ "
		}
		goal += number(v.Limit) + " " + v.Unit
		figure, ratio, result := "—", "—", "MISSING"
		if v.Found {
			figure = number(v.Figure) + " " + v.Unit
			ratio = strconv.FormatFloat(v.Ratio(), 'f', 2, 64)
			result = "PASS"
			if !v.Pass {
				result = "FAIL"
			}
		}
		if result != "PASS" {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, "Benchmark"+v.Bench, figure, goal, ratio, result)
	}
	fmt.Fprintf(tw, "%d of %d targets met\n", len(vs)-failed, len(vs))
	return tw.Flush()
}

// number prints a figure as people read it: 12,345 for rates, 0.78 for
// ratios.
func number(f float64) string {
	if f >= 100 {
		s := strconv.FormatFloat(f, 'f', 0, 64)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}
