package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
	iocFsInfo         = 0x8400941f // BTRFS_IOC_FS_INFO: _IOR(0x94, 31, struct btrfs_ioctl_fs_info_args)
	iocQgroupAssign   = 0x40189429 // BTRFS_IOC_QGROUP_ASSIGN: _IOW(0x94, 41, struct btrfs_ioctl_qgroup_assign_args)
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
	// qgroupRelationKey (BTRFS_QGROUP_RELATION_KEY) items relate a member
	// and its parent qgroup, once each way: (member, 246, parent) and
	// (parent, 246, member), with no body.
	qgroupRelationKey = 246
	// level1 is the level bits of a level-1 qgroup id (level << 48 | n,
	// "1/n" in btrfs-progs' spelling).
	level1 = uint64(1) << 48

	subvolRdonly        = 1 << 1 // BTRFS_SUBVOL_RDONLY (vol_args_v2.flags)
	subvolQgroupInherit = 1 << 2 // BTRFS_SUBVOL_QGROUP_INHERIT (vol_args_v2.flags)
	qgroupLimitMaxRfer  = 1 << 0 // BTRFS_QGROUP_LIMIT_MAX_RFER
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

// volArgsV2 is struct btrfs_ioctl_vol_args_v2 (4096 bytes). Inherit is
// the user pointer to a qgroupInherit, read by the kernel when Flags has
// subvolQgroupInherit; Size is its length in bytes.
type volArgsV2 struct {
	Fd      int64
	TransID uint64
	Flags   uint64
	Size    uint64
	Inherit uintptr
	_       [2]uint64
	Name    [subvolNameMax + 1]byte
}

// qgroupInherit is struct btrfs_qgroup_inherit with one entry in its
// trailing qgroups[] array (80 bytes): the qgroup a new subvolume becomes
// a member of as it is created.
type qgroupInherit struct {
	Flags         uint64
	NumQgroups    uint64
	NumRefCopies  uint64
	NumExclCopies uint64
	Lim           qgroupLimit
	Qgroups       [1]uint64
}

// qgroupAssignArgs is struct btrfs_ioctl_qgroup_assign_args (24 bytes).
type qgroupAssignArgs struct {
	Assign uint64 // 1 assign, 0 remove
	Src    uint64 // the member
	Dst    uint64 // the parent
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
	_ [24]byte   = [unsafe.Sizeof(qgroupAssignArgs{})]byte{}
	_ [80]byte   = [unsafe.Sizeof(qgroupInherit{})]byte{}
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
	h, body, err := searchFirst(fd, tree, objectid, typ, offset, offset)
	if err != nil || h == nil {
		return nil, err
	}
	return body, nil
}

// searchFirst returns the first item (header and body) of tree whose key
// is (objectid, typ, o) with minOff <= o <= maxOff, or a nil header when
// there is none.
func searchFirst(fd int, tree, objectid uint64, typ uint32, minOff, maxOff uint64) (*searchHeader, []byte, error) {
	var args searchArgs
	args.Key = searchKey{
		TreeID:      tree,
		MinObjectID: objectid, MaxObjectID: objectid,
		MinType: typ, MaxType: typ,
		MinOffset: minOff, MaxOffset: maxOff,
		MaxTransID: ^uint64(0),
		NrItems:    1,
	}
	if err := ioctl(fd, iocTreeSearch, unsafe.Pointer(&args)); err != nil {
		return nil, nil, fmt.Errorf("BTRFS_IOC_TREE_SEARCH: %w", err)
	}
	if args.Key.NrItems == 0 {
		return nil, nil, nil
	}
	const hlen = int(unsafe.Sizeof(searchHeader{}))
	buf := args.Buf[:]
	h := searchHeader{
		ObjectID: binary.NativeEndian.Uint64(buf[8:]),
		Offset:   binary.NativeEndian.Uint64(buf[16:]),
		Type:     binary.NativeEndian.Uint32(buf[24:]),
		Len:      binary.NativeEndian.Uint32(buf[28:]),
	}
	if h.ObjectID != objectid || h.Type != typ || h.Offset < minOff || h.Offset > maxOff || hlen+int(h.Len) > len(buf) {
		return nil, nil, fmt.Errorf("BTRFS_IOC_TREE_SEARCH: unexpected item (%d, %d, %d) of %d bytes", h.ObjectID, h.Type, h.Offset, h.Len)
	}
	return &h, buf[hlen : hlen+int(h.Len)], nil
}

