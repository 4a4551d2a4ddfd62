// Package doctor checks that this machine can run berth: a container engine
// that answers and runs the base template with its isolated network, a
// writable data directory with room, a reachable database at a schema this
// binary knows, and a free listen address. Each check is one line saying ok,
// warn or FAIL and, when not ok, what to do. `berth doctor` prints them;
// `make run` uses the engine checks to decide whether to set one up.
package doctor

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/berth-dev/berth/runtime/docker"
)

// Status is a check's outcome.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn" // berth runs, but something is degraded or will be done at start
	Fail Status = "FAIL" // berth (or its sandboxes) will not work until fixed
)

// Check is one line of the report.
type Check struct {
	Group   string `json:"group"` // engine, storage, database, ports
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"` // what to do, when not ok
}

// Config is what is checked: the same settings as `berth serve`'s.
type Config struct {
	Addr       string
	DataDir    string
	Database   string // "" = <DataDir>/berth.db
	DockerHost string // "" = detect
	// Storage and StoragePoolSize are serve's --storage and
	// --storage-pool-size: the storage check says which driver serve would
	// use and whether this host can run it.
	Storage         string
	StoragePoolSize int64
	Env             docker.Env

	// Timeout bounds each network probe (engine, database, port).
	Timeout time.Duration
}

// Groups are the check groups, in the order they run.
var Groups = []string{"engine", "storage", "database", "ports"}

// Report is every check made.
type Report struct {
	OK     bool    `json:"ok"` // no check failed
	Checks []Check `json:"checks"`
}

// Run makes the checks of groups (all of them when empty).
func Run(ctx context.Context, cfg Config, groups ...string) Report {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Env.Getenv == nil {
		cfg.Env = docker.ProcessEnv()
	}
	if len(groups) == 0 {
		groups = Groups
	}
	r := Report{OK: true}
	for _, g := range groups {
		var checks []Check
		switch g {
		case "engine":
			checks = Engine(ctx, cfg)
		case "storage":
			checks = Storage(cfg)
		case "database":
			checks = Database(ctx, cfg)
		case "ports":
			checks = Ports(ctx, cfg)
		default:
			checks = []Check{{Group: g, Name: g, Status: Fail, Message: "unknown check group", Fix: "use " + strings.Join(Groups, ", ")}}
		}
		for _, c := range checks {
			c.Group = g
			if c.Status == Fail {
				r.OK = false
			}
			r.Checks = append(r.Checks, c)
		}
	}
	return r
}

// Failed counts the failed checks.
func (r Report) Failed() int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == Fail {
			n++
		}
	}
	return n
}

// Print writes one line a check: status, name, what was found and, when not
// ok, what to do.
func (r Report) Print(w io.Writer) error {
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(c.Name))
	}
	for _, c := range r.Checks {
		line := fmt.Sprintf("%-4s  %-*s  %s", c.Status, width, c.Name, c.Message)
		if c.Fix != "" {
			line += " — " + c.Fix
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}
