package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

func (a *app) sandboxForward() *cobra.Command {
	cmd := &cobra.Command{Use: "forward SANDBOX [LOCAL:]REMOTE", Short: "Serve a port of a sandbox on a local port",
		Long: "Serve, on 127.0.0.1:LOCAL (default: the same number as REMOTE; 0 picks a free port), the HTTP\n" +
			"server listening on port REMOTE inside a sandbox, through berth's port proxy\n" +
			"(/v1/sandboxes/{id}/ports/{port}/...): requests, streamed answers and WebSockets go through,\n" +
			"signed with this context's key, which the server in the sandbox never sees. It works for a\n" +
			"sandbox with network none too. Runs until interrupted.",
		Example: "  berth sandbox forward repo-env 3000\n  berth sandbox forward repo-env 8080:3000",
		Args:    cobra.ExactArgs(2), ValidArgsFunction: a.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			local, remote, err := parseForward(args[1])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			// The sandbox must exist and be visible before anything listens.
			sb, err := c.Sandbox(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(local)))
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(a.stderr, "Forwarding http://%s to port %d of sandbox %s (Ctrl-C stops)\n", ln.Addr(), remote, sb.Name)
			return serveForward(cmd.Context(), ln, forwardHandler(c, sb.ID, remote))
		}}
	return cmd
}

// parseForward reads [LOCAL:]REMOTE.
func parseForward(s string) (local, remote int, err error) {
	l, r, ok := strings.Cut(s, ":")
	if !ok {
		r = l
	}
	if remote, err = strconv.Atoi(r); err != nil || remote < 1 || remote > 65535 {
		return 0, 0, fmt.Errorf("remote port %q: want a number from 1 to 65535", r)
	}
	if !ok {
		return remote, remote, nil
	}
	if local, err = strconv.Atoi(l); err != nil || local < 0 || local > 65535 {
		return 0, 0, fmt.Errorf("local port %q: want a number from 0 to 65535", l)
	}
	return local, remote, nil
}

// forwardHandler proxies every request to port of sandbox id through the
// API's port proxy, with c's credentials.
func forwardHandler(c *client.Client, id string, port int) http.Handler {
	base, err := url.Parse(c.BaseURL)
	if err != nil {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, err.Error(), http.StatusBadGateway) })
	}
	prefix := client.PortPath(id, port, "")
	prefix = strings.TrimSuffix(prefix, "/")
	return &httputil.ReverseProxy{
		Transport: c.HTTP.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(base)
			pr.Out.URL.Path = strings.TrimSuffix(base.Path, "/") + prefix + pr.In.URL.Path
			pr.Out.URL.RawPath = ""
			auth, err := c.NewRequest(pr.In.Context(), pr.In.Method, "", nil)
			if err == nil {
				for k, v := range auth.Header {
					pr.Out.Header[k] = v
				}
				for _, ck := range auth.Cookies() {
					pr.Out.AddCookie(ck)
				}
			}
		},
	}
}

// serveForward serves h on ln until ctx ends.
func serveForward(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}