// searchOffsets returns the offsets of every item of tree whose key is
// (objectid, typ, o) with minOff <= o <= maxOff, in order.
func searchOffsets(fd int, tree, objectid uint64, typ uint32, minOff, maxOff uint64) ([]uint64, error) {
	const hlen = int(unsafe.Sizeof(searchHeader{}))
	var out []uint64
	for {
		var args searchArgs
		args.Key = searchKey{
			TreeID:      tree,
			MinObjectID: objectid, MaxObjectID: objectid,
			MinType: typ, MaxType: typ,
			MinOffset: minOff, MaxOffset: maxOff,
			MaxTransID: ^uint64(0),
			NrItems:    4096,
		}
		if err := ioctl(fd, iocTreeSearch, unsafe.Pointer(&args)); err != nil {
			return nil, fmt.Errorf("BTRFS_IOC_TREE_SEARCH: %w", err)
		}
		if args.Key.NrItems == 0 {
			return out, nil
		}
		buf, last := args.Buf[:], uint64(0)
		for range args.Key.NrItems {
			if len(buf) < hlen {
				return nil, fmt.Errorf("BTRFS_IOC_TREE_SEARCH: short buffer")
			}
			last = binary.NativeEndian.Uint64(buf[16:])
			n := int(binary.NativeEndian.Uint32(buf[28:]))
			if binary.NativeEndian.Uint64(buf[8:]) == objectid && binary.NativeEndian.Uint32(buf[24:]) == typ {
				out = append(out, last)
			}
			if hlen+n > len(buf) {
				return nil, fmt.Errorf("BTRFS_IOC_TREE_SEARCH: item of %d bytes past the buffer", n)
			}
			buf = buf[hlen+n:]
		}
		if last >= maxOff {
			return out, nil
		}
		minOff = last + 1
	}
}

// qgroupNumbers are one qgroup's counters and limit.
type qgroupNumbers struct {
	Rfer, Excl int64 // referenced and exclusive bytes
	Limit      int64 // max referenced bytes, 0 for none
}

// qgroupRead reads qgroup qgid from the quota tree: referenced and
// exclusive bytes from its info item (struct btrfs_qgroup_info_item:
// generation, rfer, rfer_cmpr, excl, excl_cmpr, little-endian) and the
// max-referenced limit from its limit item (struct btrfs_qgroup_limit_item:
// flags, max_rfer, ...), 0 when none is set. fd is any directory of the
// filesystem.
//
// These are the numbers of the last committed transaction: the kernel
// accounts extents to qgroups, and writes the items, at commit.
func qgroupRead(fd int, qgid uint64) (qgroupNumbers, error) {
	info, err := searchOne(fd, quotaTreeObjectID, 0, qgroupInfoKey, qgid)
	if err != nil {
		return qgroupNumbers{}, err
	}
	if len(info) < 40 {
		return qgroupNumbers{}, fmt.Errorf("no qgroup %s (are quotas enabled?)", qgroupName(qgid))
	}
	n := qgroupNumbers{
		Rfer: int64(binary.LittleEndian.Uint64(info[8:])),
		Excl: int64(binary.LittleEndian.Uint64(info[24:])),
	}
	lim, err := searchOne(fd, quotaTreeObjectID, 0, qgroupLimitKey, qgid)
	if err != nil {
		return qgroupNumbers{}, err
	}
	if len(lim) >= 16 && binary.LittleEndian.Uint64(lim)&qgroupLimitMaxRfer != 0 {
		n.Limit = int64(binary.LittleEndian.Uint64(lim[8:]))
	}
	return n, nil
}

