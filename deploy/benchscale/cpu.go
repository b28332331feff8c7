package benchscale

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100

// machineCPU is the machine's CPU time so far, from the first line of
// /proc/stat: busy (every state but idle and iowait) and total.
type machineCPU struct {
	Busy, Total time.Duration
}

func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, err
	}
	return parseMachineStat(string(b))
}

// parseMachineStat reads the aggregate "cpu" line of /proc/stat: user nice
// system idle iowait irq softirq steal (guest and guest_nice are already
// counted in user and nice).
func parseMachineStat(stat string) (machineCPU, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return machineCPU{}, fmt.Errorf("%q is not the cpu line of /proc/stat", line)
	}
	var busy, total int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return machineCPU{}, fmt.Errorf("%q: %w", line, err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	tick := time.Second / clockTicks
	return machineCPU{Busy: time.Duration(busy) * tick, Total: time.Duration(total) * tick}, nil
}

// cpuDelta is the CPU time pids used between two samples (pid → CPU time
// so far): a pid missing from before started in between and counts from
// zero; one missing from after is left out.
func cpuDelta(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, a := range after {
		d += a - before[pid]
	}
	return d
}
