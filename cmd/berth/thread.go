package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

var threadTable = table[client.Thread]{
	ID: func(t client.Thread) string { return t.ID },
	Columns: []column[client.Thread]{
		{"ID", func(t client.Thread) string { return t.ID }, false},
		{"AGENT", func(t client.Thread) string { return t.AgentSlug }, false},
		{"TITLE", func(t client.Thread) string { return shorten(orDash(t.Title), 50) }, false},
		{"EVENTS", func(t client.Thread) string { return fmt.Sprint(t.EventCount) }, false},
		{"UPDATED", func(t client.Thread) string { return ago(t.UpdatedAt) }, false},
		{"ARCHIVED", func(t client.Thread) string { return fmt.Sprint(t.Archived) }, true},
		{"CREATED", func(t client.Thread) string { return ago(t.CreatedAt) }, true},
	},
}

var eventTable = table[client.RunEvent]{
	ID: func(e client.RunEvent) string { return strconv.FormatInt(e.Seq, 10) },
	Columns: []column[client.RunEvent]{
		{"SEQ", func(e client.RunEvent) string { return strconv.FormatInt(e.Seq, 10) }, false},
		{"RUN", func(e client.RunEvent) string { return e.RunID }, false},
		{"TYPE", func(e client.RunEvent) string { return e.Type }, false},
		{"TEXT", func(e client.RunEvent) string { return shorten(eventText(e), 80) }, false},
		{"CREATED", func(e client.RunEvent) string { return ago(e.CreatedAt) }, true},
	},
}

// eventText is what an event says in one cell: its text, a status and its
// reason, or a result's status and exit code.
func eventText(e client.RunEvent) string {
	if e.Text != "" {
		return strings.TrimRight(e.Text, "\n")
	}
	var d struct {
		Status   string `json:"status"`
		Reason   string `json:"reason"`
		ExitCode *int   `json:"exitCode"`
	}
	if json.Unmarshal(e.Data, &d) != nil || d.Status == "" {
		return string(e.Data)
	}
	s := d.Status
	if d.Reason != "" {
		s += ": " + d.Reason
	}
	if d.ExitCode != nil {
		s += fmt.Sprintf(" (exit code %d)", *d.ExitCode)
	}
	return s
}

// threadDetail is `thread show`'s object: the thread, its runs and events.
type threadDetail struct {
	client.Thread
	Events []client.RunEvent `json:"events"`
}

// completeThreads completes thread ids, described by their titles.
func (a *app) completeThreads(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeWith(a, func(ctx context.Context, c *client.Client) ([]client.Thread, error) {
		return c.AllThreads(ctx, "")
	}, func(t client.Thread) string { return t.ID }, func(t client.Thread) string { return t.AgentSlug + ": " + t.Title })(cmd, args, toComplete)
}

func (a *app) addThreadCommands(root *cobra.Command) {
	th := &cobra.Command{Use: "thread", Aliases: []string{"threads"}, Short: "Agent conversation threads"}

	var agentSlug string
	list := &cobra.Command{Use: "list", Aliases: []string{"ls"}, Short: "List threads, oldest first (as the API pages them)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ts, err := c.AllThreads(cmd.Context(), agentSlug)
			if err != nil {
				return err
			}
			return printList(a, ts, threadTable)
		}}
	list.Flags().StringVar(&agentSlug, "agent", "", "only the threads of this agent (slug)")
	_ = list.RegisterFlagCompletionFunc("agent", a.completeAgents) // the flag exists

	show := &cobra.Command{Use: "show THREAD", Short: "Show a thread: its runs, then its events", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeThreads,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.Thread(ctx, args[0])
			if err != nil {
				return err
			}
			evs, err := c.ThreadEventsAfter(ctx, t.ID, "")
			if err != nil {
				return err
			}
			if t.Runs == nil {
				t.Runs = []client.Run{}
			}
			switch {
			case a.flags.output == "json" || a.flags.output == "yaml":
				return printOne(a, threadDetail{*t, evs}, table[threadDetail]{})
			case a.flags.quiet:
				return printList(a, t.Runs, runTable)
			}
			if err := printList(a, t.Runs, runTable); err != nil {
				return err
			}
			if len(evs) == 0 {
				return nil
			}
			if err := a.printf("\n"); err != nil {
				return err
			}
			return printList(a, evs, eventTable)
		}}

	var fromStart bool
	follow := &cobra.Command{Use: "follow THREAD", Short: "Print a thread's new events as they happen (until interrupted)",
		Long: "Print a thread's events as its runs produce them: agent output to stdout, prompts and\n" +
			"run status to stderr (-o json: one event object per line on stdout). Runs until\n" +
			"interrupted; --from-start prints the thread's history first.",
		Args: cobra.ExactArgs(1), ValidArgsFunction: a.completeThreads,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.followThread(cmd.Context(), c, args[0], fromStart)
		}}
	follow.Flags().BoolVar(&fromStart, "from-start", false, "print the thread's earlier events first")

	th.AddCommand(list, show, follow)
	root.AddCommand(th)
}

