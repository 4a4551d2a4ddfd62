// Package docs holds berth's documentation; its test checks the links of
// the README and of every page here.
package docs_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/mdlinks"
)

// allowedHosts may be linked from the docs. None yet: the docs describe
// this repository, and a clone must read complete without the network.
var allowedHosts = map[string]bool{}

// Every link in README.md and docs/**/*.md resolves inside the repository,
// anchors included.
func TestLinks(t *testing.T) {
	root := ".."
	files := []string{"README.md"}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, filepath.Join("docs", p))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"docs/README.md", "docs/api.md", "docs/configuration.md", "docs/cli.md"} {
		found := false
		for _, f := range files {
			found = found || filepath.ToSlash(f) == want
		}
		if !found {
			t.Errorf("%s is missing", want)
		}
	}
	c := &mdlinks.Checker{Root: root, AllowedHosts: allowedHosts}
	problems, err := c.Check(files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}
