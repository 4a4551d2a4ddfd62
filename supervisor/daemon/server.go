//go:build linux

package daemon

import (
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/berth-dev/berth/supervisor/proto"
)

// server answers exec and PTY requests, one per connection.
type server struct {
	reaper *reaper
}

func (s *server) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			log.Printf("accept: %v", err)
			return
		}
		go s.handle(c)
	}
}

// Timings: how long a client has to send its request, and how long output
// may go on draining once a killed command has died (an escaped process
// still holding the pipe must not hold the answer).
const (
	requestTimeout = 30 * time.Second
	drainGrace     = 2 * time.Second
)

// session is one running command and its connection.
type session struct {
	conn   net.Conn
	reaper *reaper
	wmu    sync.Mutex // frames written whole
	req    proto.Request
	cred   *syscall.Credential
	pid    int

	killOnce sync.Once
	killDone chan struct{} // closed by kill
	ended    atomic.Bool   // the command has been reaped: nothing left to kill by pid
	answered atomic.Bool   // Exit is being sent: what the command left running stays
}

func (ss *session) send(typ byte, p []byte) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	return proto.WriteFrame(ss.conn, typ, p)
}

func (ss *session) sendJSON(typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return ss.send(typ, b)
}

// fail answers a request that cannot run.
func (ss *session) fail(code int, msg string) {
	if err := ss.sendJSON(proto.TypeExit, proto.Exit{Code: code, Error: msg}); err != nil {
		log.Printf("answer: %v", err)
	}
}

func (s *server) handle(c net.Conn) {
	defer func() { _ = c.Close() }()
	ss := &session{conn: c, reaper: s.reaper, killDone: make(chan struct{})}
	if err := c.SetReadDeadline(time.Now().Add(requestTimeout)); err != nil {
		return
	}
	typ, p, err := proto.ReadFrame(c, nil)
	if err != nil || typ != proto.TypeRequest {
		return
	}
	if err := json.Unmarshal(p, &ss.req); err == nil && ss.req.Version == proto.Version && ss.req.Dial != "" {
		s.dial(ss)
		return
	}
	if err := json.Unmarshal(p, &ss.req); err != nil || ss.req.Version != proto.Version || len(ss.req.Cmd) == 0 {
		ss.fail(-1, "bad request")
		return
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return
	}
	env := mergeEnv(os.Environ(), ss.req.Env, proto.ExecIDEnv+"="+ss.req.Marker)
	if ss.req.TTY && lookupEnv(env, "TERM") == "" {
		env = append(env, "TERM=xterm-256color")
	}
	if ss.req.User != "" {
		cred, home, err := lookupUser(ss.req.User)
		if err != nil {
			ss.fail(126, err.Error())
			return
		}
		ss.cred = cred
		if _, ok := ss.req.Env["HOME"]; !ok && home != "" {
			env = mergeEnv(env, map[string]string{"HOME": home}, "")
		}
	}
	path, err := lookPath(ss.req.Cmd[0], lookupEnv(env, "PATH"))
	if err != nil {
		ss.fail(startErrCode(err), err.Error())
		return
	}
	if ss.req.TTY {
		s.runTTY(ss, path, env)
	} else {
		s.runPipes(ss, path, env)
	}
}

func (s *server) sysAttr(ss *session) *syscall.SysProcAttr {
	// A session of its own, as the engine's exec gives: a kill takes the
	// whole session, and the command cannot signal the supervisor's group.
	return &syscall.SysProcAttr{Setsid: true, Credential: ss.cred}
}

func (s *server) runPipes(ss *session, path string, env []string) {
	inR, inW, err := os.Pipe()
	if err != nil {
		ss.fail(126, err.Error())
		return
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW)
		ss.fail(126, err.Error())
		return
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(inR, inW, outR, outW)
		ss.fail(126, err.Error())
		return
	}
	pid, done, err := s.reaper.start(func() (*os.Process, error) {
		return os.StartProcess(path, ss.req.Cmd, &os.ProcAttr{Dir: ss.req.Dir, Env: env,
			Files: []*os.File{inR, outW, errW}, Sys: s.sysAttr(ss)})
	})
	closeAll(inR, outW, errW) // the child holds them now
	if !ss.req.Stdin {
		closeAll(inW)
		inW = nil
	}
	if err != nil {
		closeAll(inW, outR, errR)
		ss.fail(startErrCode(err), err.Error())
		return
	}
	ss.pid = pid
	if err := ss.sendJSON(proto.TypeStarted, proto.Started{PID: pid}); err != nil {
		ss.kill()
	}
	var copies sync.WaitGroup
	copies.Go(func() { ss.pump(outR, proto.TypeStdout) })
	copies.Go(func() { ss.pump(errR, proto.TypeStderr) })
	go ss.readControl(inW, nil)
	s.finish(ss, done, &copies, func() { closeAll(outR, errR) })
}

