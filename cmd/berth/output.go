package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"go.yaml.in/yaml/v3"
)

// column is one column of a table: its header, how to print a row's cell,
// and whether it shows only with -o wide.
type column[T any] struct {
	Header string
	Value  func(T) string
	Wide   bool
}

// table says how to print values of T: the id -q prints, and the columns.
// Every command prints through printList / printOne / mutated, so -o and -q
// mean the same everywhere.
type table[T any] struct {
	ID      func(T) string
	Columns []column[T]
}

// printList prints items as an aligned table (nothing at all when there are
// none), as a JSON or YAML array (never null), or their ids with -q.
func printList[T any](a *app, items []T, t table[T]) error {
	if items == nil {
		items = []T{}
	}
	switch {
	case a.flags.output == "json":
		return writeJSON(a.stdout, items)
	case a.flags.output == "yaml":
		return writeYAML(a.stdout, items)
	case a.flags.quiet:
		for _, it := range items {
			if _, err := fmt.Fprintln(a.stdout, t.ID(it)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(items) == 0 {
		return nil
	}
	wide := a.flags.output == "wide"
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 3, ' ', 0)
	var cols []column[T]
	for _, c := range t.Columns {
		if !c.Wide || wide {
			cols = append(cols, c)
		}
	}
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = c.Header
	}
	// Writes to tw are buffered; Flush returns the first error.
	_, _ = fmt.Fprintln(tw, strings.Join(cells, "\t"))
	for _, it := range items {
		for i, c := range cols {
			cells[i] = clean(c.Value(it))
		}
		_, _ = fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// printOne prints one value: a one-row table, JSON, YAML, or its id.
func printOne[T any](a *app, item T, t table[T]) error {
	switch a.flags.output {
	case "json":
		return writeJSON(a.stdout, item)
	case "yaml":
		return writeYAML(a.stdout, item)
	}
	return printList(a, []T{item}, t)
}

// mutated reports a change: with -o json|yaml the object the server
// answered, with -q its id, else the sentence ("workspace docs created
// (ws_…)").
func (a *app) mutated(obj any, id, format string, args ...any) error {
	switch {
	case a.flags.output == "json" && obj != nil:
		return writeJSON(a.stdout, obj)
	case a.flags.output == "yaml" && obj != nil:
		return writeYAML(a.stdout, obj)
	case a.flags.quiet:
		if id != "" {
			_, err := fmt.Fprintln(a.stdout, id)
			return err
		}
		return nil
	}
	_, err := fmt.Fprintf(a.stdout, format+"\n", args...)
	return err
}

// donef says what a command did (not an API object: login, context use),
// silent with -q.
func (a *app) donef(format string, args ...any) {
	if !a.flags.quiet {
		// A message only: a stdout that cannot take it changes nothing done.
		_, _ = fmt.Fprintf(a.stdout, format+"\n", args...)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONLine writes v as one line of JSON (a stream of events).
func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// writeYAML prints v with the field names of its JSON form (the API's),
// not the Go names yaml would give it.
func writeYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return err
	}
	return enc.Close()
}

// clean keeps a cell on one line and its columns aligned.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// Cell formatters shared by the tables.

// ago is a time as "3m ago"; "-" for none.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return humanize.Time(t)
}

func agoPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return ago(*t)
}

// bytesCell is a size as "1.2 MiB".
func bytesCell(n int64) string {
	if n < 0 {
		return "-"
	}
	return humanize.IBytes(uint64(n))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
