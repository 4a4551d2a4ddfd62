package storage

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The btrfs ioctls the driver issues itself, so that its frequent
// operations (usage reads, snapshots, clones, quota changes, subvolume
// create and delete) cost a system call instead of a btrfs-progs process
// (a spawn costs several ms; Usage must stay under one). No kept Go library
// covers them: golang.org/x/sys/unix has only BTRFS_SUPER_MAGIC, and
// github.com/dennwc/btrfs has no qgroup reads or limits and no release in
// years. The numbers and layouts below are those of the kernel's UAPI
// headers linux/btrfs.h and linux/btrfs_tree.h (checked against them with
// a C program printing sizeof and the _IOC values on Linux 6.x, amd64 and
// arm64 alike: every field is a fixed-size integer, so the layout does not
// depend on the architecture). The ioctls are stable kernel ABI.

// Ioctl request numbers (_IOC(dir, 0x94, nr, size)).
const (
	iocSync           = 0x9408     // BTRFS_IOC_SYNC: _IO(0x94, 8)
	iocSnapDestroy    = 0x5000940f // BTRFS_IOC_SNAP_DESTROY: _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	iocTreeSearch     = 0xd0009411 // BTRFS_IOC_TREE_SEARCH: _IOWR(0x94, 17, struct btrfs_ioctl_search_args)
	iocInoLookup      = 0xd0009412 // BTRFS_IOC_INO_LOOKUP: _IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args)
	iocSnapCreateV2   = 0x50009417 // BTRFS_IOC_SNAP_CREATE_V2: _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)
	iocSubvolCreateV2 = 0x50009418 // BTRFS_IOC_SUBVOL_CREATE_V2: _IOW(0x94, 24, struct btrfs_ioctl_vol_args_v2)
	iocQgroupCreate   = 0x4010942a // BTRFS_IOC_QGROUP_CREATE: _IOW(0x94, 42, struct btrfs_ioctl_qgroup_create_args)
	iocQgroupLimit    = 0x8030942b // BTRFS_IOC_QGROUP_LIMIT: _IOR(0x94, 43, struct btrfs_ioctl_qgroup_limit_args)
)

const (
	// firstFreeObjectID (BTRFS_FIRST_FREE_OBJECTID) is the inode number of
	// every subvolume's root directory.
	firstFreeObjectID = 256
	// quotaTreeObjectID (BTRFS_QUOTA_TREE_OBJECTID) is the tree holding
	// one info and one limit item per qgroup, keyed (0, type, qgroupid);
	// a level-0 qgroup's id is its subvolume's id.
	quotaTreeObjectID = 8
	qgroupInfoKey     = 242 // BTRFS_QGROUP_INFO_KEY: struct btrfs_qgroup_info_item
	qgroupLimitKey    = 244 // BTRFS_QGROUP_LIMIT_KEY: struct btrfs_qgroup_limit_item

	subvolRdonly       = 1 << 1 // BTRFS_SUBVOL_RDONLY (vol_args_v2.flags)
	qgroupLimitMaxRfer = 1 << 0 // BTRFS_QGROUP_LIMIT_MAX_RFER
	// qgroupLimitClear (CLEAR_VALUE in the kernel's qgroup.c), as a limit
	// value with its flag set, removes that limit.
	qgroupLimitClear = ^uint64(0)

	pathNameMax   = 4087 // BTRFS_PATH_NAME_MAX
	subvolNameMax = 4039 // BTRFS_SUBVOL_NAME_MAX
)

// searchKey is struct btrfs_ioctl_search_key (104 bytes). A search returns
// the items whose 136-bit key (objectid, type, offset) lies between
// (min_objectid, min_type, min_offset) and (max_objectid, max_type,
// max_offset), compared as one number, so a search for one exact key sets
// each min equal to its max.
type searchKey struct {
	TreeID      uint64
	MinObjectID uint64
	MaxObjectID uint64
	MinOffset   uint64
	MaxOffset   uint64
	MinTransID  uint64
	MaxTransID  uint64
	MinType     uint32
	MaxType     uint32
	NrItems     uint32
	_           uint32
	_           [4]uint64
}

// searchHeader is struct btrfs_ioctl_search_header (32 bytes): each item in
// a search's buffer follows one.
type searchHeader struct {
	TransID  uint64
	ObjectID uint64
	Offset   uint64
	Type     uint32
	Len      uint32
}

// searchArgs is struct btrfs_ioctl_search_args (4096 bytes).
type searchArgs struct {
	Key searchKey
	Buf [4096 - unsafe.Sizeof(searchKey{})]byte
}

// inoLookupArgs is struct btrfs_ioctl_ino_lookup_args (4096 bytes).
type inoLookupArgs struct {
	TreeID   uint64
	ObjectID uint64
	Name     [4080]byte
}

// volArgs is struct btrfs_ioctl_vol_args (4096 bytes).
type volArgs struct {
	Fd   int64
	Name [pathNameMax + 1]byte
}

