package storage

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth"
)

// The driver's per-workspace operations (create, delete, snapshot, clone,
// quota limit, usage) are btrfs ioctls issued directly (btrfs_ioctl.go):
// a btrfs-progs process costs several ms per call, which Usage (read on
// every workspace listing, goal under 1 ms) cannot afford and snapshots
// and clones need not pay. Pool setup (mkfs.btrfs, mount, quota enable,
// qgroup clear-stale) still runs the commands: it happens once per start,
// and the commands are what an operator would type to inspect or repair
// the pool. Usage falls back to `btrfs qgroup show` if the ioctl read
// fails (logged), so that an unexpected kernel answer costs speed, not
// the feature.

// btrfsMagic is BTRFS_SUPER_MAGIC, statfs' f_type on btrfs.
const btrfsMagic = 0x9123683E

// snapshotsDir, under the pool root, holds each workspace's snapshots as
// <id>/<snapID>. It must be on the pool (a snapshot is a subvolume of the
// same filesystem) and its name starts with a dot so that it can never be a
// workspace id (ValidID).
const snapshotsDir = ".snapshots"

// restorePrefix names Restore's temporary subvolumes in the pool root.
const restorePrefix = ".restore-"

// BtrfsConfig configures the btrfs driver.
type BtrfsConfig struct {
	// Root holds the workspace subvolumes (<data-dir>/workspaces). Without
	// PoolFile it must already be on btrfs (the data dir is on btrfs).
	Root string
	// PoolFile, when set, is a btrfs image file (under the data dir) that
	// the driver loop-mounts at Root, creating it first (sparse, PoolSize
	// bytes, mkfs.btrfs) when it does not exist.
	PoolFile string
	// PoolSize is the size of a new PoolFile in bytes (an existing file
	// keeps its size: growing a pool is not built).
	PoolSize int64
	// Log receives what the driver does not return (an ioctl usage read
	// that failed and fell back to the btrfs command); nil is
	// slog.Default().
	Log *slog.Logger
}

// Btrfs is the "btrfs" driver: each workspace a subvolume of one btrfs
// pool, its snapshots read-only subvolume snapshots under
// Root/.snapshots/<id>/, a clone a writable snapshot.
//
// Each workspace owns a level-1 qgroup, the workspace group, whose members
// are the level-0 qgroups of its live subvolume and of all its snapshots.
// Its id is 1/<id of the workspace's first live subvolume> (made by Create
// or Clone); after a restore the live subvolume has a new id, so the group
// is found from the live subvolume's qgroup relation, which is on disk and
// survives restarts. The quota is a limit on the group: the kernel counts
// an extent shared by the live tree and snapshots once, counts what only
// snapshots still hold against the workspace, and answers EDQUOT to any
// writer once the group's referenced bytes reach the limit. Usage is the
// group's referenced bytes.
type Btrfs struct {
	cfg     BtrfsConfig
	mounted bool   // Open mounted PoolFile at Root; Close unmounts it
	sysfs   string // /sys/fs/btrfs/<uuid> of the pool
	// mu serializes the changes of qgroup membership (create, snapshot,
	// restore, clone) and the rescans they may need.
	mu sync.Mutex
}

