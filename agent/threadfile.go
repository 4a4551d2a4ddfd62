package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/berth-dev/berth/sandbox"
)

// threadDir is where earlier versions of berth kept thread files, relative
// to the first mounted workspace's root; removeThreadFile still cleans them
// up when their thread is deleted.
const threadDir = ".berth/threads"

// threadFileScript runs in the sandbox: it makes a fresh private directory
// in the sandbox's own /tmp (mktemp: never an existing entry, so nothing
// there is followed or replaced), writes stdin to <threadId>.jsonl in it
// and prints the file's path.
const threadFileScript = `set -e
umask 077
d=$(mktemp -d /tmp/berth-thread.XXXXXXXX)
cat > "$d/$1.jsonl"
printf '%s' "$d/$1.jsonl"`

// threadFileTimeout bounds writing (and removing) a thread file.
const threadFileTimeout = time.Minute

// writeThreadFile writes a thread's events (but those of skipRun, the run
// about to start) as JSONL into sandbox sb's own filesystem and returns the
// file's path there.
//
// The file goes into the sandbox through an exec, never into a workspace:
// the exec has exactly the sandbox's own rights, so it cannot write a
// read-only mount or anything else the run's owner could not write, and
// workspace contents (a user's .berth, symlinks a sandbox left) are never
// touched. It also works for sandboxes without any mount. An image without
// /bin/sh, mktemp or a writable /tmp gets an error; the run goes on without
// a thread file.
func (s *Service) writeThreadFile(ctx context.Context, sb *sandbox.Sandbox, threadID, skipRun string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, threadFileTimeout)
	defer cancel()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(s.encodeThread(ctx, pw, threadID, skipRun))
	}()
	// Closing the read end stops the encoder if the exec ended early;
	// PipeReader.Close always returns nil.
	defer func() { _ = pr.Close() }()
	var stdout, stderr bytes.Buffer
	req := sandbox.ExecRequest{Argv: []string{"/bin/sh", "-c", threadFileScript, "berth-thread", threadID},
		Timeout: threadFileTimeout, Cwd: "/", Stdin: pr}
	res, err := s.sbx.ExecIn(ctx, sb, req, &limitedBuffer{b: &stdout, n: 4096}, &limitedBuffer{b: &stderr, n: 4096})
	switch {
	case err != nil:
		return "", err
	case res.TimedOut:
		return "", errors.New("writing the thread file timed out")
	case res.ExitCode != 0:
		return "", fmt.Errorf("writing the thread file exited with %d: %s", res.ExitCode, strings.TrimSpace(stderr.String()))
	}
	p := stdout.String()
	if !strings.HasPrefix(p, "/tmp/berth-thread.") || !strings.HasSuffix(p, "/"+threadID+".jsonl") {
		return "", fmt.Errorf("writing the thread file printed %q, not its path", p)
	}
	return p, nil
}

// encodeThread writes a thread's events but skipRun's as JSONL to w.
func (s *Service) encodeThread(ctx context.Context, w io.Writer, threadID, skipRun string) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	var after int64
	for {
		evs, err := s.events(ctx, threadID, "", after, 1000)
		if err != nil {
			return err
		}
		for _, e := range evs {
			after = e.Seq
			if e.RunID == skipRun {
				continue
			}
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		if len(evs) < 1000 {
			break
		}
	}
	return bw.Flush()
}

// removeThreadDir removes the directory writeThreadFile made for file, in
// a sandbox that lives on after the run (in_sandbox agents).
func (s *Service) removeThreadDir(ctx context.Context, sb *sandbox.Sandbox, file string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), threadFileTimeout)
	defer cancel()
	var stderr bytes.Buffer
	req := sandbox.ExecRequest{Argv: []string{"rm", "-rf", "--", path.Dir(file)}, Timeout: threadFileTimeout, Cwd: "/"}
	res, err := s.sbx.ExecIn(ctx, sb, req, io.Discard, &limitedBuffer{b: &stderr, n: 4096})
	if err == nil && (res.TimedOut || res.ExitCode != 0) {
		err = fmt.Errorf("rm exited with %d (timed out: %v): %s", res.ExitCode, res.TimedOut, strings.TrimSpace(stderr.String()))
	}
	return err
}

// limitedBuffer keeps the first n bytes written and discards the rest.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// removeThreadFile deletes a thread's file from workspace wsID, if there.
func (s *Service) removeThreadFile(wsID, threadID string) error {
	root, err := os.OpenRoot(s.ws.Dir(wsID))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	// A directory handle: closing it has nothing to flush, and the removal
	// below has already reported its own outcome.
	defer func() { _ = root.Close() }()
	for _, d := range []string{".berth", threadDir} {
		if fi, err := root.Lstat(d); err != nil || !fi.IsDir() {
			return nil // nothing of ours there
		}
	}
	if err := root.Remove(path.Join(threadDir, threadID+".jsonl")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
