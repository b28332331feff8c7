//go:build unix && !linux

package main

import "syscall"

// childAttr puts a child in its own process group (see startProc).
func childAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
