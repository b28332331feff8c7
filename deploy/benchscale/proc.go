package benchscale

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// memStatus is a process's memory as /proc/<pid>/status reports it.
type memStatus struct {
	RSS  int64 // VmRSS: resident now, bytes
	Peak int64 // VmHWM: the most ever resident, bytes
}

// readMemStatus reads /proc/<pid>/status.
func readMemStatus(pid int) (memStatus, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, err
	}
	return parseMemStatus(string(b))
}

// parseMemStatus reads VmRSS and VmHWM out of the text of a
// /proc/<pid>/status file (values in kB).
func parseMemStatus(status string) (memStatus, error) {
	var m memStatus
	found := 0
	for line := range strings.Lines(status) {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.Peak
		default:
			continue
		}
		kb, err := kiloBytes(value)
		if err != nil {
			return memStatus{}, fmt.Errorf("%s: %w", name, err)
		}
		*dst = kb * 1024
		found++
	}
	if found != 2 {
		return memStatus{}, fmt.Errorf("VmRSS or VmHWM missing")
	}
	return m, nil
}

// kiloBytes reads "  12345 kB".
func kiloBytes(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("%q is not a size in kB", strings.TrimSpace(s))
	}
	return strconv.ParseInt(f[0], 10, 64)
}

// memTotal reads MemTotal (bytes) from the text of /proc/meminfo.
func memTotal(meminfo string) (int64, error) {
	for line := range strings.Lines(meminfo) {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := kiloBytes(v)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("MemTotal missing")
}

// loadAverage reads the 1-, 5- and 15-minute load averages from the text
// of /proc/loadavg, as written there ("1.23 0.98 0.70").
func loadAverage(loadavg string) (string, error) {
	f := strings.Fields(loadavg)
	if len(f) < 3 {
		return "", fmt.Errorf("%q is not a load average", loadavg)
	}
	for _, v := range f[:3] {
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return "", fmt.Errorf("%q is not a load average", loadavg)
		}
	}
	return strings.Join(f[:3], " "), nil
}
