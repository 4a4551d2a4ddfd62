package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

// clientFlags are shared by every client command: the server's URL and the
// API key, from flags, BERTH_URL / BERTH_API_KEY, or ./berth-data/admin.key.
type clientFlags struct {
	url, key, dataDir string
}

func (f *clientFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.url, "url", "", "berth server URL (BERTH_URL; default http://127.0.0.1:8080)")
	cmd.PersistentFlags().StringVar(&f.key, "api-key", "", "API key (BERTH_API_KEY; default: <data-dir>/admin.key)")
	cmd.PersistentFlags().StringVar(&f.dataDir, "data-dir", "", "data directory to read admin.key from (BERTH_DATA_DIR; default ./berth-data)")
}

func (f *clientFlags) client() (*client.Client, error) {
	u := firstOf(f.url, os.Getenv("BERTH_URL"), "http://127.0.0.1:8080")
	key := firstOf(f.key, os.Getenv("BERTH_API_KEY"))
	if key == "" {
		dir := firstOf(f.dataDir, os.Getenv("BERTH_DATA_DIR"), "./berth-data")
		b, err := os.ReadFile(filepath.Join(dir, "admin.key"))
		if err != nil {
			return nil, fmt.Errorf("no API key: set --api-key or BERTH_API_KEY (reading %s/admin.key: %v)", dir, err)
		}
		key = strings.TrimSpace(string(b))
	}
	return client.New(u, key), nil
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func addClientCommands(root *cobra.Command) {
	var cf clientFlags
	ws := &cobra.Command{Use: "workspace", Aliases: []string{"workspaces", "ws"}, Short: "Manage workspaces"}
	cf.add(ws)

	var all bool
	list := &cobra.Command{Use: "list", Short: "List workspaces", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			l, err := c.Workspaces(cmd.Context(), all)
			if err != nil {
				return err
			}
			return printJSON(l)
		}}
	list.Flags().BoolVar(&all, "all", false, "every workspace of the organization (admins)")

	var req client.WorkspaceRequest
	create := &cobra.Command{Use: "create NAME", Short: "Create a workspace", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			req.Name = args[0]
			w, err := c.CreateWorkspace(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printJSON(w)
		}}
	create.Flags().StringVar(&req.Slug, "slug", "", "slug (default: derived from the name)")
	create.Flags().BoolVar(&req.Personal, "personal", false, "personal workspace (owner and admins only, never mountable)")

	var force bool
	del := &cobra.Command{Use: "delete ID", Short: "Delete a workspace", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			return c.DeleteWorkspace(cmd.Context(), args[0], force)
		}}
	del.Flags().BoolVar(&force, "force", false, "delete even while sandboxes or agents use it")

	ws.AddCommand(list, create, del)
	root.AddCommand(ws)
}