// volArgsV2 is struct btrfs_ioctl_vol_args_v2 (4096 bytes); the union after
// Flags is left zero (no size, no qgroup inheritance).
type volArgsV2 struct {
	Fd      int64
	TransID uint64
	Flags   uint64
	_       [4]uint64
	Name    [subvolNameMax + 1]byte
}

// qgroupLimit is struct btrfs_qgroup_limit (40 bytes).
type qgroupLimit struct {
	Flags   uint64
	MaxRfer uint64
	MaxExcl uint64
	RsvRfer uint64
	RsvExcl uint64
}

// qgroupLimitArgs is struct btrfs_ioctl_qgroup_limit_args (48 bytes).
type qgroupLimitArgs struct {
	QgroupID uint64 // 0: the qgroup of the subvolume the fd is in
	Lim      qgroupLimit
}

// qgroupCreateArgs is struct btrfs_ioctl_qgroup_create_args (16 bytes).
type qgroupCreateArgs struct {
	Create   uint64 // 1 create, 0 destroy
	QgroupID uint64
}

// Compile-time checks of the sizes the request numbers encode.
var (
	_ [4096]byte = [unsafe.Sizeof(searchArgs{})]byte{}
	_ [104]byte  = [unsafe.Sizeof(searchKey{})]byte{}
	_ [32]byte   = [unsafe.Sizeof(searchHeader{})]byte{}
	_ [4096]byte = [unsafe.Sizeof(inoLookupArgs{})]byte{}
	_ [4096]byte = [unsafe.Sizeof(volArgs{})]byte{}
	_ [4096]byte = [unsafe.Sizeof(volArgsV2{})]byte{}
	_ [48]byte   = [unsafe.Sizeof(qgroupLimitArgs{})]byte{}
	_ [16]byte   = [unsafe.Sizeof(qgroupCreateArgs{})]byte{}
)

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg)); errno != 0 {
		return errno
	}
	return nil
}

// openDir opens a directory for ioctls. The btrfs ioctl numbers are reused
// by some device drivers, so the driver only ever issues them on
// directories it opened with O_DIRECTORY on its own pool.
func openDir(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, nil
}

// subvolRootID returns the id of the subvolume whose root directory fd is
// (BTRFS_IOC_INO_LOOKUP with objectid 256 answers the fd's tree id without
// a path lookup, unprivileged). A directory that is not a subvolume root
// (inode 256) is refused: its tree id would be that of the subvolume
// containing it, and its qgroup the wrong one.
func subvolRootID(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	if st.Ino != firstFreeObjectID {
		return 0, fmt.Errorf("not a btrfs subvolume (inode %d)", st.Ino)
	}
	args := inoLookupArgs{ObjectID: firstFreeObjectID}
	if err := ioctl(fd, iocInoLookup, unsafe.Pointer(&args)); err != nil {
		return 0, fmt.Errorf("BTRFS_IOC_INO_LOOKUP: %w", err)
	}
	return args.TreeID, nil
}

// searchOne returns the body of the item with key (objectid, typ, offset)
// in tree, or nil when there is none (BTRFS_IOC_TREE_SEARCH; it needs
// CAP_SYS_ADMIN).
func searchOne(fd int, tree, objectid uint64, typ uint32, offset uint64) ([]byte, error) {
	var args searchArgs
	args.Key = searchKey{
		TreeID:      tree,
		MinObjectID: objectid, MaxObjectID: objectid,
		MinType: typ, MaxType: typ,
		MinOffset: offset, MaxOffset: offset,
		MaxTransID: ^uint64(0),
		NrItems:    1,
	}
	if err := ioctl(fd, iocTreeSearch, unsafe.Pointer(&args)); err != nil {
		return nil, fmt.Errorf("BTRFS_IOC_TREE_SEARCH: %w", err)
	}
	if args.Key.NrItems == 0 {
		return nil, nil
	}
	const hlen = int(unsafe.Sizeof(searchHeader{}))
	buf := args.Buf[:]
	h := searchHeader{
		ObjectID: binary.NativeEndian.Uint64(buf[8:]),
		Offset:   binary.NativeEndian.Uint64(buf[16:]),
		Type:     binary.NativeEndian.Uint32(buf[24:]),
		Len:      binary.NativeEndian.Uint32(buf[28:]),
	}
	if h.ObjectID != objectid || h.Type != typ || h.Offset != offset || hlen+int(h.Len) > len(buf) {
		return nil, fmt.Errorf("BTRFS_IOC_TREE_SEARCH: unexpected item (%d, %d, %d) of %d bytes", h.ObjectID, h.Type, h.Offset, h.Len)
	}
	return buf[hlen : hlen+int(h.Len)], nil
}