// qgroupName spells a qgroup id as btrfs-progs does ("1/256").
func qgroupName(qgid uint64) string { return fmt.Sprintf("%d/%d", qgid>>48, qgid&(level1-1)) }

// qgroupParent returns the level-1 qgroup that the level-0 qgroup of
// subvolume id is a member of, 0 when it has none (a relation item
// (id, 246, 1/n) in the quota tree).
func qgroupParent(fd int, id uint64) (uint64, error) {
	h, _, err := searchFirst(fd, quotaTreeObjectID, id, qgroupRelationKey, level1, 2*level1-1)
	if err != nil || h == nil {
		return 0, err
	}
	return h.Offset, nil
}

// qgroupSetLimit sets (limit > 0) or clears the max-referenced limit of
// qgroup qgid, or with qgid 0 of the level-0 qgroup of the subvolume fd is
// in (BTRFS_IOC_QGROUP_LIMIT).
func qgroupSetLimit(fd int, qgid uint64, limit int64) error {
	args := qgroupLimitArgs{QgroupID: qgid, Lim: qgroupLimit{Flags: qgroupLimitMaxRfer, MaxRfer: qgroupLimitClear}}
	if limit > 0 {
		args.Lim.MaxRfer = uint64(limit)
	}
	if err := ioctl(fd, iocQgroupLimit, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("BTRFS_IOC_QGROUP_LIMIT: %w", err)
	}
	return nil
}

// qgroupCreate creates qgroup qgid through any fd on the filesystem.
func qgroupCreate(fd int, qgid uint64) error {
	args := qgroupCreateArgs{Create: 1, QgroupID: qgid}
	if err := ioctl(fd, iocQgroupCreate, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("BTRFS_IOC_QGROUP_CREATE (create %s): %w", qgroupName(qgid), err)
	}
	return nil
}

// qgroupDestroy destroys qgroup qgid through any fd on the filesystem.
func qgroupDestroy(fd int, qgid uint64) error {
	args := qgroupCreateArgs{Create: 0, QgroupID: qgid}
	if err := ioctl(fd, iocQgroupCreate, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("BTRFS_IOC_QGROUP_CREATE (destroy %s): %w", qgroupName(qgid), err)
	}
	return nil
}

// qgroupAssign makes qgroup member a member of parent. When member's
// bytes are not all its own (it shares extents with other subvolumes) the
// kernel cannot update parent's numbers and marks the quota inconsistent:
// the caller rescans (Btrfs.rescanIfInconsistent).
func qgroupAssign(fd int, member, parent uint64) error {
	args := qgroupAssignArgs{Assign: 1, Src: member, Dst: parent}
	if err := ioctl(fd, iocQgroupAssign, unsafe.Pointer(&args)); err != nil {
		return fmt.Errorf("BTRFS_IOC_QGROUP_ASSIGN (%s to %s): %w", qgroupName(member), qgroupName(parent), err)
	}
	return nil
}

// fsID returns the filesystem's UUID as sysfs names it
// (/sys/fs/btrfs/<uuid>; BTRFS_IOC_FS_INFO, fsid at offset 16).
func fsID(fd int) (string, error) {
	var buf [1024]byte
	if err := ioctl(fd, iocFsInfo, unsafe.Pointer(&buf)); err != nil {
		return "", fmt.Errorf("BTRFS_IOC_FS_INFO: %w", err)
	}
	u := buf[16:32]
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]), nil
}