// OpenBtrfs checks that the host can run the driver and readies the pool:
// with a PoolFile it creates the file if needed and mounts it at Root (as at
// every start: the mount does not survive a reboot), then enables quotas.
// Errors say what the host lacks (Unavailable).
func OpenBtrfs(ctx context.Context, cfg BtrfsConfig) (*Btrfs, error) {
	if cfg.Root == "" {
		return nil, berth.Errorf(berth.Invalid, "btrfs storage: no pool root")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	cfg.Root = root
	if _, err := exec.LookPath("btrfs"); err != nil {
		return nil, berth.Errorf(berth.Unavailable, "btrfs storage needs btrfs-progs: the btrfs command is not on PATH (apt-get install btrfs-progs)")
	}
	if os.Geteuid() != 0 {
		// Quota enable, qgroup limits, subvolume deletion and mounting
		// all need CAP_SYS_ADMIN.
		return nil, berth.Errorf(berth.Unavailable, "btrfs storage needs root (CAP_SYS_ADMIN) for quotas, subvolume deletion and mounting")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	b := &Btrfs{cfg: cfg}
	if cfg.PoolFile != "" {
		if err := b.mountPool(ctx); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, err
	}
	ok, err := onBtrfs(cfg.Root)
	if err != nil {
		return nil, b.closeAfter(ctx, err)
	}
	if !ok {
		return nil, b.closeAfter(ctx, berth.Errorf(berth.Unavailable,
			"btrfs storage: %s is not on btrfs (use a data dir on btrfs, or a pool file)", cfg.Root))
	}
	// Enabling quotas on a filesystem that has them is a no-op; on a new
	// pool it starts a rescan of an empty tree, which is instant.
	if _, err := btrfs(ctx, "quota", "enable", cfg.Root); err != nil {
		return nil, b.closeAfter(ctx, berth.Errorf(berth.Unavailable, "btrfs storage: enable quotas on %s: %v", cfg.Root, err))
	}
	if err := os.MkdirAll(filepath.Join(cfg.Root, snapshotsDir), 0o700); err != nil {
		return nil, b.closeAfter(ctx, err)
	}
	// A restore interrupted by a crash leaves its temporary subvolume
	// (either the new tree before the swap or the old one after it): the
	// live tree is whole either way, so the leftover goes.
	stale, err := filepath.Glob(filepath.Join(cfg.Root, restorePrefix+"*"))
	if err != nil {
		return nil, b.closeAfter(ctx, err)
	}
	for _, p := range stale {
		if err := deleteSubvolume(ctx, p); err != nil {
			return nil, b.closeAfter(ctx, fmt.Errorf("remove the leftover of an interrupted restore: %w", err))
		}
	}
	if err := b.initQgroups(ctx); err != nil {
		return nil, b.closeAfter(ctx, err)
	}
	// Qgroups of subvolumes deleted while still being cleaned up could not
	// be destroyed then (deleteSubvolume); most are clean by now. Best
	// effort: clear-stale fails on any still busy, and a stale qgroup holds
	// nothing (subvolume ids are never reused, so it cannot be inherited).
	_, _ = btrfs(ctx, "qgroup", "clear-stale", cfg.Root)
	if err := b.dropEmptyGroups(); err != nil {
		cfg.Log.WarnContext(ctx, "btrfs storage: removing the qgroups of deleted workspaces", "err", err)
	}
	return b, nil
}

func (b *Btrfs) closeAfter(ctx context.Context, err error) error {
	return errors.Join(err, b.Close(ctx))
}

// mountPool creates PoolFile if missing and loop-mounts it at Root unless
// something is mounted there already (a server restarted without a reboot).
func (b *Btrfs) mountPool(ctx context.Context) error {
	pool, root := b.cfg.PoolFile, b.cfg.Root
	if _, err := os.Stat(pool); errors.Is(err, fs.ErrNotExist) {
		if err := createPool(ctx, pool, b.cfg.PoolSize); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	mp, err := isMountPoint(root)
	if err != nil || mp {
		return err
	}
	// Mounting over a directory that holds workspaces would hide them:
	// moving dir workspaces into a pool is not built, so refuse.
	ents, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return berth.Errorf(berth.Unavailable, "btrfs storage: %s already holds %d entries (workspaces of the dir driver?); the pool would hide them", root, len(ents))
	}
	// mount -o loop finds a free loop device and sets it to detach itself
	// (LO_FLAGS_AUTOCLEAR) when the filesystem is unmounted, so Close
	// needs no losetup -d.
	if out, err := exec.CommandContext(ctx, "mount", "-t", "btrfs", "-o", "loop", pool, root).CombinedOutput(); err != nil {
		return berth.Errorf(berth.Unavailable, "btrfs storage: loop-mount %s at %s (are loop devices available? is this root in the host's namespace?): %v: %s",
			pool, root, err, strings.TrimSpace(string(out)))
	}
	b.mounted = true
	return nil
}

func createPool(ctx context.Context, pool string, size int64) error {
	if size < 128<<20 {
		// mkfs.btrfs refuses less than ~110 MiB with default options.
		return berth.Errorf(berth.Invalid, "btrfs storage: pool size %d bytes is too small (minimum 128 MiB)", size)
	}
	if _, err := exec.LookPath("mkfs.btrfs"); err != nil {
		return berth.Errorf(berth.Unavailable, "btrfs storage needs btrfs-progs: mkfs.btrfs is not on PATH")
	}
	if err := os.MkdirAll(filepath.Dir(pool), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(pool, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// Sparse: the pool file takes host space only as workspaces fill it.
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		var out []byte
		if out, err = exec.CommandContext(ctx, "mkfs.btrfs", "-q", pool).CombinedOutput(); err != nil {
			err = fmt.Errorf("mkfs.btrfs %s: %w: %s", pool, err, strings.TrimSpace(string(out)))
		}
	}
	if err != nil {
		return errors.Join(err, os.Remove(pool))
	}
	return nil
}

func onBtrfs(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint32(st.Type) == btrfsMagic, nil
}

// isMountPoint reports whether path is a mount point in this mount
// namespace (/proc/self/mountinfo's fifth field, octal-escaped).
func isMountPoint(path string) (bool, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 4 && unescapeMount(f[4]) == path {
			return true, nil
		}
	}
	return false, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// btrfs runs the btrfs command; an error carries its stderr.
func btrfs(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "btrfs", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C") // parsable output
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("btrfs %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (b *Btrfs) Name() string { return "btrfs" }

func (b *Btrfs) Caps() Caps {
	return Caps{KernelQuota: true, ExactUsage: true, Snapshots: true, InstantSnapshots: true, Clone: true}
}

func (b *Btrfs) Path(id string) string { return filepath.Join(b.cfg.Root, id) }

func (b *Btrfs) snapDir(id string) string { return filepath.Join(b.cfg.Root, snapshotsDir, id) }

// SnapshotPath is the read-only tree of one snapshot.
func (b *Btrfs) SnapshotPath(id, snapID string) string {
	return filepath.Join(b.snapDir(id), snapID)
}

// exists reports whether path exists, NotFound (what) when it does not.
func exists(path, what string) error {
	if _, err := os.Lstat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return berth.Errorf(berth.NotFound, "%s not found", what)
		}
		return err
	}
	return nil
}

func absent(path, what string) error {
	err := exists(path, what)
	switch {
	case err == nil:
		return berth.Errorf(berth.Conflict, "%s already exists", what)
	case berth.IsKind(err, berth.NotFound):
		return nil
	}
	return err
}

func (b *Btrfs) Create(ctx context.Context, id string) error {
	if err := ValidID(id); err != nil {
		return err
	}
	if err := absent(b.Path(id), "workspace storage "+id); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sub, err := ioctlSubvolCreate(b.Path(id))
	if err != nil {
		return err
	}
	// An empty subvolume's bytes are all its own: assigning it keeps the
	// numbers consistent, no rescan.
	if err := b.newGroup(b.Path(id), sub); err != nil {
		return errors.Join(err, deleteSubvolume(ctx, b.Path(id)))
	}
	return nil
}

// newGroup creates the workspace group 1/sub for the live subvolume sub at
// path and makes the subvolume's qgroup its member.
func (b *Btrfs) newGroup(path string, sub uint64) error {
	fd, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd) //nolint:errcheck // read-only directory fd
	g := level1 | sub
	if err := qgroupCreate(fd, g); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return qgroupAssign(fd, sub, g)
}

// group returns the workspace group of the live subvolume at path (see
// Btrfs) and the subvolume's id.
func group(path string) (grp, sub uint64, err error) {
	fd, err := openDir(path)
	if err != nil {
		return 0, 0, err
	}
	defer unix.Close(fd) //nolint:errcheck // read-only directory fd
	if sub, err = subvolRootID(fd); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	if grp, err = qgroupParent(fd, sub); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	if grp == 0 {
		return 0, 0, berth.Errorf(berth.Internal, "btrfs storage: %s (subvolume %d) is in no workspace qgroup", path, sub)
	}
	return grp, sub, nil
}

// rescanIfInconsistent rescans the pool's quota when the kernel marked it
// inconsistent, and waits for the rescan. The kernel does so when a qgroup
// joins a group while sharing extents outside it: a clone (it shares every
// extent with its origin), a snapshot or restore of a workspace that
// shares extents with a clone, and the migration at Open. Until the rescan
// ends the group's numbers, and so the limit, are approximate. A rescan
// reads the pool's extent tree: its cost grows with the pool, not with the
// workspace (the clone benchmark includes it).
func (b *Btrfs) rescanIfInconsistent(ctx context.Context) error {
	if !quotaInconsistent(b.sysfs) {
		return nil
	}
	start := time.Now()
	if _, err := btrfs(ctx, "quota", "rescan", "-w", b.cfg.Root); err != nil {
		return fmt.Errorf("btrfs storage: rescan the quota: %w", err)
	}
	b.cfg.Log.DebugContext(ctx, "btrfs storage: quota rescanned", "took", time.Since(start))
	return nil
}

// initQgroups finds the pool's sysfs directory and gives every workspace
// made before workspace groups existed (its live subvolume in no level-1
// qgroup) its group: 1/<live subvolume id>, with the live subvolume and
// its snapshots as members, and the limit moved from the live subvolume's
// qgroup to the group. Assigning subvolumes that share extents makes the
// quota inconsistent: one rescan at the end fixes it.
func (b *Btrfs) initQgroups(ctx context.Context) error {
	fd, err := openDir(b.cfg.Root)
	if err != nil {
		return err
	}
	defer unix.Close(fd) //nolint:errcheck // read-only directory fd
	uuid, err := fsID(fd)
	if err != nil {
		return err
	}
	b.sysfs = filepath.Join("/sys/fs/btrfs", uuid)
	ents, err := os.ReadDir(b.cfg.Root)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() || ValidID(e.Name()) != nil {
			continue
		}
		if err := b.migrate(ctx, e.Name()); err != nil {
			return fmt.Errorf("btrfs storage: give workspace %s its qgroup: %w", e.Name(), err)
		}
	}
	return b.rescanIfInconsistent(ctx)
}

// dropEmptyGroups destroys the workspace groups left without members:
// those of deleted workspaces, which Remove could not destroy while their
// subvolumes were still being cleaned up (clear-stale, just before, removed
// the members' qgroups). A group with no members holds nothing and no
// workspace can join it again (group ids are subvolume ids, never reused).
func (b *Btrfs) dropEmptyGroups() error {
	fd, err := openDir(b.cfg.Root)
	if err != nil {
		return err
	}
	defer unix.Close(fd) //nolint:errcheck // read-only directory fd
	groups, err := searchOffsets(fd, quotaTreeObjectID, 0, qgroupInfoKey, level1, 2*level1-1)
	if err != nil {
		return err
	}
	var errs []error
	for _, g := range groups {
		// Members are relation items (g, 246, member) with a level-0 id.
		h, _, err := searchFirst(fd, quotaTreeObjectID, g, qgroupRelationKey, 0, level1-1)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if h == nil {
			errs = append(errs, qgroupDestroy(fd, g))
		}
	}
	return errors.Join(errs...)
}

func (b *Btrfs) migrate(ctx context.Context, id string) error {
	fd, err := openDir(b.Path(id))
	if err != nil {
		return err
	}
	defer unix.Close(fd) //nolint:errcheck // read-only directory fd
	sub, err := subvolRootID(fd)
	if err != nil {
		return err
	}
	if g, err := qgroupParent(fd, sub); err != nil || g != 0 {
		return err
	}
	g := level1 | sub
	if err := qgroupCreate(fd, g); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	old, err := qgroupRead(fd, sub)
	if err != nil {
		return err
	}
	if err := qgroupSetLimit(fd, g, old.Limit); err != nil {
		return err
	}
	if err := qgroupSetLimit(fd, sub, 0); err != nil {
		return err
	}
	snaps, err := b.snapshots(id)
	if err != nil {
		return err
	}
	for _, s := range snaps {
		sid, err := subvolID(s.Path)
		if err != nil {
			return err
		}
		if p, err := qgroupParent(fd, sid); err != nil || p != 0 {
			if err != nil {
				return err
			}
			continue
		}
		if err := qgroupAssign(fd, sid, g); err != nil {
			return err
		}
	}
	// Last: a crash before this leaves the workspace without a group, and
	// the next Open migrates it again.
	if err := qgroupAssign(fd, sub, g); err != nil {
		return err
	}
	b.cfg.Log.InfoContext(ctx, "btrfs storage: workspace given its qgroup", "workspace", id, "qgroup", qgroupName(g), "snapshots", len(snaps))
	return nil
}

// Remove deletes the workspace's snapshots, then its subvolume, then the
// qgroups they leave behind. Pinned (immutable) mount points inside the
// tree do not stop a subvolume delete.
func (b *Btrfs) Remove(ctx context.Context, id string) error {
	if err := ValidID(id); err != nil {
		return err
	}
	snaps, err := b.snapshots(id)
	if err != nil {
		return err
	}
	for _, s := range snaps {
		if err := deleteSubvolume(ctx, s.Path); err != nil {
			return err
		}
	}
	if err := os.Remove(b.snapDir(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := exists(b.Path(id), ""); berth.IsKind(err, berth.NotFound) {
		return nil
	}
	grp, _, gerr := group(b.Path(id))
	if err := deleteSubvolume(ctx, b.Path(id)); err != nil {
		return err
	}
	if gerr == nil {
		// Best effort: the kernel refuses while the group still has
		// members (subvolumes still being cleaned up). A left group holds
		// nothing once they are gone, and its id is never reused.
		if fd, err := openDir(b.cfg.Root); err == nil {
			_ = qgroupDestroy(fd, grp)
			_ = unix.Close(fd)
		}
	}
	return nil
}

// deleteSubvolume deletes a subvolume and, best effort, its level-0 qgroup
// (see ioctlSubvolDelete).
func deleteSubvolume(ctx context.Context, path string) error {
	return ioctlSubvolDelete(path)
}

func (b *Btrfs) SetQuota(ctx context.Context, id string, limit int64) error {
	if err := ValidID(id); err != nil {
		return err
	}
	if err := exists(b.Path(id), "workspace storage "+id); err != nil {
		return err
	}
	return setLimit(ctx, b.Path(id), limit)
}

// setLimit sets the max referenced bytes of the workspace group of the
// live subvolume at path: the live tree and every snapshot count, each
// extent once however many of them share it.
func setLimit(ctx context.Context, path string, limit int64) error {
	grp, _, err := group(path)
	if err != nil {
		return err
	}
	fd, err := openDir(path)
	if err != nil {
		return err
	}
	defer unix.Close(fd) //nolint:errcheck // read-only directory fd
	if err := qgroupSetLimit(fd, grp, limit); err != nil {
		return fmt.Errorf("limit %s: %w", path, err)
	}
	return nil
}

// Usage reports the workspace group's referenced bytes (live tree and
// snapshots, each extent once: what the quota counts), its limit, and the
// live subvolume's referenced bytes, as of the last committed transaction:
// the kernel accounts extents to qgroups at transaction commit, so writes
// not yet committed (up to the commit interval, 30 s by default, or longer
// while data sits in the page cache) would be missing. To be exact right
// after a write, Usage first commits the pool (syncfs): when nothing is
// dirty there is no transaction to commit and the call costs microseconds
// (the benchmark's usage figure includes it); after writes it costs what
// flushing the pool's dirty data and committing costs (syncfs is
// pool-wide), and the numbers then include them. The read itself is a few
// quota-tree lookups (BTRFS_IOC_TREE_SEARCH), no process. CommittedUsage
// skips the commit.
//
// Space freed by deleting a snapshot (or a restore's old live tree) comes
// back when the kernel's cleaner has dropped the subvolume, in the
// background, a few commits later.
func (b *Btrfs) Usage(ctx context.Context, id string) (Usage, error) {
	if err := ValidID(id); err != nil {
		return Usage{}, err
	}
	return b.usage(ctx, b.Path(id), "workspace storage "+id)
}

// CommittedUsage is Usage without the commit: the numbers of the last
// committed transaction, which lag recent writes by up to the commit
// interval (30 s by default), for a caller that can take that (a listing
// refreshed often) in exchange for a cost that never includes a flush.
// The benchmark measures both: Usage on an idle pool costs about what this
// does (tens of µs); right after writes anywhere in the pool it costs a
// commit (tens to hundreds of ms on a busy loop pool).
func (b *Btrfs) CommittedUsage(ctx context.Context, id string) (Usage, error) {
	if err := ValidID(id); err != nil {
		return Usage{}, err
	}
	return b.read(ctx, b.Path(id), "workspace storage "+id, false)
}

func (b *Btrfs) usage(ctx context.Context, path, what string) (Usage, error) {
	return b.read(ctx, path, what, true)
}

func (b *Btrfs) read(ctx context.Context, path, what string, commit bool) (Usage, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.ENOENT) {
		return Usage{}, berth.Errorf(berth.NotFound, "%s not found", what)
	}
	if err != nil {
		return Usage{}, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd) //nolint:errcheck // read-only directory fd
	if commit {
		if err := unix.Syncfs(fd); err != nil {
			return Usage{}, fmt.Errorf("syncfs %s: %w", path, err)
		}
	}
	u, err := readGroup(fd)
	if err == nil {
		return u, nil
	}
	b.cfg.Log.WarnContext(ctx, "btrfs storage: reading the qgroups by ioctl failed; asking the btrfs command", "path", path, "err", err)
	return qgroupUsage(ctx, path)
}

// readGroup reads the usage of the workspace whose live subvolume root fd
// is: its group's numbers and its live subvolume's referenced bytes.
func readGroup(fd int) (Usage, error) {
	sub, err := subvolRootID(fd)
	if err != nil {
		return Usage{}, err
	}
	grp, err := qgroupParent(fd, sub)
	if err != nil {
		return Usage{}, err
	}
	if grp == 0 {
		return Usage{}, fmt.Errorf("subvolume %d is in no workspace qgroup", sub)
	}
	g, err := qgroupRead(fd, grp)
	if err != nil {
		return Usage{}, err
	}
	live, err := qgroupRead(fd, sub)
	if err != nil {
		return Usage{}, err
	}
	return Usage{Bytes: g.Rfer, LiveBytes: live.Rfer, Limit: g.Limit}, nil
}

// qgroupUsage asks the btrfs command. `btrfs qgroup show -pre --raw -f
// <path>` lists the qgroup of path's subvolume with its parent (the
// workspace group); `btrfs qgroup show -re --raw <path>` lists every
// qgroup, the group among them:
//
//	Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive Parent     Path
//	--------    ----------    ---------  --------------  ------------- ------     ----
//	0/256          1064960        16384            none           none 1/256      a
//	1/256          1064960      1064960         1048576           none -          <0 member qgroups>
//
// (btrfs-progs 6.2's --format json crashes on qgroup show, hence the text.)
func qgroupUsage(ctx context.Context, path string) (Usage, error) {
	out, err := btrfs(ctx, "qgroup", "show", "-pre", "--raw", "-f", path)
	if err != nil {
		return Usage{}, err
	}
	live, ok := findQgroupRow(out, "0/")
	if !ok || len(live) < 6 || !strings.HasPrefix(live[5], "1/") {
		return Usage{}, fmt.Errorf("qgroup show %s: no level-0 qgroup in a workspace group in %q", path, out)
	}
	var u Usage
	if u.LiveBytes, err = strconv.ParseInt(live[1], 10, 64); err != nil {
		return Usage{}, fmt.Errorf("qgroup show %s: bad referenced bytes %q", path, live[1])
	}
	if out, err = btrfs(ctx, "qgroup", "show", "-re", "--raw", path); err != nil {
		return Usage{}, err
	}
	grp, ok := findQgroupRow(out, live[5])
	if !ok {
		return Usage{}, fmt.Errorf("qgroup show %s: no qgroup %s in %q", path, live[5], out)
	}
	if u.Bytes, err = strconv.ParseInt(grp[1], 10, 64); err != nil {
		return Usage{}, fmt.Errorf("qgroup show %s: bad referenced bytes %q", path, grp[1])
	}
	if grp[3] != "none" {
		if u.Limit, err = strconv.ParseInt(grp[3], 10, 64); err != nil {
			return Usage{}, fmt.Errorf("qgroup show %s: bad limit %q", path, grp[3])
		}
	}
	return u, nil
}

// findQgroupRow returns the fields of the first row of qgroup show's
// output whose qgroup id is (with a trailing slash: starts with) id.
func findQgroupRow(out, id string) ([]string, bool) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		if f[0] == id || (strings.HasSuffix(id, "/") && strings.HasPrefix(f[0], id)) {
			return f, true
		}
	}
	return nil, false
}

