package agent

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"

	"github.com/berth-dev/berth/db"
)

// threadDir is where thread files live, relative to a workspace's root.
const threadDir = ".berth/threads"

// writeThreadFile mirrors a thread's events (but those of skipRun, the run
// about to start) as JSONL into workspace wsID at .berth/threads/<id>.jsonl.
//
// The workspace is writable by sandboxes, so anything may wait there: a
// symlink at .berth or .berth/threads, a FIFO or a link at the file's name.
// Every step goes through an os.Root on the workspace directory (nothing
// resolves outside it); a .berth or threads entry that is not a real
// directory is replaced by one; the file is written under a fresh name
// (O_EXCL) and renamed over the old, which replaces a link rather than
// following it.
func (s *Service) writeThreadFile(ctx context.Context, wsID, threadID, skipRun string) error {
	root, err := os.OpenRoot(s.ws.Dir(wsID))
	if err != nil {
		return err
	}
	defer root.Close()
	for _, d := range []string{".berth", threadDir} {
		if err := ensureDir(root, d); err != nil {
			return err
		}
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(threadDir, "."+threadID+"."+hex.EncodeToString(rnd[:])+".tmp")
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			root.Remove(tmp)
		}
	}()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
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
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := root.Rename(tmp, path.Join(threadDir, threadID+".jsonl")); err != nil {
		return err
	}
	committed = true
	_, err = s.db.ExecContext(ctx, s.db.Rebind(`UPDATE threads SET file_workspace_id = ? WHERE id = ?`), wsID, threadID)
	return db.Err(err)
}

// ensureDir makes name a real directory inside root, replacing whatever
// else (symlink, file, FIFO) a sandbox may have put there.
func ensureDir(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.IsDir():
		return nil
	default:
		if err := root.Remove(name); err != nil {
			return err
		}
	}
	if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
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
	defer root.Close()
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