// quotaInconsistent reads the kernel's in-memory qgroup status of the
// filesystem whose sysfs directory is sysfs (qgroups/inconsistent, Linux
// 5.13 and later). Without the file it answers true: the caller then
// rescans, slower but right.
func quotaInconsistent(sysfs string) bool {
	b, err := os.ReadFile(filepath.Join(sysfs, "qgroups", "inconsistent"))
	return err != nil || strings.TrimSpace(string(b)) != "0"
}

func setName(dst []byte, name string) error {
	if name == "" || len(name) >= len(dst) {
		return fmt.Errorf("bad subvolume name %q", name)
	}
	copy(dst, name) // dst is zero: the name ends with a NUL
	return nil
}

// ioctlSubvolCreate creates the empty subvolume path
// (BTRFS_IOC_SUBVOL_CREATE_V2 on its parent directory) and returns its id.
func ioctlSubvolCreate(path string) (uint64, error) {
	dir, err := openDir(filepath.Dir(path))
	if err != nil {
		return 0, err
	}
	defer unix.Close(dir) //nolint:errcheck // read-only directory fd
	var args volArgsV2
	if err := setName(args.Name[:], filepath.Base(path)); err != nil {
		return 0, err
	}
	if err := ioctl(dir, iocSubvolCreateV2, unsafe.Pointer(&args)); err != nil {
		return 0, fmt.Errorf("create subvolume %s: BTRFS_IOC_SUBVOL_CREATE_V2: %w", path, err)
	}
	return subvolID(path)
}

// subvolID returns the id of the subvolume whose root is path.
func subvolID(path string) (uint64, error) {
	fd, err := openDir(path)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd) //nolint:errcheck // read-only directory fd
	id, err := subvolRootID(fd)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

// ioctlSnapshot makes dst a snapshot of the subvolume src, read-only when
// readOnly (BTRFS_IOC_SNAP_CREATE_V2 on dst's parent, with src's fd), and
// returns its id. With parent != 0 the snapshot's level-0 qgroup is made a
// member of qgroup parent as it is created (qgroup inheritance), which
// keeps the numbers consistent when src is a member of parent alone and
// parent's bytes are all its own. The kernel flushes src's dirty data and
// commits a transaction: the snapshot holds every write made before the
// call.
func ioctlSnapshot(src, dst string, readOnly bool, parent uint64) (uint64, error) {
	sfd, err := openDir(src)
	if err != nil {
		return 0, err
	}
	defer unix.Close(sfd) //nolint:errcheck // read-only directory fd
	dir, err := openDir(filepath.Dir(dst))
	if err != nil {
		return 0, err
	}
	defer unix.Close(dir) //nolint:errcheck // read-only directory fd
	args := volArgsV2{Fd: int64(sfd)}
	if readOnly {
		args.Flags = subvolRdonly
	}
	if parent != 0 {
		// The kernel reads the inheritance through a pointer inside args:
		// pin it so that it stays where args says for the call.
		inh := &qgroupInherit{NumQgroups: 1, Qgroups: [1]uint64{parent}}
		var pin runtime.Pinner
		pin.Pin(inh)
		defer pin.Unpin()
		args.Flags |= subvolQgroupInherit
		args.Size = uint64(unsafe.Sizeof(*inh))
		args.Inherit = uintptr(unsafe.Pointer(inh))
	}
	if err := setName(args.Name[:], filepath.Base(dst)); err != nil {
		return 0, err
	}
	if err := ioctl(dir, iocSnapCreateV2, unsafe.Pointer(&args)); err != nil {
		return 0, fmt.Errorf("snapshot %s to %s: BTRFS_IOC_SNAP_CREATE_V2: %w", src, dst, err)
	}
	return subvolID(dst)
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
	// BTRFS_IOC_SYNC commits and wakes the transaction thread, which
	// starts the cleaner on the deleted subvolume now rather than at the
	// next periodic commit (up to 30 s): the space, and the quota room,
	// come back sooner. Best effort: the delete itself is done.
	_ = ioctl(dir, iocSync, nil)
	return nil
}
