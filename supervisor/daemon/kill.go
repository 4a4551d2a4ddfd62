//go:build linux

package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/supervisor/proto"
)

// kill ends the session's command and every process it started: its
// session (which catches children that cleared their environment) and
// every process carrying its marker (which catches children that left the
// session with setsid), in rounds until none is left. A command run as
// another user is also hunted by a helper running as that user: reading a
// process's environment needs its uid (the sandbox has no CAP_SYS_PTRACE).
func (ss *session) kill() {
	ss.killOnce.Do(func() {
		defer close(ss.killDone)
		if ss.pid <= 0 {
			return
		}
		if !ss.ended.Load() {
			_ = syscall.Kill(-ss.pid, syscall.SIGKILL)
		}
		killMarked(ss.pid, proto.ExecIDEnv+"="+ss.req.Marker)
		if ss.cred != nil && ss.cred.Uid != uint32(os.Getuid()) {
			if err := runKillHelper(ss.reaper, ss.cred, ss.pid, ss.req.Marker); err != nil {
				log.Printf("kill as uid %d: %v", ss.cred.Uid, err)
			}
		}
	})
}

// killHelperArg runs the supervisor binary as a kill helper:
// berth-supervisor <killHelperArg> <session id> <marker>.
const killHelperArg = "--kill-exec"

func runKillHelper(r *reaper, cred *syscall.Credential, sid int, marker string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	_, done, err := r.start(func() (*os.Process, error) {
		return os.StartProcess(self, []string{self, killHelperArg, strconv.Itoa(sid), marker}, &os.ProcAttr{
			Files: []*os.File{nil, os.Stderr, os.Stderr},
			Sys:   &syscall.SysProcAttr{Credential: cred, Setsid: true},
		})
	})
	if err != nil {
		return err
	}
	if ws := <-done; ws.ExitStatus() != 0 {
		return fmt.Errorf("kill helper exited %d", exitCode(ws))
	}
	return nil
}

func killHelper(args []string) int {
	if len(args) != 2 {
		return 2
	}
	sid, err := strconv.Atoi(args[0])
	if err != nil {
		return 2
	}
	killMarked(sid, proto.ExecIDEnv+"="+args[1])
	return 0
}

// killMarked kills, in rounds until a round finds nothing, the processes of
// session sid and those whose environment holds marker, with their
// sessions.
func killMarked(sid int, marker string) {
	self := os.Getpid()
	for range 10 {
		procs := listProcs(self)
		sids := map[int]bool{sid: true}
		found := false
		for _, p := range procs {
			if hasEnv(p.pid, marker) {
				if p.sid > 1 && p.sid != self {
					sids[p.sid] = true
				}
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
				found = true
			}
		}
		for _, p := range procs {
			if sids[p.sid] {
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
				found = true
			}
		}
		if !found {
			return
		}
	}
}

type proc struct{ pid, sid int }

// listProcs lists the live processes but PID 1 and self (zombies are
// already dead: the reaper collects them).
func listProcs(self int) []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...: comm may hold anything,
		// so the fields are counted from its closing parenthesis.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 4 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		sid, err := strconv.Atoi(f[3])
		if err != nil {
			continue
		}
		out = append(out, proc{pid: pid, sid: sid})
	}
	return out
}

func hasEnv(pid int, kv string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, e := range bytes.Split(b, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

// mergeEnv is base with add set over it, and extra (when not "") appended.
func mergeEnv(base []string, add map[string]string, extra string) []string {
	out := make([]string, 0, len(base)+len(add)+1)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := add[k]; ok || k == proto.ExecIDEnv {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range add {
		out = append(out, k+"="+v)
	}
	if extra != "" {
		out = append(out, extra)
	}
	return out
}

func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// errNotFound is a program that is not there: the shell's 127.
var errNotFound = errors.New("executable file not found")

// lookPath finds file in PATH as a shell would.
func lookPath(file, path string) (string, error) {
	if strings.Contains(file, "/") {
		return file, nil // StartProcess tells a missing or unrunnable file
	}
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	denied := ""
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() {
			continue
		}
		if syscall.Access(p, 1) == nil { // X_OK
			return p, nil
		}
		if denied == "" {
			denied = p
		}
	}
	if denied != "" {
		return "", &fs.PathError{Op: "exec", Path: denied, Err: fs.ErrPermission}
	}
	return "", fmt.Errorf("%s: %w", file, errNotFound)
}

// startErrCode is the shell's code for a command that could not start.
func startErrCode(err error) int {
	if errors.Is(err, errNotFound) || errors.Is(err, fs.ErrNotExist) {
		return 127
	}
	return 126
}

// lookupUser resolves "uid[:gid]" or "name[:group]" with the sandbox's
// /etc/passwd and /etc/group.
func lookupUser(spec string) (*syscall.Credential, string, error) {
	u, g, hasGroup := strings.Cut(spec, ":")
	// Groups is set (never the supervisor's own supplementary groups):
	// the user's memberships in /etc/group, as the engine's exec gives.
	cred := &syscall.Credential{Groups: []uint32{}}
	home, name := "", u
	if uid, err := strconv.ParseUint(u, 10, 32); err == nil {
		cred.Uid = uint32(uid)
		cred.Gid = uint32(uid)
		name = ""
		if f := findEntry("/etc/passwd", func(f []string) bool { return len(f) > 5 && f[2] == u }); f != nil {
			if gid, err := strconv.ParseUint(f[3], 10, 32); err == nil {
				cred.Gid = uint32(gid)
			}
			home, name = f[5], f[0]
		}
	} else {
		f := findEntry("/etc/passwd", func(f []string) bool { return len(f) > 5 && f[0] == u })
		if f == nil {
			return nil, "", fmt.Errorf("unable to find user %s: no matching entries in passwd file", u)
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return nil, "", fmt.Errorf("user %s: bad passwd entry", u)
		}
		cred.Uid, cred.Gid, home = uint32(uid), uint32(gid), f[5]
	}
	if name != "" {
		cred.Groups = memberships(name)
	}
	if hasGroup {
		if gid, err := strconv.ParseUint(g, 10, 32); err == nil {
			cred.Gid = uint32(gid)
		} else {
			f := findEntry("/etc/group", func(f []string) bool { return len(f) > 2 && f[0] == g })
			if f == nil {
				return nil, "", fmt.Errorf("unable to find group %s", g)
			}
			gid, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil {
				return nil, "", fmt.Errorf("group %s: bad group entry", g)
			}
			cred.Gid = uint32(gid)
		}
	}
	return cred, home, nil
}

// memberships are the gids of the groups of /etc/group that list name.
func memberships(name string) []uint32 {
	out := []uint32{}
	f, err := os.Open("/etc/group")
	if err != nil {
		return out
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 4 {
			continue
		}
		for _, m := range strings.Split(fields[3], ",") {
			if m == name {
				if gid, err := strconv.ParseUint(fields[2], 10, 32); err == nil {
					out = append(out, uint32(gid))
				}
				break
			}
		}
	}
	return out
}

func findEntry(file string, match func([]string) bool) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Split(sc.Text(), ":"); match(fields) {
			return fields
		}
	}
	return nil
}
