package mdlinks_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/mdlinks"
)

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"Access, isolation and limits": "access-isolation-and-limits",
		"berth doctor":                 "berth-doctor",
		"Files in the data directory":  "files-in-the-data-directory",
		"What's new: v1.2 (beta)":      "whats-new-v12-beta",
		"snake_case and  two spaces":   "snake_case-and--two-spaces",
		"Über-Größe":                   "über-größe",
	} {
		if got := mdlinks.Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
}

// repo writes files (path → contents) under a temporary root.
func repo(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestGoodLinks(t *testing.T) {
	root := repo(t, map[string]string{
		"README.md": "# Top\n\nSee [docs](docs/README.md), [the api](docs/api.md#errors-and-codes), " +
			"[the dir](docs/), [here](#top), [again](#usage-1), ![img](docs/pic.png), " +
			"[allowed](https://example.org/x) and <https://example.org/y>.\n\n" +
			"## Usage\n\n## Usage\n\n```\n[not a link](nowhere.md)\n```\n\nand `[code](nowhere.md)`\n",
		"docs/README.md": "Back [up](../README.md#top).\n",
		"docs/api.md":    "# API\n\n## Errors and `codes`\n",
		"docs/pic.png":   "png",
	})
	c := &mdlinks.Checker{Root: root, AllowedHosts: map[string]bool{"example.org": true}}
	ps, err := c.Check([]string{"README.md", "docs/README.md"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		t.Errorf("good link reported: %s", p)
	}
}

// Every kind of broken link is reported, with its file and why.
func TestBrokenLinks(t *testing.T) {
	root := repo(t, map[string]string{
		"repo/README.md": "# Top\n\n" +
			"[missing](docs/gone.md)\n" +
			"[bad anchor](docs/api.md#nope)\n" +
			"[self anchor](#nothing)\n" +
			"[outside](../elsewhere/API.md)\n" +
			"[far outside](docs/../../x.md)\n" +
			"[web](https://elsewhere.example/a)\n" +
			"<http://elsewhere.example/b>\n" +
			"[mail](mailto:a@b.c)\n" +
			"[rooted](/docs/api.md)\n" +
			"[anchor on code](main.go#L1)\n",
		"repo/docs/api.md": "# API\n",
		"repo/main.go":     "package main\n",
		"shared/API.md":    "# exists, but outside the repository\n",
	})
	c := &mdlinks.Checker{Root: filepath.Join(root, "repo")}
	ps, err := c.Check([]string{"README.md"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"docs/gone.md":                "no such file",
		"docs/api.md#nope":            "no heading with anchor #nope",
		"#nothing":                    "no heading",
		"../elsewhere/API.md":         "leaves the repository",
		"docs/../../x.md":             "leaves the repository",
		"https://elsewhere.example/a": "not on the allow-list",
		"http://elsewhere.example/b":  "not on the allow-list",
		"mailto:a@b.c":                "scheme mailto",
		"/docs/api.md":                "root-relative",
		"main.go#L1":                  "not Markdown",
	}
	got := map[string]string{}
	for _, p := range ps {
		if p.File != "README.md" {
			t.Errorf("problem in %q, want README.md", p.File)
		}
		got[p.Target] = p.Reason
	}
	for target, reason := range want {
		if !strings.Contains(got[target], reason) {
			t.Errorf("link %q: reported %q, want a reason with %q", target, got[target], reason)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d problems, want %d: %v", len(got), len(want), ps)
	}
}
