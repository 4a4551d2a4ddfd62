package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workspace/storage"
)

// Free space below which a check warns, and below which it fails.
const (
	lowSpace  = 5 << 30
	tooLittle = 256 << 20
)

// Storage checks the data directory: writable (or creatable), free space,
// and what its filesystem allows.
func Storage(cfg Config) []Check {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return []Check{{Name: "data dir", Status: Fail, Message: err.Error()}}
	}
	// The directory, or the nearest parent that exists: serve creates the rest.
	at, missing := dir, false
	for {
		fi, err := os.Stat(at)
		if err == nil {
			if !fi.IsDir() {
				return []Check{{Name: "data dir", Status: Fail, Message: at + " is not a directory", Fix: "choose another --data-dir"}}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return []Check{{Name: "data dir", Status: Fail, Message: err.Error(), Fix: "choose another --data-dir, or fix its permissions"}}
		}
		missing = true
		parent := filepath.Dir(at)
		if parent == at {
			break
		}
		at = parent
	}
	out := []Check{writable(dir, at, missing)}
	var st unix.Statfs_t
	if err := unix.Statfs(at, &st); err != nil {
		return append(out, Check{Name: "free space", Status: Warn, Message: "statfs " + at + ": " + err.Error()})
	}
	out = append(out, freeSpace(st), filesystem(st), driver(cfg))
	return out
}

// driver says which workspace storage driver serve would pick and, for
// btrfs, where its pool is and whether this host can run it (what
// storage.Open would refuse at start).
func driver(cfg Config) Check {
	c := Check{Name: "storage driver"}
	p, err := storage.Decide(storage.Config{Driver: cfg.Storage, DataDir: cfg.DataDir, PoolSize: cfg.StoragePoolSize})
	if err != nil {
		c.Status, c.Message, c.Fix = Fail, berth.Message(err), "choose --storage dir, btrfs or auto"
		return c
	}
	if p.Driver == storage.ChoiceDir {
		c.Status, c.Message = OK, "dir ("+p.Why+"): quotas bind API writes only; no snapshots or clones"
		return c
	}
	c.Message = "btrfs (" + p.Why + "): kernel-enforced quotas, snapshots and clones"
	if p.PoolFile != "" {
		state := "made at the first start"
		if p.PoolExists {
			state = "exists"
		}
		c.Message += fmt.Sprintf("; pool file %s, %s (%s)", p.PoolFile, humanize.IBytes(uint64(p.PoolSize)), state)
	}
	var missing []string
	for _, tool := range []string{"btrfs", "mkfs.btrfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	switch {
	case len(missing) > 0:
		c.Status, c.Message = Fail, c.Message+"; but "+strings.Join(missing, " and ")+" not on PATH"
		c.Fix = "apt-get install btrfs-progs, or --storage dir"
	case os.Geteuid() != 0:
		c.Status, c.Message = Fail, c.Message+"; but berth is not root (quotas, subvolume deletion and mounting need CAP_SYS_ADMIN)"
		c.Fix = "run berth serve as root, or --storage dir"
	default:
		c.Status = OK
	}
	return c
}

func writable(dir, at string, missing bool) Check {
	c := Check{Name: "data dir"}
	f, err := os.CreateTemp(at, ".berth-doctor-*")
	if err != nil {
		c.Status, c.Message = Fail, fmt.Sprintf("%s is not writable: %v", at, err)
		c.Fix = "choose another --data-dir, or run as a user who may write there"
		return c
	}
	name := f.Name()
	err = errors.Join(f.Close(), os.Remove(name))
	if err != nil {
		c.Status, c.Message = Warn, fmt.Sprintf("%s is writable, but the check's file %s stayed: %v", at, name, err)
		return c
	}
	c.Status, c.Message = OK, dir+" is writable"
	if missing {
		c.Message = fmt.Sprintf("%s does not exist yet; %s is writable, berth serve creates it", dir, at)
	}
	return c
}

func freeSpace(st unix.Statfs_t) Check {
	free := st.Bavail * uint64(st.Bsize)
	total := st.Blocks * uint64(st.Bsize)
	msg := fmt.Sprintf("%s free of %s", humanize.IBytes(free), humanize.IBytes(total))
	switch {
	case free < tooLittle:
		return Check{Name: "free space", Status: Fail, Message: msg, Fix: "free space, or choose a --data-dir on a larger filesystem"}
	case free < lowSpace:
		return Check{Name: "free space", Status: Warn, Message: msg + " (workspaces and uploads need room)", Fix: "free space, or choose a --data-dir on a larger filesystem"}
	}
	return Check{Name: "free space", Status: OK, Message: msg}
}

// Filesystem magic numbers (statfs(2)).
var fsNames = map[int64]string{
	0xEF53: "ext4", 0x58465342: "xfs", 0x9123683E: "btrfs", 0x01021994: "tmpfs",
	0x794C7630: "overlayfs", 0x2FC12FC1: "zfs", 0x6969: "nfs", 0xFF534D42: "cifs",
	0xFE534D42: "smb2", 0x65735546: "fuse", 0x858458F6: "ramfs", 0x73717368: "squashfs",
}

// filesystem says what the data directory's filesystem allows: nested
// sandbox mounts are pinned with immutable flags (ext4, btrfs, xfs, as
// root); watches rely on inotify, which sees only this host's changes.
func filesystem(st unix.Statfs_t) Check {
	c := Check{Name: "filesystem"}
	name, known := fsNames[int64(st.Type)] //nolint:unconvert // the field's type differs by architecture
	if !known {
		name = fmt.Sprintf("type 0x%X", st.Type)
	}
	switch name {
	case "ext4", "xfs", "btrfs":
		c.Status, c.Message = OK, name+": immutable flags for nested sandbox mounts"
		if os.Geteuid() != 0 {
			c.Status = Warn
			c.Message += ", but berth is not root: nested mounts are refused"
			c.Fix = "run berth serve as root to allow nested mounts"
		}
	case "nfs", "cifs", "smb2", "fuse":
		c.Status = Warn
		c.Message = name + ": file watches miss changes made on other hosts, and nested sandbox mounts are refused"
		c.Fix = "put --data-dir on a local ext4, xfs or btrfs filesystem"
	case "tmpfs", "ramfs":
		c.Status = Warn
		c.Message = name + ": workspaces are lost at reboot, and nested sandbox mounts are refused"
		c.Fix = "put --data-dir on a disk (ext4, xfs or btrfs)"
	default:
		c.Status = Warn
		c.Message = name + ": no immutable flags, so nested sandbox mounts are refused"
		c.Fix = "put --data-dir on ext4, xfs or btrfs for nested mounts"
	}
	return c
}
