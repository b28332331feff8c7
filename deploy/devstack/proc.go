package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// proc is a long-running child process (a service or a throwaway server).
type proc struct {
	name string
	cmd  *exec.Cmd
	out  io.WriteCloser
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result, valid after done
}

// startProc starts a child whose output goes to out (closed once the child
// has exited).
// The child runs in a process group of its own so that the terminal's
// Ctrl-C reaches only devstack, which then stops the children in order
// (stop): cancelling ctx does not kill it.
func startProc(ctx context.Context, out io.WriteCloser, name string, cred *syscall.Credential, env []string, bin string, args ...string) (*proc, error) {
	cmd := exec.CommandContext(context.WithoutCancel(ctx), bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = env
	cmd.SysProcAttr = childAttr(cred)
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = out.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, with its Wait error.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		if p.err == nil {
			return true, fmt.Errorf("%s exited", p.name)
		}
		return true, fmt.Errorf("%s exited: %w", p.name, p.err)
	default:
		return false, nil
	}
}

// stop sends sig and waits up to grace for the process to exit, then kills
// it. It returns how long the process took to stop.
func (p *proc) stop(sig os.Signal, grace time.Duration) time.Duration {
	start := time.Now()
	select {
	case <-p.done:
		return 0
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return time.Since(start)
}

// runOnce runs a command to completion with its output on the console.
// Cancelling ctx sends SIGTERM (the producer flushes what it has and exits)
// and kills the process if it has not exited ten seconds later.
func runOnce(ctx context.Context, con *console, name, dir string, env []string, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	out := con.Writer(name)
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = childAttr(nil)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
