// Package supervisor is berth's side of the in-sandbox supervisor
// (cmd/berth-supervisor, supervisor/daemon): the client that runs commands
// and terminal sessions through a sandbox's socket, a runtime.Runtime
// wrapper that puts the supervisor into every container it creates and
// sends Exec through it (falling back to the engine's exec), and Install,
// which finds or builds the static binary.
package supervisor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/supervisor/proto"
)

// ErrUnreachable means the supervisor did not take the command: no socket,
// nobody listening, or the connection dropped before the command started.
// Nothing ran, so the engine's exec may run it instead.
var ErrUnreachable = errors.New("supervisor unreachable")

// Timings: how long a connection may take to be accepted and the command
// to start, and how long a killed command's output may drain.
const (
	startTimeout = 30 * time.Second
	drainGrace   = 2 * time.Second
)

// dial connects to the socket at path without following a symlink: root
// inside the sandbox owns the directory the socket lives in and could point
// it anywhere on the host. The path is opened O_PATH|O_NOFOLLOW, checked to
// be a socket, and connected to through /proc/self/fd, so what is checked
// is what is connected to.
func dial(ctx context.Context, path string) (net.Conn, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer func() { _ = unix.Close(fd) }()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%w: %s is not a socket", ErrUnreachable, path)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	return c, nil
}

// Request is a command to run through the supervisor.
type Request struct {
	Cmd  []string
	Env  map[string]string
	Dir  string
	User string
	// Stdin: the caller will Write the command's input (and CloseStdin);
	// otherwise its stdin is empty. A TTY session always takes input.
	Stdin bool
	TTY   bool
	Rows  uint16 // first terminal size (TTY)
	Cols  uint16
}

// Session is one command running through the supervisor. Its methods may be
// called from different goroutines; Wait from one.
type Session struct {
	conn net.Conn
	wmu  sync.Mutex
	// first is a frame read before Start returned (an Exit: the command
	// could not start), handed to Wait.
	first     *proto.Exit
	closeOnce sync.Once
}

// Start connects to the socket at sock and starts req. An error wrapping
// ErrUnreachable means nothing ran.
func Start(ctx context.Context, sock string, req Request) (*Session, error) {
	if len(req.Cmd) == 0 {
		return nil, berth.Errorf(berth.Invalid, "exec: empty command")
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	c, err := dial(sctx, sock)
	if err != nil {
		return nil, err
	}
	marker, err := newMarker()
	if err != nil {
		_ = c.Close()
		return nil, berth.Wrap(berth.Internal, err, "exec: marker")
	}
	s := &Session{conn: c}
	// Until the command has started, ctx ending (or the start timeout)
	// breaks the connection, which kills whatever did start.
	stop := context.AfterFunc(sctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := proto.WriteJSON(c, proto.TypeRequest, proto.Request{Version: proto.Version, Cmd: req.Cmd, Env: req.Env,
		Dir: req.Dir, User: req.User, Marker: marker, Stdin: req.Stdin || req.TTY, TTY: req.TTY, Size: proto.Size{Rows: req.Rows, Cols: req.Cols}}); err != nil {
		_ = c.Close()
		return nil, s.startErr(ctx, err)
	}
	typ, p, err := proto.ReadFrame(c, nil)
	if err != nil {
		_ = c.Close()
		return nil, s.startErr(ctx, err)
	}
	switch typ {
	case proto.TypeStarted:
	case proto.TypeExit:
		var x proto.Exit
		if err := json.Unmarshal(p, &x); err != nil {
			_ = c.Close()
			return nil, berth.Wrap(berth.Internal, err, "supervisor: bad answer")
		}
		if x.Code < 0 {
			_ = c.Close()
			return nil, berth.Errorf(berth.Internal, "supervisor refused the request: %s", x.Error)
		}
		s.first = &x
	default:
		_ = c.Close()
		return nil, berth.Errorf(berth.Internal, "supervisor: unexpected frame %q", typ)
	}
	if !stop() {
		_ = c.Close()
		return nil, ctx.Err()
	}
	return s, nil
}

// startErr is the error of a start that broke: ctx's own end, or an
// unreachable supervisor.
func (s *Session) startErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %v", ErrUnreachable, err)
}

func (s *Session) send(typ byte, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// A supervisor that stops reading must not block a writer forever.
	if err := s.conn.SetWriteDeadline(time.Now().Add(startTimeout)); err != nil {
		return err
	}
	return proto.WriteFrame(s.conn, typ, p)
}

// Write sends p to the command's stdin (a PTY session: its terminal).
func (s *Session) Write(p []byte) (int, error) {
	for n := 0; n < len(p); {
		chunk := p[n:min(len(p), n+32<<10)]
		if err := s.send(proto.TypeStdin, chunk); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return len(p), nil
}

// CloseStdin ends the command's stdin (a PTY: sends its EOF character).
func (s *Session) CloseStdin() error { return s.send(proto.TypeCloseStdin, nil) }

// Resize sets a PTY session's terminal size.
func (s *Session) Resize(rows, cols uint16) error {
	b, err := json.Marshal(proto.Size{Rows: rows, Cols: cols})
	if err != nil {
		return err
	}
	return s.send(proto.TypeResize, b)
}

// Kill kills the command and every process it started.
func (s *Session) Kill() error { return s.send(proto.TypeKill, nil) }

// Close drops the connection, which kills the command if it still runs.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.conn.Close() })
	return err
}

// Wait streams the command's output to stdout and stderr (a PTY session's
// all goes to stdout) until it ends, and returns its exit code. When ctx
// ends first the command is killed and Wait returns -1 with ctx.Err(); a
// writer that fails kills it too. The session is closed on return.
func (s *Session) Wait(ctx context.Context, stdout, stderr io.Writer) (int, error) {
	defer func() { _ = s.Close() }()
	if s.first != nil {
		if s.first.Error != "" && stderr != nil {
			_, _ = fmt.Fprintf(stderr, "%s\n", s.first.Error)
		}
		return s.first.Code, nil
	}
	stdout, stderr = orDiscard(stdout), orDiscard(stderr)
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			typ, p, err := proto.ReadFrame(s.conn, buf)
			if err != nil {
				done <- result{-1, berth.Wrap(berth.Unavailable, err, "exec: the supervisor's connection broke")}
				return
			}
			var werr error
			switch typ {
			case proto.TypeStdout:
				_, werr = stdout.Write(p)
			case proto.TypeStderr:
				_, werr = stderr.Write(p)
			case proto.TypeExit:
				var x proto.Exit
				if err := json.Unmarshal(p, &x); err != nil {
					done <- result{-1, berth.Wrap(berth.Internal, err, "exec: bad exit frame")}
					return
				}
				done <- result{x.Code, nil}
				return
			}
			if werr != nil {
				// Nobody listens any more: the command must not live on.
				_ = s.Kill()
				done <- result{-1, berth.Wrap(berth.Unavailable, werr, "exec: output stream")}
				return
			}
		}
	}()
	select {
	case r := <-done:
		return r.code, r.err
	case <-ctx.Done():
		kerr := s.Kill()
		select {
		case <-done:
		case <-time.After(drainGrace):
		}
		if kerr != nil {
			return -1, errors.Join(ctx.Err(), berth.Wrap(berth.Unavailable, kerr, "exec: kill through the supervisor"))
		}
		return -1, ctx.Err()
	}
}

