package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/client"
)

// remotePath is a parsed "<workspace id or slug>:/path".
type remotePath struct {
	ws   string // as the user wrote it
	path string // absolute, cleaned; "/" for the root
	dir  bool   // written with a trailing slash: a directory is meant
}

func (r remotePath) String() string { return r.ws + ":" + r.path }

// parseRemote reads "ws:/path", "ws:path" or "ws:" / "ws" (the root).
func parseRemote(s string) (remotePath, error) {
	ws, p, _ := strings.Cut(s, ":")
	if ws == "" {
		return remotePath{}, fmt.Errorf("%q: want <workspace id or slug>:/path", s)
	}
	dir := p == "" || strings.HasSuffix(p, "/")
	p = path.Clean("/" + p)
	return remotePath{ws: ws, path: p, dir: dir || p == "/"}, nil
}

// isRemote says whether an argument of put/get names a workspace path
// rather than a local file: it has a colon before any slash ("C:\" aside,
// which berth does not run on).
func isRemote(s string) bool {
	i := strings.Index(s, ":")
	return i > 0 && !strings.Contains(s[:i], "/")
}

var fileTable = table[client.FileEntry]{
	ID: func(e client.FileEntry) string { return e.ID },
	Columns: []column[client.FileEntry]{
		{"NAME", func(e client.FileEntry) string {
			if e.Type == "directory" {
				return e.Name + "/"
			}
			return e.Name
		}, false},
		{"TYPE", func(e client.FileEntry) string { return e.Type }, false},
		{"SIZE", func(e client.FileEntry) string {
			if e.Type == "directory" {
				return "-"
			}
			return bytesCell(e.Size)
		}, false},
		{"MODIFIED", func(e client.FileEntry) string { return ago(e.MTime) }, false},
		{"MIME", func(e client.FileEntry) string {
			if e.MimeType == nil {
				return "-"
			}
			return *e.MimeType
		}, true},
		{"PATH", func(e client.FileEntry) string { return e.ID }, true},
	},
}

