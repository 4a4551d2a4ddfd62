package docker

import "context"

// CheckIsolation makes sure the isolated network of runtime.NetworkBridge
// and its host firewall rule are in place, exactly as the first bridge
// sandbox would (both are shared and idempotent), and says why not.
// `berth doctor` calls it so that a missing iptables or a lack of root
// shows before a user's sandbox fails on it.
func (d *Docker) CheckIsolation(ctx context.Context) error { return d.ensureIsolation(ctx, false) }