// Exec runs req through the socket at sock with stdin (nil: empty), like
// runtime.Runtime.Exec. An error wrapping ErrUnreachable means nothing ran.
func Exec(ctx context.Context, sock string, req Request, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if err := ctx.Err(); err != nil {
		return -1, err
	}
	req.Stdin = stdin != nil
	s, err := Start(ctx, sock, req)
	if err != nil {
		return -1, err
	}
	if s.first == nil && stdin != nil {
		// Not waited for: a command may exit without reading its stdin,
		// and a reader that never ends must not hold Exec. A write that
		// fails (the command has ended and the supervisor closed the
		// connection) only ends the copy: Wait reports how it ended.
		go func() {
			if _, err := io.Copy(s, stdin); err == nil {
				_ = s.CloseStdin()
			}
		}()
	}
	return s.Wait(ctx, stdout, stderr)
}

func newMarker() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// socketReady reports whether something listens on the socket at path.
func socketReady(ctx context.Context, path string) bool {
	c, err := dial(ctx, path)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Dial connects, through the socket at sock, to addr (a loopback address
// and port) inside the sandbox, and returns the connection: what is written
// to it reaches the server there, what it answers is read. This works
// whatever the sandbox's network (none included). An error wrapping
// ErrUnreachable means the supervisor did not answer; a Unavailable one
// that nothing listens at addr.
func Dial(ctx context.Context, sock, addr string) (net.Conn, error) {
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	c, err := dial(sctx, sock)
	if err != nil {
		return nil, err
	}
	s := &Session{conn: c}
	stop := context.AfterFunc(sctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := proto.WriteJSON(c, proto.TypeRequest, proto.Request{Version: proto.Version, Dial: addr}); err != nil {
		_ = c.Close()
		return nil, s.startErr(ctx, err)
	}
	typ, p, err := proto.ReadFrame(c, nil)
	if err != nil {
		_ = c.Close()
		return nil, s.startErr(ctx, err)
	}
	if typ != proto.TypeStarted {
		_ = c.Close()
		var x proto.Exit
		if typ != proto.TypeExit || json.Unmarshal(p, &x) != nil {
			return nil, berth.Errorf(berth.Internal, "supervisor: unexpected frame %q", typ)
		}
		if x.Code < 0 {
			// An older supervisor, or a refused address.
			return nil, fmt.Errorf("%w: %s", ErrUnreachable, x.Error)
		}
		return nil, berth.Errorf(berth.Unavailable, "nothing answers at %s in the sandbox: %s", addr, x.Error)
	}
	if !stop() {
		_ = c.Close()
		return nil, ctx.Err()
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		_ = c.Close()
		return nil, berth.Wrap(berth.Internal, err, "supervisor connection")
	}
	return c, nil
}
