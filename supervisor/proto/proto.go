// Package proto is the wire protocol between berth and the supervisor that
// runs as PID 1 inside a sandbox: the only code both sides share.
//
// One connection to the supervisor's unix socket runs one command. Both sides
// write frames: a 1-byte type, a 4-byte big-endian payload length, then the
// payload (at most MaxPayload bytes). berth writes a Request frame first, then
// any number of Stdin, CloseStdin, Resize and Kill frames. The supervisor
// answers Started once the command runs (or Exit at once when it cannot be
// started: 127 for a missing program, 126 for one that cannot be run), then
// Stdout and Stderr frames as output comes, and one Exit frame when the
// command has ended and its output is drained; then it closes the
// connection. Closing the connection before Exit kills the command, like a
// Kill frame.
//
// A Request with Dial set instead of Cmd connects to a TCP address inside
// the sandbox (a server in it, reached even with no network): the
// supervisor answers Started once connected (Exit with an error when not),
// and from then on the connection carries the TCP stream's bytes both ways,
// unframed, until either side closes it.
//
// The supervisor's answers are read as untrusted: root inside a sandbox can
// replace its supervisor, so a reader bounds every frame and never trusts a
// length beyond MaxPayload.
package proto

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
)

// Version is the protocol version a Request carries; a supervisor refuses
// others with an Exit frame carrying an error.
const Version = 1

// Frame types.
const (
	// berth → supervisor
	TypeRequest    byte = 'r' // JSON Request; first and once
	TypeStdin      byte = 'i' // bytes for the command's stdin
	TypeCloseStdin byte = 'c' // end of stdin (empty payload)
	TypeResize     byte = 'w' // JSON Size; a PTY session only
	TypeKill       byte = 'k' // kill the command and everything it started

	// supervisor → berth
	TypeStarted byte = 's' // JSON Started: the command runs
	TypeStdout  byte = 'o' // output (a PTY session's whole output)
	TypeStderr  byte = 'e' // standard error (never for a PTY)
	TypeExit    byte = 'x' // JSON Exit; last
)

// MaxPayload bounds a frame's payload: a request with a large environment
// fits, and output comes in smaller chunks.
const MaxPayload = 1 << 20

// Request starts a command.
type Request struct {
	Version int               `json:"version"`
	Cmd     []string          `json:"cmd"`
	Env     map[string]string `json:"env,omitempty"`  // added to the container's environment
	Dir     string            `json:"dir,omitempty"`  // "" = the supervisor's working directory
	User    string            `json:"user,omitempty"` // "uid[:gid]" or a name of /etc/passwd; "" = the supervisor's
	// Marker is set as BERTH_EXEC_ID in the command's environment; a kill
	// finds the command's processes by it (and by their session).
	Marker string `json:"marker"`
	// Stdin says Stdin frames will come; without it the command's stdin is
	// empty from the start.
	Stdin bool `json:"stdin,omitempty"`
	TTY   bool `json:"tty,omitempty"` // run on a new pseudo-terminal; output comes as Stdout only
	Size  Size `json:"size"`          // the terminal's first size (TTY only)
	// Dial ("127.0.0.1:PORT") makes this a TCP connection instead of a
	// command; the other fields are ignored.
	Dial string `json:"dial,omitempty"`
}

// Size is a terminal's size in characters.
type Size struct {
	Rows uint16 `json:"rows"`
	Cols uint16 `json:"cols"`
}

// Started says the command runs.
type Started struct {
	PID int `json:"pid"` // in the sandbox's PID namespace
}

// Exit ends a session.
type Exit struct {
	Code  int    `json:"code"`            // exit status, 128+signal when killed, 126/127 when it could not start
	Error string `json:"error,omitempty"` // why it could not start, or a protocol error
}

// ExecIDEnv is the environment variable that carries a command's marker.
const ExecIDEnv = "BERTH_EXEC_ID"

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload) > MaxPayload {
		return fmt.Errorf("frame of %d bytes exceeds %d", len(payload), MaxPayload)
	}
	buf := make([]byte, 5+len(payload))
	buf[0] = typ
	binary.BigEndian.PutUint32(buf[1:5], uint32(len(payload)))
	copy(buf[5:], payload)
	_, err := w.Write(buf)
	return err
}

// WriteJSON writes a frame whose payload is v as JSON.
func WriteJSON(w io.Writer, typ byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFrame(w, typ, b)
}

// ReadFrame reads one frame into buf (grown as needed) and returns its type
// and payload, which is valid until the next call with the same buf.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:5])
	if n > MaxPayload {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds %d", n, MaxPayload)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[0], buf, nil
}