func (a *app) addFilesCommands(root *cobra.Command) {
	fc := &cobra.Command{Use: "files", Aliases: []string{"file", "fs"}, Short: "Files of workspaces, named <workspace id or slug>:/path",
		Example: "  berth files put ./README.md docs-project:/src/\n" +
			"  berth files ls docs-project:/src\n" +
			"  berth files get docs-project:/src --format tar.gz"}

	var hidden bool
	ls := &cobra.Command{Use: "ls WS:/DIR", Aliases: []string{"list"}, Short: "List a directory", Args: cobra.ExactArgs(1),
		ValidArgsFunction: a.completeRemote,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ws, rp, err := a.remote(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var all []client.FileEntry
			cursor := ""
			for {
				page, next, err := c.ListFiles(cmd.Context(), ws.ID, rp.path, client.ListFilesOptions{ShowHidden: hidden, Limit: 500, Cursor: cursor})
				if err != nil {
					return err
				}
				all = append(all, page...)
				if next == "" {
					break
				}
				cursor = next
			}
			return printList(a, all, fileTable)
		}}
	ls.Flags().BoolVarP(&hidden, "all", "a", false, "show hidden entries (names starting with a dot)")

	var overwrite bool
	put := &cobra.Command{Use: "put LOCAL... WS:/DIR/", Short: "Upload files and whole directories",
		Long: "Upload local files and directories (recursively) into a workspace directory, created if\n" +
			"missing. A single file may be given a new name: `put a.txt ws:/docs/b.txt`; `put - ws:/f`\n" +
			"uploads stdin as the file f. Each file is replaced atomically, and a put that fails\n" +
			"midway (a broken connection, a quota) replaces none of them.",
		Example: "  berth files put ./README.md docs-project:/src/\n  berth files put ./site docs-project:/",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.put(cmd.Context(), args[:len(args)-1], args[len(args)-1])
		}}

	var (
		format  string
		extract bool
		retries int
	)
	get := &cobra.Command{Use: "get WS:/PATH [LOCAL]", Short: "Download a file, or a directory as zip or tar.gz",
		Long: "Download a file (LOCAL \"-\": to stdout), or a directory as a zip or tar.gz archive\n" +
			"(--format, else from LOCAL's extension; --extract unpacks it into the directory LOCAL).\n" +
			"A file download that is cut off resumes where it stopped: automatically (--retries), or\n" +
			"by running the same command again, from the partial file LOCAL.partial, if the file on\n" +
			"the server is unchanged (If-Range with its ETag); else it starts over.",
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: a.completeRemote,
		RunE: func(cmd *cobra.Command, args []string) error {
			local := ""
			if len(args) == 2 {
				local = args[1]
			}
			return a.get(cmd.Context(), args[0], local, getOptions{format: format, extract: extract, retries: retries})
		}}
	get.Flags().StringVar(&format, "format", "", "a directory's archive format: zip or tar.gz (default: from LOCAL, else zip)")
	get.Flags().BoolVarP(&extract, "extract", "x", false, "unpack a directory into the local directory LOCAL instead of saving the archive")
	get.Flags().IntVar(&retries, "retries", 3, "resume a cut-off file download this many times before giving up")
	_ = get.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"zip", "tar.gz"}, cobra.ShellCompDirectiveNoFileComp))

	cat := &cobra.Command{Use: "cat WS:/FILE...", Short: "Print files", Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeRemote,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, arg := range args {
				c, ws, rp, err := a.remote(cmd.Context(), arg)
				if err != nil {
					return err
				}
				if rp.path == "/" {
					return fmt.Errorf("%s is a directory (use `berth files ls` or `berth files get`)", rp)
				}
				info, err := c.FileInfo(cmd.Context(), ws.ID, rp.path)
				if err != nil {
					return err
				}
				if info.Type == "directory" {
					return fmt.Errorf("%s is a directory (use `berth files ls` or `berth files get`)", rp)
				}
				resp, err := c.Download(cmd.Context(), ws.ID, rp.path, client.DownloadOptions{})
				if err != nil {
					return err
				}
				_, err = io.Copy(a.stdout, resp.Body)
				closeQuietly(resp.Body)
				if err != nil {
					return err
				}
			}
			return nil
		}}

	var parents bool
	mkdir := &cobra.Command{Use: "mkdir WS:/DIR...", Short: "Create directories", Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeRemote,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, arg := range args {
				c, ws, rp, err := a.remote(cmd.Context(), arg)
				if err != nil {
					return err
				}
				if rp.path == "/" {
					return fmt.Errorf("%s: the root exists", rp)
				}
				if parents {
					// Each missing level; levels that exist are fine.
					parts := strings.Split(strings.TrimPrefix(rp.path, "/"), "/")
					dir := "/"
					for _, p := range parts {
						_, err := c.CreateFile(cmd.Context(), ws.ID, dir, p, "directory", nil)
						if err != nil && client.ErrorCode(err) != "conflict" {
							return err
						}
						dir = path.Join(dir, p)
					}
					if err := a.mutated(map[string]any{"workspaceId": ws.ID, "path": rp.path}, rp.path, "directory %s created", rp); err != nil {
						return err
					}
					continue
				}
				e, err := c.CreateFile(cmd.Context(), ws.ID, path.Dir(rp.path), path.Base(rp.path), "directory", nil)
				if err != nil {
					return err
				}
				if err := a.mutated(e, e.ID, "directory %s:%s created", rp.ws, e.ID); err != nil {
					return err
				}
			}
			return nil
		}}
	mkdir.Flags().BoolVarP(&parents, "parents", "p", false, "create missing parents; no error if it exists")

	mv := &cobra.Command{Use: "mv WS:/SRC... WS:/DST", Short: "Move or rename entries within a workspace",
		Long: "Move entries into the directory DST, or rename/move a single entry to the path DST.",
		Args: cobra.MinimumNArgs(2), ValidArgsFunction: a.completeRemote,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.moveOrCopy(cmd.Context(), "move", args[:len(args)-1], args[len(args)-1], overwrite)
		}}
	cp := &cobra.Command{Use: "cp WS:/SRC... WS:/DST", Short: "Copy entries (directories recursively) within a workspace",
		Long: "Copy entries into the directory DST, or a single entry to the path DST (in another directory).",
		Args: cobra.MinimumNArgs(2), ValidArgsFunction: a.completeRemote,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.moveOrCopy(cmd.Context(), "copy", args[:len(args)-1], args[len(args)-1], overwrite)
		}}
	for _, cmd := range []*cobra.Command{put, mv, cp} {
		cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace entries that exist")
	}
	// put replaces files by default, like cp; --overwrite is kept for
	// symmetry but uploads always replace.
	_ = put.Flags().MarkHidden("overwrite")

	var recursive bool
	rm := &cobra.Command{Use: "rm WS:/PATH...", Short: "Delete files, and directories with -r", Args: cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeRemote,
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for _, arg := range args {
				if err := a.remove(cmd.Context(), arg, recursive); err != nil {
					errs = append(errs, err)
				}
			}
			return joinErrors(a, errs)
		}}
	rm.Flags().BoolVarP(&recursive, "recursive", "r", false, "delete directories with everything below them")

	watch := &cobra.Command{Use: "watch WS:/DIR", Short: "Print changes below a directory as they happen (until interrupted)",
		Long: "Print one line per change below a directory: create, write, remove, rename (old -> new), or\n" +
			"overflow (changes were lost: list again). -o json prints one JSON object per line.",
		Args: cobra.ExactArgs(1), ValidArgsFunction: a.completeRemote,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ws, rp, err := a.remote(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			err = c.WatchFiles(cmd.Context(), ws.ID, rp.path, func() {
				a.warnf("watching %s (interrupt to stop)\n", rp)
			}, func(e client.FileEvent) error {
				switch {
				case a.flags.output == "json":
					return writeJSONLine(a.stdout, e)
				case e.Type == "rename":
					return a.printf("%s\t%s -> %s\n", e.Type, e.OldPath, e.Path)
				}
				return a.printf("%s\t%s\n", e.Type, e.Path)
			})
			if err != nil && cmd.Context().Err() != nil {
				return nil // interrupted: the normal end
			}
			return err
		}}

	fc.AddCommand(ls, put, get, cat, mkdir, mv, cp, rm, watch)
	root.AddCommand(fc)
}

