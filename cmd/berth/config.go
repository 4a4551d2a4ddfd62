package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth/client"
)

// config is the CLI's config file, $XDG_CONFIG_HOME/berth/config.yaml: named
// contexts (a server and a key each) like kubectl's, and the current one.
// It holds keys, so it is written 0600 in a 0700 directory.
type config struct {
	CurrentContext string                   `yaml:"current-context,omitempty" json:"currentContext,omitempty"`
	Contexts       map[string]configContext `yaml:"contexts,omitempty" json:"contexts,omitempty"`
}

// configContext is one server and the key to use on it.
type configContext struct {
	Server string `yaml:"server" json:"server"`
	Key    string `yaml:"key,omitempty" json:"-"`
	// User and Org are who the key was when `berth login` checked it,
	// shown by `berth context list`.
	User string `yaml:"user,omitempty" json:"user,omitempty"`
	Org  string `yaml:"org,omitempty" json:"org,omitempty"`
}

// configPath is $XDG_CONFIG_HOME/berth/config.yaml, ~/.config/berth/... when
// XDG_CONFIG_HOME is unset.
func (a *app) configPath() (string, error) {
	dir := a.env("XDG_CONFIG_HOME")
	if dir == "" {
		home := a.env("HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("no config directory: set XDG_CONFIG_HOME or HOME: %w", err)
			}
			home = h
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "berth", "config.yaml"), nil
}

// loadConfig reads the config file; a missing one is an empty config.
func (a *app) loadConfig() (*config, error) {
	p, err := a.configPath()
	if err != nil {
		return nil, err
	}
	cfg := &config{}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", p, err)
	}
	return cfg, nil
}

// saveConfig writes the config atomically (a temporary file renamed over
// it), readable by its owner only.
func (a *app) saveConfig(cfg *config) error {
	p, err := a.configPath()
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// MkdirAll leaves an existing directory as it was; ours holds keys.
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // gone after the rename; else cleanup
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// currentContext is the context chosen by --context, BERTH_CONTEXT or the
// config's current-context; name "" and a zero context when there is none.
// A context named but missing is an error.
func (a *app) currentContext() (string, configContext, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return "", configContext{}, err
	}
	name := firstOf(a.flags.context, a.env("BERTH_CONTEXT"))
	if name == "" {
		name = cfg.CurrentContext
		if _, ok := cfg.Contexts[name]; !ok {
			return "", configContext{}, nil
		}
	}
	c, ok := cfg.Contexts[name]
	if !ok {
		return "", configContext{}, fmt.Errorf("no context %q in %s (see `berth context list`)", name, a.mustConfigPath())
	}
	return name, c, nil
}

func (a *app) mustConfigPath() string {
	p, err := a.configPath()
	if err != nil {
		return "the config file"
	}
	return p
}

func (a *app) newLogin() *cobra.Command {
	return &cobra.Command{
		Use:   "login [URL]",
		Short: "Check an API key against a server and save both as a context",
		Long: "Check an API key against a server (GET /v1/me) and save the server and the key in the\n" +
			"config file ($XDG_CONFIG_HOME/berth/config.yaml, mode 0600) as the context named by\n" +
			"--context (default: the current context, else \"default\"), which becomes the current one.\n" +
			"The key comes from --key, BERTH_API_KEY, or a prompt (without echo; piped: the first line of stdin).",
		Example: "  berth login http://127.0.0.1:8080\n" +
			"  berth login --context prod https://berth.example.com < key.txt",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			name := firstOf(a.flags.context, a.env("BERTH_CONTEXT"), cfg.CurrentContext, "default")
			old := cfg.Contexts[name]
			u := firstOf(a.flags.server, a.env("BERTH_URL"), old.Server, defaultServer)
			if len(args) == 1 {
				u = args[0]
			}
			u = strings.TrimRight(u, "/")
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return fmt.Errorf("server URL %q: want http://host:port or https://...", u)
			}
			// What the key is checked against, and what an unreachable
			// server's hint names.
			a.flags.server = u
			key := firstOf(a.flags.key, a.env("BERTH_API_KEY"))
			if key == "" {
				if key, err = a.readKey(); err != nil {
					return err
				}
			}
			if key == "" {
				return errors.New("no API key given")
			}
			c := a.newClient(u, key)
			me, err := c.Me(cmd.Context())
			if err != nil {
				return err
			}
			if cfg.Contexts == nil {
				cfg.Contexts = map[string]configContext{}
			}
			cfg.Contexts[name] = configContext{Server: u, Key: key, User: userLabel(me.User), Org: me.Org.Name}
			cfg.CurrentContext = name
			if err := a.saveConfig(cfg); err != nil {
				return err
			}
			a.donef("logged in to %s as %s (%s, %s); context %q saved in %s", u, userLabel(me.User), me.Org.Name, me.Role, name, a.mustConfigPath())
			return nil
		},
	}
}