// SnapshotUsage reports what one snapshot holds: its subvolume qgroup's
// exclusive bytes (held by no other subvolume: what deleting it frees) and
// referenced bytes (its whole tree, shared extents included), after a
// commit as Usage does.
func (b *Btrfs) SnapshotUsage(ctx context.Context, id, snapID string) (SnapshotUsage, error) {
	if err := validIDs(id, snapID); err != nil {
		return SnapshotUsage{}, err
	}
	p := b.SnapshotPath(id, snapID)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if errors.Is(err, unix.ENOENT) {
		return SnapshotUsage{}, berth.Errorf(berth.NotFound, "snapshot %s not found", snapID)
	}
	if err != nil {
		return SnapshotUsage{}, fmt.Errorf("open %s: %w", p, err)
	}
	defer unix.Close(fd) //nolint:errcheck // read-only directory fd
	if err := unix.Syncfs(fd); err != nil {
		return SnapshotUsage{}, fmt.Errorf("syncfs %s: %w", p, err)
	}
	sub, err := subvolRootID(fd)
	if err != nil {
		return SnapshotUsage{}, fmt.Errorf("%s: %w", p, err)
	}
	n, err := qgroupRead(fd, sub)
	if err != nil {
		return SnapshotUsage{}, err
	}
	return SnapshotUsage{ExclusiveBytes: n.Excl, ReferencedBytes: n.Rfer}, nil
}

