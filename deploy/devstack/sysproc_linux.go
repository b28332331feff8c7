package main

import "syscall"

// childAttr puts a child in its own process group (see startProc) and, as a
// safety net should devstack itself be killed with SIGKILL, has the kernel
// send the child SIGTERM when devstack dies.
func childAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM, Credential: cred}
}
