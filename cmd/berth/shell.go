package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-dev/berth/client"
)

func (a *app) sandboxShell() *cobra.Command {
	var cwd, command string
	cmd := &cobra.Command{Use: "shell SANDBOX", Short: "Open an interactive shell in a sandbox",
		Long: "Open an interactive shell (/bin/sh, or --command) on a terminal inside a sandbox. The local\n" +
			"terminal is put in raw mode for the session (Ctrl-C and Ctrl-D go to the sandbox) and\n" +
			"follows window resizes; berth exits with the shell's exit code.",
		Example: "  berth sandbox shell repo-env\n  berth sandbox shell repo-env --command 'top'",
		Args:    cobra.ExactArgs(1), ValidArgsFunction: a.completeSandboxes,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.shell(cmd.Context(), c, args[0], client.TerminalOptions{Cmd: command, Cwd: cwd})
		}}
	cmd.Flags().StringVar(&cwd, "cwd", "", "working directory (default: the sandbox's, /workspace)")
	cmd.Flags().StringVarP(&command, "command", "c", "", "command line to run with /bin/sh -c instead of an interactive shell")
	return cmd
}

// shell runs a terminal session on the local terminal (raw, resized with
// it) or, when stdin is not a terminal, on the piped input.
func (a *app) shell(ctx context.Context, c *client.Client, sandbox string, opt client.TerminalOptions) error {
	in, tty := a.stdin.(*os.File)
	fd := -1
	if tty && term.IsTerminal(int(in.Fd())) {
		fd = int(in.Fd())
		if w, h, err := term.GetSize(fd); err == nil {
			opt.Rows, opt.Cols = h, w
		}
	}
	t, err := c.Terminal(ctx, sandbox, opt)
	if err != nil {
		return err
	}
	defer func() { _ = t.Close() }()
	if fd >= 0 {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("raw terminal: %w", err)
		}
		defer func() { _ = term.Restore(fd, old) }()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, h, err := term.GetSize(fd); err == nil {
					_ = t.Resize(h, w)
				}
			}
		}()
	}
	go func() {
		// Ends with the input (piped) or the process (a terminal).
		_, _ = io.Copy(t, a.stdin)
	}()
	code, err := t.Wait(a.stdout)
	if err != nil {
		if ctx.Err() != nil {
			return exitError{exitInterrupted}
		}
		return err
	}
	if code > 255 || code < 0 {
		code = 255
	}
	if code != 0 {
		return exitError{code}
	}
	return nil
}