func (b *Btrfs) Snapshot(ctx context.Context, id, snapID string) (Snapshot, error) {
	if err := validIDs(id, snapID); err != nil {
		return Snapshot{}, err
	}
	if err := exists(b.Path(id), "workspace storage "+id); err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{ID: snapID, WorkspaceID: id, Path: b.SnapshotPath(id, snapID)}
	if err := absent(s.Path, "snapshot "+snapID); err != nil {
		return Snapshot{}, err
	}
	if err := os.MkdirAll(b.snapDir(id), 0o700); err != nil {
		return Snapshot{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	grp, _, err := group(b.Path(id))
	if err != nil {
		return Snapshot{}, err
	}
	// Made a member of the workspace group as it is created, so that what
	// only the snapshot holds counts against the workspace's quota.
	if _, err := ioctlSnapshot(b.Path(id), s.Path, true, grp); err != nil {
		return Snapshot{}, err
	}
	if err := b.rescanIfInconsistent(ctx); err != nil {
		return Snapshot{}, errors.Join(err, deleteSubvolume(ctx, s.Path))
	}
	return s, nil
}

func (b *Btrfs) Snapshots(ctx context.Context, id string) ([]Snapshot, error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	if err := exists(b.Path(id), "workspace storage "+id); err != nil {
		return nil, err
	}
	return b.snapshots(id)
}

func (b *Btrfs) snapshots(id string) ([]Snapshot, error) {
	ents, err := os.ReadDir(b.snapDir(id))
	if errors.Is(err, fs.ErrNotExist) {
		return []Snapshot{}, nil
	}
	if err != nil {
		return nil, err
	}
	snaps := []Snapshot{}
	for _, e := range ents {
		if e.IsDir() && ValidID(e.Name()) == nil {
			snaps = append(snaps, Snapshot{ID: e.Name(), WorkspaceID: id, Path: b.SnapshotPath(id, e.Name())})
		}
	}
	slices.SortFunc(snaps, func(a, b Snapshot) int { return strings.Compare(a.ID, b.ID) })
	return snaps, nil
}

func (b *Btrfs) DeleteSnapshot(ctx context.Context, id, snapID string) error {
	if err := validIDs(id, snapID); err != nil {
		return err
	}
	p := b.SnapshotPath(id, snapID)
	if err := exists(p, "snapshot "+snapID); err != nil {
		return err
	}
	return deleteSubvolume(ctx, p)
}

// Restore makes a writable snapshot of the snapshot beside the live
// subvolume, in the workspace group (whose limit stays), swaps the two atomically
// (renameat2 RENAME_EXCHANGE: there is no moment without a tree at Path)
// and deletes the old live subvolume.
//
// A sandbox that bind-mounts the workspace keeps the OLD subvolume: a bind
// mount holds the directory it was made from, not the path. The delete of
// the old subvolume still succeeds, and the sandbox is left in a deleted
// directory (reads and creates fail with ENOENT; TestBtrfsQuotaBindsSandboxWrites
// checks this). So callers must refuse a restore while a sandbox mounts the
// workspace (409, issue 11), or, when forced, stop those sandboxes and
// mount the new tree when they start again.
func (b *Btrfs) Restore(ctx context.Context, id, snapID string) error {
	if err := validIDs(id, snapID); err != nil {
		return err
	}
	live, snap := b.Path(id), b.SnapshotPath(id, snapID)
	if err := exists(live, "workspace storage "+id); err != nil {
		return err
	}
	if err := exists(snap, "snapshot "+snapID); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	grp, _, err := group(live)
	if err != nil {
		return err
	}
	// A dot name is never a workspace id, and the time keeps two restores
	// of one workspace apart. One left by a crash goes at the next Open.
	tmp := filepath.Join(b.cfg.Root, fmt.Sprintf("%s%s-%d", restorePrefix, id, time.Now().UnixNano()))
	// The new live subvolume joins the workspace group (which keeps the
	// limit) as it is created.
	if _, err := ioctlSnapshot(snap, tmp, false, grp); err != nil {
		return err
	}
	if err := b.rescanIfInconsistent(ctx); err != nil {
		return errors.Join(err, deleteSubvolume(ctx, tmp))
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, live, unix.RENAME_EXCHANGE); err != nil {
		return errors.Join(fmt.Errorf("swap in restored tree: %w", err), deleteSubvolume(ctx, tmp))
	}
	return deleteSubvolume(ctx, tmp) // now the old live tree
}

// Clone makes dst a writable snapshot of src's live tree or of one of its
// snapshots: instant, sharing every extent until either side writes. dst
// has no limit.
func (b *Btrfs) Clone(ctx context.Context, src, snapID, dst string) error {
	if err := validIDs(src, dst); err != nil {
		return err
	}
	from := b.Path(src)
	what := "workspace storage " + src
	if snapID != "" {
		if err := ValidID(snapID); err != nil {
			return err
		}
		from, what = b.SnapshotPath(src, snapID), "snapshot "+snapID
	}
	if err := exists(from, what); err != nil {
		return err
	}
	if err := absent(b.Path(dst), "workspace storage "+dst); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	sub, err := ioctlSnapshot(from, b.Path(dst), false, 0)
	if err != nil {
		return err
	}
	// The clone gets a workspace group of its own, without a limit (the
	// Driver contract: its owner sets its own); its snapshots go into it.
	// It shares every extent with its origin, so the kernel cannot count
	// the new group by itself: this costs a rescan.
	err = b.newGroup(b.Path(dst), sub)
	if err == nil {
		err = b.rescanIfInconsistent(ctx)
	}
	if err != nil {
		return errors.Join(err, deleteSubvolume(ctx, b.Path(dst)))
	}
	return nil
}

// Close unmounts the pool file if Open mounted it (its loop device detaches
// itself). Subvolumes, snapshots and qgroup limits are on the pool and come
// back with the next Open.
func (b *Btrfs) Close(ctx context.Context) error {
	if !b.mounted {
		return nil
	}
	if out, err := exec.CommandContext(ctx, "umount", b.cfg.Root).CombinedOutput(); err != nil {
		return fmt.Errorf("unmount btrfs pool %s: %w: %s", b.cfg.Root, err, strings.TrimSpace(string(out)))
	}
	b.mounted = false
	return nil
}

var _ Driver = (*Btrfs)(nil)