// remote parses a WS:/path argument and resolves its workspace.
func (a *app) remote(ctx context.Context, arg string) (*client.Client, *client.Workspace, remotePath, error) {
	rp, err := parseRemote(arg)
	if err != nil {
		return nil, nil, rp, err
	}
	c, ws, err := a.clientAndWorkspace(ctx, rp.ws)
	return c, ws, rp, err
}

// transfer moves or copies (op) the entry src into the directory dir.
func transfer(ctx context.Context, c *client.Client, op, ws, src, dir string, overwrite bool) (*client.FileEntry, error) {
	if op == "move" {
		return c.MoveFile(ctx, ws, src, dir, overwrite)
	}
	return c.CopyFile(ctx, ws, src, dir, overwrite)
}

func closeQuietly(c io.Closer) { _ = c.Close() } // a read body: nothing to flush

// remove deletes one entry; a directory only with recursive.
func (a *app) remove(ctx context.Context, arg string, recursive bool) error {
	c, ws, rp, err := a.remote(ctx, arg)
	if err != nil {
		return err
	}
	if rp.path == "/" {
		return fmt.Errorf("%s: refusing to delete a workspace's root (use `berth workspace delete`)", rp)
	}
	if !recursive {
		info, err := c.FileInfo(ctx, ws.ID, rp.path)
		if err != nil {
			return err
		}
		if info.Type == "directory" {
			return fmt.Errorf("%s is a directory: use rm -r", rp)
		}
	}
	if err := c.DeleteFile(ctx, ws.ID, rp.path); err != nil {
		return err
	}
	return a.mutated(map[string]any{"workspaceId": ws.ID, "path": rp.path, "deleted": true}, rp.path, "%s deleted", rp)
}

