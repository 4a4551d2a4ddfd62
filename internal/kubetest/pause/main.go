// Command pause is the Pod sandbox ("pause") process of the test cluster
// that .ci/kube-up starts: no registry can be reached, so the image that
// holds a Pod's namespaces is built here. It does what the upstream one
// does: as PID 1 of the sandbox it sleeps until SIGTERM or SIGINT, and
// reaps any child that is reparented to it so no zombie is left behind.
//
// It must be a static binary (CGO_ENABLED=0): the image has nothing else.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not PID 1, children of others are not reaped here")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every child that has exited: several exits can share one
// SIGCHLD.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
