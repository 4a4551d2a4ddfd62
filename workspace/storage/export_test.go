package storage

import "context"

// CLIUsage is the btrfs command's reading of the qgroup of the subvolume
// at path (Usage's fallback), for tests comparing it with the ioctl read.
func CLIUsage(ctx context.Context, path string) (Usage, error) { return qgroupUsage(ctx, path) }