// moveOrCopy moves or copies (op) srcs to dst, all in one workspace. Into
// an existing directory (or a path written with a trailing slash) the
// entries keep their names; a single entry to another path takes its name.
func (a *app) moveOrCopy(ctx context.Context, op string, srcs []string, dstArg string, overwrite bool) error {
	c, ws, dst, err := a.remote(ctx, dstArg)
	if err != nil {
		return err
	}
	var paths []string
	for _, s := range srcs {
		rp, err := parseRemote(s)
		if err != nil {
			return err
		}
		sw, err := a.workspace(ctx, c, rp.ws)
		if err != nil {
			return err
		}
		if sw.ID != ws.ID {
			return fmt.Errorf("%s and %s are in different workspaces: download and put instead", rp, dst)
		}
		if rp.path == "/" {
			return fmt.Errorf("%s: cannot %s a workspace's root", rp, op)
		}
		paths = append(paths, rp.path)
	}
	verb := map[string]string{"move": "moved", "copy": "copied"}[op]
	intoDir := dst.dir
	if !intoDir {
		info, err := c.FileInfo(ctx, ws.ID, dst.path)
		switch {
		case err == nil:
			intoDir = info.Type == "directory"
		case client.ErrorCode(err) != "not_found":
			return err
		}
	}
	if !intoDir {
		if len(paths) > 1 {
			return fmt.Errorf("%s: not a directory (several entries go into a directory)", dst)
		}
		src := paths[0]
		parent, name := path.Dir(dst.path), path.Base(dst.path)
		var e *client.FileEntry
		switch {
		case path.Dir(src) == parent && op == "move":
			e, err = c.RenameFile(ctx, ws.ID, src, name, overwrite)
		case path.Dir(src) == parent:
			return fmt.Errorf("cannot copy %s to a new name in the same directory: copy it into another directory", src)
		case path.Base(src) == name:
			e, err = transfer(ctx, c, op, ws.ID, src, parent, overwrite)
		default:
			// Into the target's directory, then renamed: two steps.
			e, err = transfer(ctx, c, op, ws.ID, src, parent, overwrite)
			if err == nil {
				e, err = c.RenameFile(ctx, ws.ID, e.ID, name, overwrite)
			}
		}
		if err != nil {
			return err
		}
		return a.mutated(e, e.ID, "%s:%s %s to %s:%s", dst.ws, src, verb, dst.ws, e.ID)
	}
	if len(paths) == 1 {
		e, err := transfer(ctx, c, op, ws.ID, paths[0], dst.path, overwrite)
		if err != nil {
			return err
		}
		return a.mutated(e, e.ID, "%s:%s %s to %s:%s", dst.ws, paths[0], verb, dst.ws, e.ID)
	}
	res, err := c.BatchFiles(ctx, ws.ID, op, paths, dst.path, overwrite)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range res {
		if !r.OK {
			msg := "failed"
			if r.Error != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.ID, r.Error))
				continue
			}
			errs = append(errs, fmt.Errorf("%s: %s", r.ID, msg))
			continue
		}
		if a.flags.output == "" || a.flags.output == "table" || a.flags.output == "wide" {
			if err := a.mutated(r.Entry, r.Entry.ID, "%s:%s %s to %s:%s", dst.ws, r.ID, verb, dst.ws, r.Entry.ID); err != nil {
				return err
			}
		}
	}
	if a.flags.output == "json" || a.flags.output == "yaml" {
		if err := a.mutated(res, "", ""); err != nil {
			return err
		}
	}
	return joinErrors(a, errs)
}

