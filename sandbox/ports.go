package sandbox

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/supervisor"
)

// Dialer connects to the server a sandbox listens on.
type Dialer func(ctx context.Context) (net.Conn, error)

// Port calls fn with a Dialer of TCP port inside a visible sandbox
// (resumed if paused), for a proxy to a server listening there. While fn
// runs the sandbox counts as busy (idle pause leaves it be), and fn's
// context ends when the sandbox is cut off. The port is reached through
// the sandbox's supervisor, which works with network none too; a sandbox
// without one is reached at its address on its network, when it has one.
// It needs the same scope as exec (sandbox:write).
func (m *Manager) Port(ctx context.Context, idOrName string, port int, fn func(ctx context.Context, dial Dialer) error) error {
	c, err := auth.Require(ctx, "sandbox:write")
	if err != nil {
		return err
	}
	if port < 1 || port > 65535 {
		return berth.Errorf(berth.Invalid, "port must be a number from 1 to 65535")
	}
	s, err := m.find(ctx, c, idOrName)
	if err != nil {
		return err
	}
	cctx, cut := context.WithCancelCause(ctx)
	defer cut(nil)
	s, done, err := m.startExec(cctx, s, cut)
	if err != nil {
		return err
	}
	defer done()
	m.touch(ctx, s.ID)
	return fn(cctx, m.portDialer(s, port))
}

// portDialer connects through the supervisor, else to the sandbox's
// address.
func (m *Manager) portDialer(s *Sandbox, port int) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var err error = berth.Errorf(berth.NotSupported, "no supervisor")
		if m.sup != nil {
			var conn net.Conn
			conn, err = m.sup.DialPort(ctx, s.containerID, port)
			if err == nil {
				return conn, nil
			}
			if !errors.Is(err, supervisor.ErrUnreachable) && !berth.IsKind(err, berth.NotSupported) {
				return nil, err
			}
		}
		if s.IP == "" {
			return nil, berth.Wrap(berth.Unavailable, err, "the sandbox's port cannot be reached: no supervisor answers and it has no network address")
		}
		if m.sup != nil {
			m.log.Warn("port through the sandbox's address", "sandbox", s.ID, "why", err)
		}
		d := net.Dialer{Timeout: 10 * time.Second}
		conn, derr := d.DialContext(ctx, "tcp", net.JoinHostPort(s.IP, strconv.Itoa(port)))
		if derr != nil {
			return nil, berth.Wrap(berth.Unavailable, derr, "nothing answers at port "+strconv.Itoa(port)+" in the sandbox")
		}
		return conn, nil
	}
}