func (s *server) runTTY(ss *session, path string, env []string) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		ss.fail(126, "open a pseudo-terminal: "+err.Error())
		return
	}
	if ss.req.Size.Rows > 0 && ss.req.Size.Cols > 0 {
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: ss.req.Size.Rows, Cols: ss.req.Size.Cols}); err != nil {
			log.Printf("pty size: %v", err)
		}
	}
	if ss.cred != nil {
		// The terminal belongs to the user the shell runs as.
		if err := tty.Chown(int(ss.cred.Uid), int(ss.cred.Gid)); err != nil {
			log.Printf("pty owner: %v", err)
		}
	}
	attr := s.sysAttr(ss)
	attr.Setctty = true
	attr.Ctty = 0
	pid, done, err := s.reaper.start(func() (*os.Process, error) {
		return os.StartProcess(path, ss.req.Cmd, &os.ProcAttr{Dir: ss.req.Dir, Env: env,
			Files: []*os.File{tty, tty, tty}, Sys: attr})
	})
	closeAll(tty)
	if err != nil {
		closeAll(ptmx)
		ss.fail(startErrCode(err), err.Error())
		return
	}
	ss.pid = pid
	if err := ss.sendJSON(proto.TypeStarted, proto.Started{PID: pid}); err != nil {
		ss.kill()
	}
	var copies sync.WaitGroup
	// The master reads EIO once no process holds the terminal any more.
	copies.Go(func() { ss.pump(ptmx, proto.TypeStdout) })
	go ss.readControl(ptmx, ptmx)
	s.finish(ss, done, &copies, func() { closeAll(ptmx) })
}

// finish waits for the command to end and its output to drain, then sends
// its exit code. Output still held by a process the command left running
// is waited for, as the engine's exec does, unless the session was killed.
func (s *server) finish(ss *session, done <-chan syscall.WaitStatus, copies *sync.WaitGroup, closeOut func()) {
	ws := <-done
	ss.ended.Store(true)
	drained := make(chan struct{})
	go func() { copies.Wait(); close(drained) }()
	if ss.req.TTY {
		// A terminal has no end of file while a background job holds it:
		// the shell's exit ends the session.
		select {
		case <-drained:
		case <-time.After(drainGrace):
		}
	} else {
		select {
		case <-drained:
		case <-ss.killedCh():
			select {
			case <-drained:
			case <-time.After(drainGrace):
			}
		}
	}
	closeOut()
	<-drained
	// Background processes the command left (a server started with
	// output redirected) live on, as with the engine's exec: the closed
	// connection after Exit must not kill them.
	ss.answered.Store(true)
	if err := ss.sendJSON(proto.TypeExit, proto.Exit{Code: exitCode(ws)}); err != nil {
		log.Printf("answer: %v", err)
	}
}

// pump sends what r gives as frames of typ until r ends.
func (ss *session) pump(r io.Reader, typ byte) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := ss.send(typ, buf[:n]); werr != nil {
				// Nobody reads any more: the command must not live on.
				ss.kill()
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// readControl reads berth's frames after the request: stdin goes to in,
// resizes to term (a PTY session), and a kill or a closed connection kills
// the command.
func (ss *session) readControl(in *os.File, term *os.File) {
	stdinOpen := in != nil
	closeIn := func() {
		if stdinOpen && term == nil {
			stdinOpen = false
			_ = in.Close()
		}
	}
	defer closeIn()
	buf := make([]byte, 64<<10)
	for {
		typ, p, err := proto.ReadFrame(ss.conn, buf)
		if err != nil {
			if !ss.answered.Load() {
				ss.kill()
			}
			return
		}
		switch typ {
		case proto.TypeStdin:
			if stdinOpen {
				if _, err := in.Write(p); err != nil {
					// The command closed its stdin: what follows is dropped.
					closeIn()
				}
			}
		case proto.TypeCloseStdin:
			if term != nil {
				// A terminal's end of input is its EOF character.
				_, _ = term.Write([]byte{4})
			}
			closeIn()
		case proto.TypeResize:
			var sz proto.Size
			if term != nil && json.Unmarshal(p, &sz) == nil && sz.Rows > 0 && sz.Cols > 0 {
				if err := pty.Setsize(term, &pty.Winsize{Rows: sz.Rows, Cols: sz.Cols}); err != nil {
					log.Printf("pty resize: %v", err)
				}
			}
		case proto.TypeKill:
			if !ss.answered.Load() {
				ss.kill()
			}
		}
	}
}

// killedCh is closed once the session is killed.
func (ss *session) killedCh() <-chan struct{} { return ss.killDone }

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

// dialTimeout bounds the connect of a Dial request.
const dialTimeout = 10 * time.Second

// dial connects to a TCP address in the sandbox and splices it with the
// client's connection. Only loopback addresses are dialled: the supervisor
// reaches the sandbox's own servers, never a way out of it.
func (s *server) dial(ss *session) {
	host, _, err := net.SplitHostPort(ss.req.Dial)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		ss.fail(-1, "dial: only a loopback address and port")
		return
	}
	tc, err := net.DialTimeout("tcp", ss.req.Dial, dialTimeout)
	if err != nil {
		ss.fail(1, err.Error())
		return
	}
	defer func() { _ = tc.Close() }()
	if err := ss.conn.SetReadDeadline(time.Time{}); err != nil {
		return
	}
	if err := ss.sendJSON(proto.TypeStarted, proto.Started{}); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(tc, ss.conn)
		// The client's half-close reaches the server.
		if cw, ok := tc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(ss.conn, tc)
		if cw, ok := ss.conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
}
