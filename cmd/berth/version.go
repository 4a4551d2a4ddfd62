package main

import (
	"context"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth"
)

func (a *app) newVersion() *cobra.Command {
	return &cobra.Command{Use: "version", Short: "Print the client's version and the server's, if it is reachable", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			type info struct {
				Client      string `json:"client"`
				Go          string `json:"go"`
				Server      string `json:"server,omitempty"`
				ServerURL   string `json:"serverUrl"`
				ServerError string `json:"serverError,omitempty"`
			}
			v := info{Client: berth.Version(), Go: runtime.Version(), ServerURL: a.serverURL()}
			// The server's version is a courtesy: an unreachable server
			// is reported, not an error of `berth version`.
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			v.Server, v.ServerError = a.serverVersion(ctx)
			switch a.flags.output {
			case "json":
				return writeJSON(a.stdout, v)
			case "yaml":
				return writeYAML(a.stdout, v)
			}
			if v.ServerError != "" {
				return a.printf("client: %s (%s)\nserver: %s\n", v.Client, v.Go, v.ServerError)
			}
			return a.printf("client: %s (%s)\nserver: %s at %s\n", v.Client, v.Go, v.Server, v.ServerURL)
		}}
}

// serverVersion asks /healthz, which needs no key; it returns the version
// or why there is none.
func (a *app) serverVersion(ctx context.Context) (string, string) {
	c := a.newClient(a.serverURL(), "")
	var h struct {
		Version string `json:"version"`
	}
	if _, err := c.Do(ctx, "GET", "/healthz", nil, &h); err != nil {
		return "", a.explain(err)
	}
	if h.Version == "" {
		return "unknown", ""
	}
	return h.Version, ""
}