// put uploads local files and directories into a workspace directory, in
// one streamed request: a single file as its raw bytes (PUT), several as
// one multipart body.
func (a *app) put(ctx context.Context, locals []string, dstArg string) error {
	if !isRemote(dstArg) {
		return fmt.Errorf("%q: the last argument is where to put the files, <workspace id or slug>:/dir/", dstArg)
	}
	c, ws, dst, err := a.remote(ctx, dstArg)
	if err != nil {
		return err
	}
	if len(locals) == 1 && locals[0] == "-" {
		// stdin, as the file the target names.
		if dst.dir {
			return fmt.Errorf("%s: put - needs the file's path, not a directory", dst)
		}
		e, err := c.PutFile(ctx, ws.ID, dst.path, a.stdin, -1)
		if err != nil {
			return err
		}
		return a.mutated(e, e.ID, "uploaded stdin to %s:%s (%s)", dst.ws, e.ID, bytesCell(e.Size))
	}
	type item struct {
		local, rel string
		size       int64
	}
	var items []item
	var emptyDirs []string
	for _, l := range locals {
		if isRemote(l) {
			return fmt.Errorf("%q: put uploads local files (to copy within a workspace, use `berth files cp`)", l)
		}
		st, err := os.Stat(l)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			items = append(items, item{l, filepath.Base(l), st.Size()})
			continue
		}
		base := filepath.Base(filepath.Clean(l))
		err = filepath.WalkDir(l, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(l, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(filepath.Join(base, rel))
			switch {
			case d.IsDir():
				ents, err := os.ReadDir(p)
				if err != nil {
					return err
				}
				if len(ents) == 0 {
					emptyDirs = append(emptyDirs, rel)
				}
			case d.Type().IsRegular():
				info, err := d.Info()
				if err != nil {
					return err
				}
				items = append(items, item{p, rel, info.Size()})
			default:
				a.warnf("berth: skipping %s: not a regular file\n", p)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	// One file to a path without a trailing slash that is not a directory:
	// the file takes that name.
	dir, rename := dst.path, ""
	if len(items) == 1 && len(emptyDirs) == 0 && !dst.dir {
		if _, err := os.Stat(locals[0]); err == nil && !isDir(locals[0]) {
			info, err := c.FileInfo(ctx, ws.ID, dst.path)
			switch {
			case err == nil && info.Type == "directory":
			case err == nil || client.ErrorCode(err) == "not_found":
				dir, rename = path.Dir(dst.path), path.Base(dst.path)
			default:
				return err
			}
		}
	}
	var total int64
	for _, it := range items {
		total += it.size
	}
	bar := a.newProgress(total, "upload")
	defer bar.Finish()
	var entries []client.FileEntry
	if len(items) > 0 {
		if len(items) == 1 && len(emptyDirs) == 0 {
			// One file: the raw upload (PUT of its bytes), no multipart.
			target := path.Join(dir, items[0].rel)
			if rename != "" {
				target = path.Join(dir, rename)
			}
			f, err := os.Open(items[0].local)
			if err != nil {
				return err
			}
			defer closeQuietly(f)
			e, err := c.PutFile(ctx, ws.ID, target, bar.Reader(f), items[0].size)
			if err != nil {
				return err
			}
			entries = append(entries, *e)
		} else {
			parts := make([]client.UploadPart, len(items))
			for i, it := range items {
				parts[i] = client.UploadPart{Name: it.rel, Body: bar.Reader(&lazyFile{path: it.local})}
			}
			es, err := c.Upload(ctx, ws.ID, dir, parts...)
			if err != nil {
				return err
			}
			entries = append(entries, es...)
		}
	}
	sort.Strings(emptyDirs)
	for _, d := range emptyDirs {
		// The parents come with the upload or an earlier empty dir; create
		// each level so that a tree of empty dirs arrives too.
		cur := dir
		for _, p := range strings.Split(d, "/") {
			_, err := c.CreateFile(ctx, ws.ID, cur, p, "directory", nil)
			if err != nil && client.ErrorCode(err) != "conflict" {
				return err
			}
			cur = path.Join(cur, p)
		}
	}
	bar.Finish()
	switch a.flags.output {
	case "json", "yaml":
		return a.mutated(entries, "", "")
	}
	if a.flags.quiet {
		for _, e := range entries {
			if err := a.printf("%s\n", e.ID); err != nil {
				return err
			}
		}
		return nil
	}
	if len(entries) == 1 && len(emptyDirs) == 0 {
		return a.printf("uploaded %s to %s:%s (%s)\n", locals[0], dst.ws, entries[0].ID, bytesCell(total))
	}
	return a.printf("uploaded %d files (%s) to %s:%s\n", len(entries), bytesCell(total), dst.ws, dir)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// lazyFile opens its file on the first read and closes it at EOF, so that
// an upload of many files holds one descriptor at a time.
type lazyFile struct {
	path string
	f    *os.File
	done bool
}

func (l *lazyFile) Read(b []byte) (int, error) {
	if l.done {
		return 0, io.EOF
	}
	if l.f == nil {
		f, err := os.Open(l.path)
		if err != nil {
			return 0, err
		}
		l.f = f
	}
	n, err := l.f.Read(b)
	if errors.Is(err, io.EOF) {
		l.done = true
		closeQuietly(l.f)
	}
	return n, err
}

// completeRemote completes "slug:" and then the directories and files of
// the path typed so far.
func (a *app) completeRemote(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if !strings.Contains(toComplete, ":") {
		ws, dir := a.completeWorkspaces(cmd, nil, toComplete)
		for i, w := range ws {
			slug, desc, _ := strings.Cut(w, "\t")
			ws[i] = slug + ":/\t" + desc
		}
		return ws, dir | cobra.ShellCompDirectiveNoSpace
	}
	rp, err := parseRemote(toComplete)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	dir := rp.path
	if !strings.HasSuffix(toComplete, "/") {
		dir = path.Dir(rp.path)
	}
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ws, err := a.workspace(cmd.Context(), c, rp.ws)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	es, _, err := c.ListFiles(cmd.Context(), ws.ID, dir, client.ListFilesOptions{Limit: 500})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, e := range es {
		v := rp.ws + ":" + e.ID
		if e.Type == "directory" {
			v += "/"
		}
		if strings.HasPrefix(v, toComplete) {
			out = append(out, v)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}
