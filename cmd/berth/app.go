package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

// app is one run of the CLI: its streams, its environment and the global
// flags. Everything a command reads from the outside world goes through it,
// so that tests run the CLI in-process, in parallel, with their own
// environment and captured output.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// stderrTTY says whether stderr is a terminal: progress bars are drawn
	// only then. stdinTTY: whether `berth login` prompts for the key.
	stderrTTY, stdinTTY bool
	// readSecret reads a line from the terminal without echo.
	readSecret func() (string, error)

	flags globalFlags
	// wsCache holds the workspaces resolved in this run, by reference.
	wsCache map[string]*client.Workspace
}

// globalFlags are the root's persistent flags, read by every client command.
type globalFlags struct {
	server, key, context string
	output               string // "", json, yaml, wide
	quiet                bool
}

// exitError ends the CLI with code and prints nothing: the command already
// said what happened (exec returns its command's exit code this way).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run executes args and returns the process's exit code, having printed
// any error to stderr as "berth: message (request id)".
func (a *app) run(ctx context.Context, args []string) int {
	root := a.newRoot()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	a.warnf("berth: %s\n", a.explain(err))
	return 1
}

// warnf writes to stderr (an error, a hint, a prompt). A stderr that cannot
// be written has nowhere to report that: the error is dropped, here only.
func (a *app) warnf(format string, args ...any) {
	_, _ = fmt.Fprintf(a.stderr, format, args...)
}

// printf writes to stdout; its error (a closed pipe) ends the command.
func (a *app) printf(format string, args ...any) error {
	_, err := fmt.Fprintf(a.stdout, format, args...)
	return err
}

// explain words an error for a person: the API's message with its request
// id (what an operator greps the server's log for), and what to do about a
// server that is not there.
func (a *app) explain(err error) string {
	var ae *client.Error
	if errors.As(err, &ae) {
		msg := ae.Message
		if msg == "" {
			msg = fmt.Sprintf("%d %s", ae.Status, ae.Code)
		}
		if ae.RequestID != "" {
			return fmt.Sprintf("%s (request %s)", msg, ae.RequestID)
		}
		return msg
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("cannot reach the server at %s: is it running? start it with `berth serve` (or `make run`)", a.serverURL())
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return fmt.Sprintf("cannot reach the server at %s: %v", a.serverURL(), dnsErr)
	}
	return err.Error()
}

// env reads an environment variable through the app (tests set their own).
func (a *app) env(name string) string {
	if a.getenv == nil {
		return ""
	}
	return a.getenv(name)
}

// defaultServer is where `berth serve` listens by default.
const defaultServer = "http://127.0.0.1:8080"

// serverURL is the server the command talks to: --server, BERTH_URL, the
// context's, or the default.
func (a *app) serverURL() string {
	_, c, _ := a.currentContext()
	return firstOf(a.flags.server, a.env("BERTH_URL"), c.Server, defaultServer)
}

// client returns the API client for the chosen server and key: --server /
// --key, then BERTH_URL / BERTH_API_KEY, then the context (--context,
// BERTH_CONTEXT or the config's current one), then, for a server run from
// this directory, ./berth-data/admin.key (BERTH_DATA_DIR).
func (a *app) client() (*client.Client, error) {
	name, c, err := a.currentContext()
	if err != nil {
		return nil, err
	}
	u := firstOf(a.flags.server, a.env("BERTH_URL"), c.Server, defaultServer)
	key := firstOf(a.flags.key, a.env("BERTH_API_KEY"), c.Key)
	if key == "" {
		dir := firstOf(a.env("BERTH_DATA_DIR"), "./berth-data")
		b, err := os.ReadFile(filepath.Join(dir, "admin.key"))
		if err != nil {
			hint := "run `berth login`"
			if name != "" {
				hint = fmt.Sprintf("context %q has no key: run `berth login --context %s`", name, name)
			}
			return nil, fmt.Errorf("no API key: %s, or set --key or BERTH_API_KEY", hint)
		}
		key = strings.TrimSpace(string(b))
	}
	return a.newClient(u, key), nil
}

// newClient is a client of server u with key.
func (a *app) newClient(u, key string) *client.Client { return client.New(u, key) }

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:          "berth",
		Short:        "berth: sandboxes and durable workspaces for AI agents",
		SilenceUsage: true,
		// run prints errors, API ones with their request id, and usage
		// errors too: one line, exit 1.
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.flags.server, "server", "", "berth server URL (BERTH_URL; default: the context's, else "+defaultServer+")")
	pf.StringVar(&a.flags.key, "key", "", "API key (BERTH_API_KEY; default: the context's)")
	pf.StringVar(&a.flags.context, "context", "", "context of the config file to use (BERTH_CONTEXT; default: the current one)")
	pf.StringVarP(&a.flags.output, "output", "o", "", "output format: table (default), wide, json or yaml")
	pf.BoolVarP(&a.flags.quiet, "quiet", "q", false, "print only ids")
	// The flags the CLI had before contexts, still accepted.
	pf.StringVar(&a.flags.server, "url", "", "")
	pf.StringVar(&a.flags.key, "api-key", "", "")
	_ = pf.MarkHidden("url")     // the flag exists: MarkHidden cannot fail
	_ = pf.MarkHidden("api-key") // idem
	_ = root.RegisterFlagCompletionFunc("context", a.completeContexts)
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "wide", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch a.flags.output {
		case "", "table", "wide", "json", "yaml":
			return nil
		}
		return fmt.Errorf("--output %q: want table, wide, json or yaml", a.flags.output)
	}

	root.AddCommand(newServe(), newDoctor(), a.newVersion(), a.newLogin(), a.newContext())
	a.addWorkspaceCommands(root)
	a.addFilesCommands(root)
	a.addSandboxCommands(root)
	a.addTemplateCommands(root)
	a.addAgentCommands(root)
	a.addThreadCommands(root)
	a.addOrgCommands(root)
	return root
}
