// Package files is the file half of a workspace: confined, atomic, streamed
// operations on one workspace directory (<data-dir>/workspaces/<uuid>/). It
// knows nothing of HTTP; API handlers call a *Workspace and translate the
// *berth.Error kinds it returns.
//
// The directory's contents are hostile: a sandbox writes them. Every access
// therefore goes through one os.Root opened on the directory (never a prefix
// check on a cleaned string), so no name, ".." or symlink can make this
// package read, write, list or delete outside it. On top of that:
//
//   - Paths: API paths are workspace-relative with "/" as the root; an
//     entry's id is its path from the root. Clean validates them. On-disk
//     names are raw bytes; names that are not valid UTF-8 (or contain a
//     backslash) travel in an escaped, one-to-one form (see EncodeName) that
//     requests may send back.
//   - Symlinks are listed as "symlink" and never followed by recursive
//     operations. Delete removes the link; Copy copies the link text (cp -P);
//     Archive keeps only links that resolve inside the archived directory.
//     Open and List follow a link only while it stays inside the workspace.
//   - FIFOs, sockets and devices are listed but never opened: reads check the
//     type first and open with O_NONBLOCK, then check the descriptor again.
//   - Recursive walks are iterative, hold one directory per level, and stop at
//     MaxDepth levels; Delete has no depth limit (see removeTree).
//   - Writes are atomic (temporary file, fsync, rename) and stream through one
//     small buffer, checking the quota as bytes arrive. Stage/Commit let a
//     request write several files before any replaces anything (uploads are
//     all or nothing). Copies keep sparse files' holes.
//   - Temporary names start with ".berth-tmp-"; the API refuses to create
//     any name that could be taken for one (see reserved). Which temporary
//     entries are in use is known in memory, process-wide: only those are
//     hidden and left out of usage. A sandbox's look-alikes are listed and
//     counted; stale ones of berth's exact form (a crash mid-write) are
//     removed by the first usage scan after Open.
//   - Quota: QuotaBytes <= 0 means unlimited. Usage counts every regular
//     file on disk once per inode (hard links), each at most what the disk
//     holds for it (sparse files count their blocks), and keeps the total
//     cached, refreshed by change notifications and a TTL.
package files