// followPoll is how often follow looks for a new run of a thread that has
// none live: runs are followed live, but the API has no stream of a whole
// thread to say that one started.
const followPoll = time.Second

// followThread prints a thread's events until ctx ends. A live run is
// followed through its event stream; between runs the thread's event list
// is polled. Events are printed once each, by sequence number: a stream
// and a list may both return one.
func (a *app) followThread(ctx context.Context, c *client.Client, id string, fromStart bool) error {
	t, err := c.Thread(ctx, id)
	if err != nil {
		return err
	}
	id = t.ID
	cursor := "" // the thread's events up to here were handled
	printed := map[int64]bool{}
	if !fromStart {
		evs, err := c.ThreadEventsAfter(ctx, id, "")
		if err != nil {
			return err
		}
		if len(evs) > 0 {
			cursor = strconv.FormatInt(evs[len(evs)-1].Seq, 10)
		}
	}
	show := func(e client.RunEvent) error {
		if printed[e.Seq] {
			return nil
		}
		printed[e.Seq] = true
		return a.printEvent(e)
	}
	for {
		evs, err := c.ThreadEventsAfter(ctx, id, cursor)
		if err != nil {
			return ignoreCancel(ctx, err)
		}
		for _, e := range evs {
			if err := show(e); err != nil {
				return err
			}
			cursor = strconv.FormatInt(e.Seq, 10)
		}
		// Events below the cursor are settled: forget them.
		if n, err := strconv.ParseInt(cursor, 10, 64); err == nil {
			for s := range printed {
				if s <= n {
					delete(printed, s)
				}
			}
		}
		t, err := c.Thread(ctx, id)
		if err != nil {
			return ignoreCancel(ctx, err)
		}
		live := ""
		for _, r := range t.Runs {
			if r.Status == "queued" || r.Status == "running" {
				live = r.RunID
				break
			}
		}
		if live != "" {
			err := c.FollowRun(ctx, live, cursor, func(ev client.Event) error {
				seq, err := strconv.ParseInt(ev.ID, 10, 64)
				if err != nil {
					return nil // not a run event (an error frame has no id)
				}
				e := client.RunEvent{Seq: seq, ThreadID: id, RunID: live, Type: ev.Name}
				switch ev.Name {
				case "status", "result":
					e.Data = json.RawMessage(ev.Data)
				default:
					e.Text = ev.Data
				}
				return show(e)
			})
			if err != nil {
				return ignoreCancel(ctx, err)
			}
			continue
		}
		tm := time.NewTimer(followPoll)
		select {
		case <-ctx.Done():
			tm.Stop()
			return nil
		case <-tm.C:
		}
	}
}

// ignoreCancel is nil when ctx ended (the user interrupted a follow),
// else err.
func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// printEvent prints one event as follow does: a JSON line with -o json,
// else the agent's output on stdout and the rest on stderr.
func (a *app) printEvent(e client.RunEvent) error {
	switch a.flags.output {
	case "json":
		return writeJSONLine(a.stdout, e)
	case "yaml":
		return writeYAML(a.stdout, []client.RunEvent{e})
	}
	switch e.Type {
	case "stdout":
		return a.printf("%s", e.Text)
	case "stderr":
		a.warnf("%s", e.Text)
	case "prompt":
		a.warnf("> %s\n", strings.ReplaceAll(strings.TrimRight(e.Text, "\n"), "\n", "\n> "))
	case "result":
		// The status event before it says how the run ended.
	default:
		a.warnf("[%s %s]\n", e.RunID, eventText(e))
	}
	return nil
}
