package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

var templateTable = table[client.Template]{
	ID: func(t client.Template) string { return t.Name },
	Columns: []column[client.Template]{
		{"NAME", func(t client.Template) string { return t.Name }, false},
		{"READY", func(t client.Template) string { return fmt.Sprint(t.Ready) }, false},
		{"DESCRIPTION", func(t client.Template) string { return t.Description }, false},
		{"IMAGE", func(t client.Template) string { return t.Image }, true},
	},
}

// buildLogTail is how many of a build's last log lines a failure shows.
const buildLogTail = 20

// newSpinner is a progress indicator for work of unknown length counted in
// steps, not bytes (a build's log lines), with the same terminal rule as
// newProgress: drawn on stderr only when it is a terminal, never with -q.
func (a *app) newSpinner(what string) *progress {
	if !a.stderrTTY || a.flags.quiet {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (a *app) addTemplateCommands(root *cobra.Command) {
	tp := &cobra.Command{Use: "template", Aliases: []string{"templates"}, Short: "Sandbox templates"}
	tp.AddCommand(&cobra.Command{Use: "list", Aliases: []string{"ls"}, Short: "List templates", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ts, err := c.Templates(cmd.Context())
			if err != nil {
				return err
			}
			return printList(a, ts, templateTable)
		}})
	tp.AddCommand(&cobra.Command{Use: "get NAME", Short: "Show a template", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeTemplates,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.Template(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printOne(a, *t, templateTable)
		}})

	var showLog bool
	build := &cobra.Command{Use: "build NAME", Short: "Build (or pull) a template's image now (admins)",
		Long: "Build (or pull) a template's image now. On a terminal a spinner shows the build's\n" +
			"current step; elsewhere the build is silent unless --log. A failed build prints\n" +
			"the last lines of its log.",
		Args: cobra.ExactArgs(1), ValidArgsFunction: a.completeTemplates,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			p := a.newSpinner("build " + args[0])
			var tail []string
			t, err := c.BuildTemplateStream(cmd.Context(), args[0], func(line string) {
				if showLog {
					a.warnf("%s\n", line)
				}
				if len(tail) == buildLogTail {
					tail = tail[1:]
				}
				tail = append(tail, line)
				p.Describe("build " + args[0] + ": " + shorten(line, 60))
				p.Add(1)
			})
			p.Finish()
			if err != nil {
				if !showLog && len(tail) > 0 {
					a.warnf("%s\n", strings.Join(tail, "\n"))
				}
				return err
			}
			return a.mutated(t, t.Name, "template %s built (%s)", t.Name, t.Image)
		}}
	build.Flags().BoolVar(&showLog, "log", false, "print the build's log to stderr")
	tp.AddCommand(build)
	root.AddCommand(tp)
}

// shorten cuts s to n runes, marking the cut.
func shorten(s string, n int) string {
	r := []rune(strings.TrimSpace(s))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n-1]) + "…"
}
