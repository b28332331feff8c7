//go:build unix && !linux

package localserver

import "syscall"

// procAttr runs a server process in its own process group, as cred. Only
// Linux has parent-death signals: sig is ignored.
func procAttr(cred *syscall.Credential, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
