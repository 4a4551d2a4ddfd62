// Package mdlinks checks the links of Markdown files in a repository: a
// relative link must name a file or directory inside the repository, an
// #anchor must name a heading of the target file (as GitHub derives it), and
// an absolute link may only go to an allowed host. The docs test runs it on
// the README and docs/, so that no link of a clone is broken or points out.
package mdlinks

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/text"
)

// Problem is a broken link: where it is and what is wrong.
type Problem struct {
	File   string // relative to the root
	Target string
	Reason string
}

func (p Problem) String() string { return fmt.Sprintf("%s: link %q: %s", p.File, p.Target, p.Reason) }

// Checker checks files under Root.
type Checker struct {
	Root string
	// AllowedHosts may be linked with http(s); every other absolute link
	// is a problem.
	AllowedHosts map[string]bool

	anchors map[string]map[string]bool // file → its heading anchors
}

var md = goldmark.New(goldmark.WithExtensions(extension.GFM))

// Check reports every broken link of files (paths relative to Root).
func (c *Checker) Check(files []string) ([]Problem, error) {
	var out []Problem
	for _, f := range files {
		ps, err := c.checkFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	return out, nil
}

func (c *Checker) checkFile(file string) ([]Problem, error) {
	src, err := os.ReadFile(filepath.Join(c.Root, file))
	if err != nil {
		return nil, err
	}
	doc := md.Parser().Parse(text.NewReader(src))
	var out []Problem
	err = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		var dest string
		switch l := n.(type) {
		case *ast.Link:
			dest = string(l.Destination)
		case *ast.Image:
			dest = string(l.Destination)
		case *ast.AutoLink:
			dest = string(l.URL(src))
		default:
			return ast.WalkContinue, nil
		}
		if reason := c.checkLink(file, dest); reason != "" {
			out = append(out, Problem{File: file, Target: dest, Reason: reason})
		}
		return ast.WalkContinue, nil
	})
	return out, err
}

// checkLink says what is wrong with dest, a link in file, or "".
func (c *Checker) checkLink(file, dest string) string {
	u, err := url.Parse(dest)
	if err != nil {
		return "not a valid URL: " + err.Error()
	}
	switch {
	case u.Scheme == "http" || u.Scheme == "https":
		if !c.AllowedHosts[u.Host] {
			return "absolute link to " + u.Host + ", which is not on the allow-list: link inside the repository instead"
		}
		return ""
	case u.Scheme != "" || u.Host != "":
		return "absolute link with scheme " + u.Scheme + ": link inside the repository instead"
	}
	target := file
	if u.Path != "" {
		if strings.HasPrefix(u.Path, "/") {
			return "root-relative path: GitHub and clones resolve it differently; use a path relative to " + file
		}
		target = filepath.Join(filepath.Dir(file), filepath.FromSlash(u.Path))
		if target == ".." || strings.HasPrefix(target, ".."+string(filepath.Separator)) {
			return "leaves the repository"
		}
		fi, err := os.Stat(filepath.Join(c.Root, target))
		if err != nil {
			return "no such file in the repository: " + filepath.ToSlash(target)
		}
		if fi.IsDir() && u.Fragment != "" {
			return "an anchor on a directory"
		}
	}
	if u.Fragment == "" {
		return ""
	}
	if !strings.HasSuffix(target, ".md") {
		return "an anchor on a file that is not Markdown"
	}
	anchors, err := c.anchorsOf(target)
	if err != nil {
		return err.Error()
	}
	if !anchors[u.Fragment] {
		return "no heading with anchor #" + u.Fragment + " in " + filepath.ToSlash(target)
	}
	return ""
}

// anchorsOf returns the heading anchors of a Markdown file.
func (c *Checker) anchorsOf(file string) (map[string]bool, error) {
	if a, ok := c.anchors[file]; ok {
		return a, nil
	}
	src, err := os.ReadFile(filepath.Join(c.Root, file))
	if err != nil {
		return nil, err
	}
	doc := md.Parser().Parse(text.NewReader(src))
	anchors := map[string]bool{}
	seen := map[string]int{}
	err = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		h, ok := n.(*ast.Heading)
		if !entering || !ok {
			return ast.WalkContinue, nil
		}
		slug := Slug(plainText(h, src))
		// GitHub numbers repeated headings: x, x-1, x-2, ...
		if k := seen[slug]; k > 0 {
			anchors[fmt.Sprintf("%s-%d", slug, k)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
		return ast.WalkSkipChildren, nil
	})
	if err != nil {
		return nil, err
	}
	if c.anchors == nil {
		c.anchors = map[string]map[string]bool{}
	}
	c.anchors[file] = anchors
	return anchors, nil
}

// plainText is a heading's text as rendered: text and code spans, without
// the markup.
func plainText(n ast.Node, src []byte) string {
	var b strings.Builder
	_ = ast.Walk(n, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch t := n.(type) {
		case *ast.Text:
			b.Write(t.Segment.Value(src))
		case *ast.String:
			b.Write(t.Value)
		}
		return ast.WalkContinue, nil
	}) // the walker never fails
	return b.String()
}

// Slug is GitHub's anchor for a heading's text: lower case, punctuation
// other than '-' and '_' dropped, each space a '-'.
func Slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