// qgroupRead reads the level-0 qgroup of the subvolume whose root fd is
// from the quota tree: referenced bytes from its info item (struct
// btrfs_qgroup_info_item: generation, rfer, rfer_cmpr, excl, excl_cmpr,
// little-endian) and the max-referenced limit from its limit item (struct
// btrfs_qgroup_limit_item: flags, max_rfer, ...), 0 when none is set.
//
// These are the numbers of the last committed transaction: the kernel
// accounts extents to qgroups, and writes the items, at commit.
func qgroupRead(fd int) (Usage, error) {
	id, err := subvolRootID(fd)
	if err != nil {
		return Usage{}, err
	}
	info, err := searchOne(fd, quotaTreeObjectID, 0, qgroupInfoKey, id)
	if err != nil {
		return Usage{}, err
	}
	if len(info) < 16 {
		return Usage{}, fmt.Errorf("no qgroup 0/%d (are quotas enabled?)", id)
	}
	u := Usage{Bytes: int64(binary.LittleEndian.Uint64(info[8:]))}
	lim, err := searchOne(fd, quotaTreeObjectID, 0, qgroupLimitKey, id)
	if err != nil {
		return Usage{}, err
	}
	if len(lim) >= 16 && binary.LittleEndian.Uint64(lim)&qgroupLimitMaxRfer != 0 {
		u.Limit = int64(binary.LittleEndian.Uint64(lim[8:]))
	}
	return u, nil
}

// qgroupSetLimit sets (limit > 0) or clears the max-referenced limit of
// the qgroup of the subvolume whose root fd is (BTRFS_IOC_QGROUP_LIMIT;
// qgroupid 0 names the fd's own subvolume).
func qgroupSetLimit(fd int, limit int64) error {
	args := qgroupLimitArgs{Lim: qgroupLimit{Flags: qgroupLimitMaxRfer, MaxRfer: qgroupLimitClear}}
	if limit > 0 {
		args.Lim.MaxRfer = uint64(limit)
	}
	if err := ioctl(fd, iocQgroupLimit, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("BTRFS_IOC_QGROUP_LIMIT: %w", err)
	}
	return nil
}

// qgroupDestroy destroys qgroup 0/id through any fd on the filesystem.
func qgroupDestroy(fd int, id uint64) error {
	args := qgroupCreateArgs{Create: 0, QgroupID: id}
	if err := ioctl(fd, iocQgroupCreate, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("BTRFS_IOC_QGROUP_CREATE (destroy 0/%d): %w", id, err)
	}
	return nil
}

func setName(dst []byte, name string) error {
	if name == "" || len(name) >= len(dst) {
		return fmt.Errorf("bad subvolume name %q", name)
	}
	copy(dst, name) // dst is zero: the name ends with a NUL
	return nil
}

// ioctlSubvolCreate creates the empty subvolume path
// (BTRFS_IOC_SUBVOL_CREATE_V2 on its parent directory).
func ioctlSubvolCreate(path string) error {
	dir, err := openDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer unix.Close(dir) //nolint:errcheck // read-only directory fd
	var args volArgsV2
	if err := setName(args.Name[:], filepath.Base(path)); err != nil {
		return err
	}
	if err := ioctl(dir, iocSubvolCreateV2, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("create subvolume %s: BTRFS_IOC_SUBVOL_CREATE_V2: %w", path, err)
	}
	return nil
}

// ioctlSnapshot makes dst a snapshot of the subvolume src, read-only when
// readOnly (BTRFS_IOC_SNAP_CREATE_V2 on dst's parent, with src's fd). The
// kernel flushes src's dirty data and commits a transaction: the snapshot
// holds every write made before the call.
func ioctlSnapshot(src, dst string, readOnly bool) error {
	sfd, err := openDir(src)
	if err != nil {
		return err
	}
	defer unix.Close(sfd) //nolint:errcheck // read-only directory fd
	dir, err := openDir(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer unix.Close(dir) //nolint:errcheck // read-only directory fd
	args := volArgsV2{Fd: int64(sfd)}
	if readOnly {
		args.Flags = subvolRdonly
	}
	if err := setName(args.Name[:], filepath.Base(dst)); err != nil {
		return err
	}
	if err := ioctl(dir, iocSnapCreateV2, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("snapshot %s to %s: BTRFS_IOC_SNAP_CREATE_V2: %w", src, dst, err)
	}
	return nil
}

// ioctlSubvolDelete deletes the subvolume path (BTRFS_IOC_SNAP_DESTROY on
// its parent; the kernel frees its extents in the background) and then,
// best effort, its level-0 qgroup: the kernel keeps a deleted subvolume's
// qgroup until it is destroyed, and while the subvolume is still being
// cleaned up the destroy fails with EBUSY; the stale qgroup then stays,
// harmless, until `btrfs qgroup clear-stale` (run at Open).
func ioctlSubvolDelete(path string) error {
	fd, err := openDir(path)
	if err != nil {
		return err
	}
	id, err := subvolRootID(fd)
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dir, err := openDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer unix.Close(dir) //nolint:errcheck // read-only directory fd
	var args volArgs
	if err := setName(args.Name[:], filepath.Base(path)); err != nil {
		return err
	}
	if err := ioctl(dir, iocSnapDestroy, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("delete subvolume %s: BTRFS_IOC_SNAP_DESTROY: %w", path, err)
	}
	_ = qgroupDestroy(dir, id) // best effort, see above
	return nil
}
