package main

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress is a progress bar on stderr, drawn only when stderr is a
// terminal: scripts and logs get no control characters. A nil *progress
// (and the one made for a non-terminal) does nothing, so callers never check.
type progress struct {
	bar *progressbar.ProgressBar
}

// newProgress starts a bar for total bytes (-1: unknown, a spinner with a
// count) described as what ("upload README.md").
func (a *app) newProgress(total int64, what string) *progress {
	if !a.stderrTTY || a.flags.quiet {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetPredictTime(true),
	)}
}

// Add counts n more bytes done.
func (p *progress) Add(n int64) {
	if p != nil && p.bar != nil {
		_ = p.bar.Add64(n) // drawing to stderr: nothing to do if it fails
	}
}

// Set says where the work starts (a resumed download's first byte).
func (p *progress) Set(n int64) {
	if p != nil && p.bar != nil {
		_ = p.bar.Set64(n)
	}
}

// Describe changes the bar's label (the file being uploaded).
func (p *progress) Describe(what string) {
	if p != nil && p.bar != nil {
		p.bar.Describe(what)
	}
}

// Finish clears the bar.
func (p *progress) Finish() {
	if p != nil && p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Exit()
	}
}

// Reader counts what is read through r.
func (p *progress) Reader(r io.Reader) io.Reader {
	if p == nil || p.bar == nil {
		return r
	}
	return readCounter{r, p}
}

// Writer counts what is written through w.
func (p *progress) Writer(w io.Writer) io.Writer {
	if p == nil || p.bar == nil {
		return w
	}
	return writeCounter{w, p}
}

type readCounter struct {
	r io.Reader
	p *progress
}

func (c readCounter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.Add(int64(n))
	return n, err
}

type writeCounter struct {
	w io.Writer
	p *progress
}

func (c writeCounter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.p.Add(int64(n))
	return n, err
}
