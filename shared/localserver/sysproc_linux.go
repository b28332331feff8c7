package localserver

import "syscall"

// procAttr runs a server process in its own process group, as cred, with
// the parent-death signal sig (0 for none).
func procAttr(cred *syscall.Credential, sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred, Pdeathsig: sig}
}
