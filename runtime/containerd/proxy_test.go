package containerd_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// proxy listens on the unix socket sock and forwards every connection to the
// engine at host (a unix socket path): an engine "appearing" at sock, without
// touching the real daemon.
func proxy(t *testing.T, sock, host string) (stop func()) {
	t.Helper()
	target := strings.TrimPrefix(host, "unix://")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// A proxied connection ends when either side does; its
				// close errors say nothing the copies did not.
				defer func() { _ = c.Close() }()
				up, err := net.Dial("unix", target)
				if err != nil {
					return
				}
				defer func() { _ = up.Close() }()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return func() {
		if err := ln.Close(); err != nil {
			t.Errorf("close the proxy: %v", err)
		}
		wg.Wait()
	}
}