func userLabel(u client.Member) string {
	if u.Email != "" {
		return u.Email
	}
	return u.Name
}

// readKey prompts for the key on a terminal (no echo), else reads the first
// line of stdin.
func (a *app) readKey() (string, error) {
	if a.stdinTTY && a.readSecret != nil {
		a.warnf("API key: ")
		k, err := a.readSecret()
		a.warnf("\n")
		return strings.TrimSpace(k), err
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("no API key: give --key, set BERTH_API_KEY, or pipe it on stdin")
	}
	return strings.TrimSpace(line), nil
}

func (a *app) newContext() *cobra.Command {
	cmd := &cobra.Command{Use: "context", Aliases: []string{"contexts"}, Short: "Named servers and keys of the config file (like kubectl's contexts)"}
	type row struct {
		Current bool   `json:"current"`
		Name    string `json:"name"`
		Server  string `json:"server"`
		User    string `json:"user"`
		Org     string `json:"org"`
	}
	cmd.AddCommand(&cobra.Command{Use: "list", Short: "List contexts", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			names := make([]string, 0, len(cfg.Contexts))
			for n := range cfg.Contexts {
				names = append(names, n)
			}
			sort.Strings(names)
			rows := []row{}
			for _, n := range names {
				c := cfg.Contexts[n]
				rows = append(rows, row{Current: n == cfg.CurrentContext, Name: n, Server: c.Server, User: c.User, Org: c.Org})
			}
			return printList(a, rows, table[row]{
				ID: func(r row) string { return r.Name },
				Columns: []column[row]{
					{"CURRENT", func(r row) string {
						if r.Current {
							return "*"
						}
						return ""
					}, false},
					{"NAME", func(r row) string { return r.Name }, false},
					{"SERVER", func(r row) string { return r.Server }, false},
					{"USER", func(r row) string { return r.User }, false},
					{"ORG", func(r row) string { return r.Org }, true},
				}})
		}})
	cmd.AddCommand(&cobra.Command{Use: "use NAME", Short: "Make a context the current one", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if _, ok := cfg.Contexts[args[0]]; !ok {
				return fmt.Errorf("no context %q (see `berth context list`)", args[0])
			}
			cfg.CurrentContext = args[0]
			if err := a.saveConfig(cfg); err != nil {
				return err
			}
			a.donef("switched to context %q (%s)", args[0], cfg.Contexts[args[0]].Server)
			return nil
		}})
	cmd.AddCommand(&cobra.Command{Use: "delete NAME", Short: "Forget a context and its key", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeContexts,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if _, ok := cfg.Contexts[args[0]]; !ok {
				return fmt.Errorf("no context %q (see `berth context list`)", args[0])
			}
			delete(cfg.Contexts, args[0])
			if cfg.CurrentContext == args[0] {
				cfg.CurrentContext = ""
			}
			if err := a.saveConfig(cfg); err != nil {
				return err
			}
			a.donef("context %q deleted", args[0])
			return nil
		}})
	cmd.AddCommand(&cobra.Command{Use: "current", Short: "Print the current context's name", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			name, _, err := a.currentContext()
			if err != nil {
				return err
			}
			if name == "" {
				return errors.New("no current context: run `berth login`")
			}
			return a.printf("%s\n", name)
		}})
	return cmd
}

func (a *app) completeContexts(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for n, c := range cfg.Contexts {
		names = append(names, n+"\t"+c.Server)
	}
	sort.Strings(names)
	return names, cobra.ShellCompDirectiveNoFileComp
}
