package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/berth-dev/berth"
)

// Driver choices of --storage.
const (
	ChoiceAuto  = "auto"
	ChoiceDir   = "dir"
	ChoiceBtrfs = "btrfs"
)

// DefaultPoolSize is the size of a new btrfs pool file (--storage-pool-size).
const DefaultPoolSize = 50 << 30

// PoolFileName is the btrfs pool file under the data directory, made when
// the data directory is not on btrfs itself.
const PoolFileName = "storage-pool.btrfs"

// Config is how the server picks and opens its driver.
type Config struct {
	// Driver is "dir", "btrfs" or "auto" ("" is auto).
	Driver string
	// DataDir is the server's data directory; workspaces live in
	// DataDir/workspaces whatever the driver.
	DataDir string
	// PoolSize is the size of a new pool file (default DefaultPoolSize).
	PoolSize int64
	// WorkspacesDir, when set, holds the workspaces instead of
	// DataDir/workspaces: a directory shared by several servers (replicas),
	// kept by the dir driver (a btrfs pool is one host's loop mount).
	WorkspacesDir string
}

// Plan is what Open will do (or did): the driver and, for btrfs, where its
// pool is. Doctor shows it without opening anything.
type Plan struct {
	Driver string `json:"driver"`
	// Root is DataDir/workspaces, or WorkspacesDir.
	Root string `json:"root"`
	// PoolFile is the loop-mounted pool file, "" when the data directory is
	// on btrfs itself or the driver is dir.
	PoolFile string `json:"poolFile,omitempty"`
	// PoolSize is the size of PoolFile (existing) or of the one Open makes.
	PoolSize int64 `json:"poolSize,omitempty"`
	// PoolExists says PoolFile is already there.
	PoolExists bool `json:"poolExists,omitempty"`
	// Why is the reason for the choice, in words for the log.
	Why string `json:"why"`
}

// Decide picks the driver for cfg without changing anything on disk.
//
// auto is btrfs when the data directory is on btrfs (and its workspaces,
// if any, are subvolumes: plain directories of the dir driver cannot be
// given a qgroup) or when a pool file is already there (a server started
// with --storage btrfs before); otherwise dir. btrfs on a data directory
// that is not on btrfs uses a pool file.
func Decide(cfg Config) (Plan, error) {
	if cfg.DataDir == "" {
		return Plan{}, berth.Errorf(berth.Invalid, "storage: no data directory")
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return Plan{}, err
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.WorkspacesDir != "" {
		root, err := filepath.Abs(cfg.WorkspacesDir)
		if err != nil {
			return Plan{}, err
		}
		switch cfg.Driver {
		case "", ChoiceAuto, ChoiceDir:
			return Plan{Driver: ChoiceDir, Root: root, Why: "--workspaces-dir: a shared directory, kept by the dir driver"}, nil
		}
		return Plan{}, berth.Errorf(berth.Invalid, "--workspaces-dir takes --storage dir (or auto): a btrfs pool is one host's loop mount and cannot be shared")
	}
	p := Plan{Root: filepath.Join(dataDir, "workspaces")}
	pool := filepath.Join(dataDir, PoolFileName)
	poolInfo, perr := os.Stat(pool)
	poolExists := perr == nil
	if perr != nil && !errors.Is(perr, fs.ErrNotExist) {
		return Plan{}, perr
	}
	dataOnBtrfs, err := onBtrfs(existingParent(dataDir))
	if err != nil {
		return Plan{}, err
	}
	usePool := func(why string) Plan {
		p.Driver, p.PoolFile, p.PoolSize, p.PoolExists, p.Why = ChoiceBtrfs, pool, cfg.PoolSize, poolExists, why
		if poolExists {
			p.PoolSize = poolInfo.Size()
		}
		return p
	}
	switch cfg.Driver {
	case ChoiceDir:
		if poolExists {
			return Plan{}, berth.Errorf(berth.Invalid, "--storage dir, but %s holds a btrfs pool with this server's workspaces: start with --storage btrfs (or auto)", pool)
		}
		p.Driver, p.Why = ChoiceDir, "--storage dir"
		return p, nil
	case ChoiceBtrfs:
		if poolExists || !dataOnBtrfs {
			return usePool("--storage btrfs on a pool file (the data directory is not on btrfs)"), nil
		}
		if plain, err := plainDirs(p.Root); err != nil {
			return Plan{}, err
		} else if plain != "" {
			return Plan{}, berth.Errorf(berth.Invalid, "--storage btrfs: %s is a plain directory of the dir driver, not a subvolume (moving dir workspaces into btrfs is not built)", plain)
		}
		p.Driver, p.Why = ChoiceBtrfs, "--storage btrfs on the data directory's btrfs"
		return p, nil
	case "", ChoiceAuto:
		if poolExists {
			return usePool("auto: the data directory holds a btrfs pool file"), nil
		}
		if !dataOnBtrfs {
			p.Driver, p.Why = ChoiceDir, "auto: the data directory is not on btrfs"
			return p, nil
		}
		plain, err := plainDirs(p.Root)
		if err != nil {
			return Plan{}, err
		}
		if plain != "" {
			p.Driver, p.Why = ChoiceDir, "auto: the data directory is on btrfs but holds workspaces of the dir driver"
			return p, nil
		}
		p.Driver, p.Why = ChoiceBtrfs, "auto: the data directory is on btrfs"
		return p, nil
	}
	return Plan{}, berth.Errorf(berth.Invalid, "--storage must be dir, btrfs or auto, not %q", cfg.Driver)
}

// Open opens the driver Decide picks. A btrfs driver the host cannot run
// (no btrfs-progs, no loop devices, not root) is an Unavailable error that
// says what is missing; auto never fails that way for a data directory
// that is not on btrfs (it picks dir).
func Open(ctx context.Context, cfg Config) (Driver, Plan, error) {
	p, err := Decide(cfg)
	if err != nil {
		return nil, p, err
	}
	if p.Driver == ChoiceDir {
		if err := os.MkdirAll(p.Root, 0o700); err != nil {
			return nil, p, err
		}
		return NewDir(p.Root), p, nil
	}
	b, err := OpenBtrfs(ctx, BtrfsConfig{Root: p.Root, PoolFile: p.PoolFile, PoolSize: p.PoolSize})
	if err != nil {
		return nil, p, fmt.Errorf("storage (%s): %w", p.Why, err)
	}
	return b, p, nil
}

// existingParent is path or its nearest existing parent (a data directory
// that serve has not created yet lives on its parent's filesystem).
func existingParent(path string) string {
	for {
		if _, err := os.Stat(path); err == nil {
			return path
		}
		parent := filepath.Dir(path)
		if parent == path {
			return path
		}
		path = parent
	}
}

// btrfsSubvolumeIno is the inode number of every btrfs subvolume's root
// (BTRFS_FIRST_FREE_OBJECTID).
const btrfsSubvolumeIno = 256

// plainDirs returns the first workspace directory under root that is not a
// subvolume, "" when there is none (or no root yet).
func plainDirs(root string) (string, error) {
	ents, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if !e.IsDir() || ValidID(e.Name()) != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return "", err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Ino != btrfsSubvolumeIno {
			return filepath.Join(root, e.Name()), nil
		}
	}
	return "", nil
}
