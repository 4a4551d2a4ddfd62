package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server"
	"github.com/berth-dev/berth/server/servertest"
)

// startHTTP runs a server with the HTTP limits h.
func startHTTP(t *testing.T, h server.HTTPConfig) *servertest.Env {
	t.Helper()
	cfg := server.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.HTTP = h
	return servertest.StartConfig(t, cfg)
}

// dial opens a raw connection to env; every read on it gives up after a
// generous guard, which only a server holding the connection forever hits.
func dial(t *testing.T, env *servertest.Env) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(env.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.SetReadDeadline(time.Now().Add(60 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitClosed reads c until the server closes it and returns what it sent.
func waitClosed(t *testing.T, c net.Conn) []byte {
	t.Helper()
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server held the connection (read %q)", b)
	}
	// A reset instead of a FIN is a close too.
	return b
}

// TestSlowBodyCutOff: a client that sends its headers, then a body at one
// byte a while (slowloris), is cut off.
func TestSlowBodyCutOff(t *testing.T) {
	env := startHTTP(t, server.HTTPConfig{ReadHeaderTimeout: 10 * time.Second, BodyMinRate: 1000, BodyWindow: 300 * time.Millisecond})
	c := dial(t, env)
	if _, err := fmt.Fprintf(c, "POST /v1/workspaces HTTP/1.1\r\nHost: berth\r\nX-API-Key: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", env.AdminKey); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// 10 bytes/s, far under the minimum, until the server hangs up.
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	got := waitClosed(t, c)
	t.Logf("the server answered %q and closed", got)
	if len(got) > 0 && (!bytes.HasPrefix(got, []byte("HTTP/1.1 400")) || !bytes.Contains(got, []byte("slower than the server's minimum of 1000 bytes/s"))) {
		t.Errorf("answer to a slow body: %q", got)
	}
}

// TestIdleKeepAliveClosed: a keep-alive connection idle past the idle
// timeout is closed.
func TestIdleKeepAliveClosed(t *testing.T) {
	env := startHTTP(t, server.HTTPConfig{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 200 * time.Millisecond})
	c := dial(t, env)
	br := bufio.NewReader(c)
	if _, err := fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: berth\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close() // read to the end above: nothing left to fail
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("healthz: %d, close %v: want a kept-alive 200", resp.StatusCode, resp.Close)
	}
	if rest := waitClosed(t, &bufConn{Conn: c, r: br}); len(rest) > 0 {
		t.Errorf("idle connection sent %q", rest)
	}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// TestConnectionCap: connections above the cap wait until one closes.
func TestConnectionCap(t *testing.T) {
	env := startHTTP(t, server.HTTPConfig{ReadHeaderTimeout: 10 * time.Second, MaxConns: 2})
	get := func(c net.Conn, br *bufio.Reader) error {
		if _, err := fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: berth\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }() // io.Copy reports any read error
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	// Two kept-alive connections take both slots.
	var held []net.Conn
	for range 2 {
		c := dial(t, env)
		if err := get(c, bufio.NewReader(c)); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	third := dial(t, env)
	answered := make(chan error, 1)
	go func() { answered <- get(third, bufio.NewReader(third)) }()
	select {
	case err := <-answered:
		t.Fatalf("a third connection was served while two held the cap of 2 (err %v)", err)
	case <-time.After(300 * time.Millisecond):
		// Not served meanwhile, as it should (a slow machine only makes
		// this check weaker, never wrong).
	}
	if err := held[0].Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatalf("third connection once a slot was free: %v", err)
	}
}

// TestStalledReaderDropped: a client that stops reading a download is
// dropped once the server could write nothing for the stall limit (the
// handler ends: seen in the request metrics), instead of holding the
// handler and its open file forever.
func TestStalledReaderDropped(t *testing.T) {
	env := startHTTP(t, server.HTTPConfig{ReadHeaderTimeout: 10 * time.Second, WriteStall: 300 * time.Millisecond})
	ctx := context.Background()
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "stall"})
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20 // far more than the socket buffers hold
	if _, err := env.Admin.UploadAs(ctx, ws.ID, "/", "big.bin", io.LimitReader(zeros{}, size)); err != nil {
		t.Fatal(err)
	}
	c := dial(t, env)
	if _, err := fmt.Fprintf(c, "GET /v1/workspaces/%s/direct?id=/big.bin HTTP/1.1\r\nHost: berth\r\nX-API-Key: %s\r\n\r\n", ws.ID, env.AdminKey); err != nil {
		t.Fatal(err)
	}
	// Read nothing until the download's handler has ended (it is counted
	// in the metrics once it has).
	testctx.Eventually(t, "the download of a client that reads nothing to end", func() bool {
		resp, err := env.HTTP().Get(env.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close() // ReadAll reports any read error
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(b, []byte(`berth_http_requests_total{method="GET",route="/v1/workspaces/{id}/direct"`))
	})
	got := waitClosed(t, c)
	if len(got) >= size {
		t.Errorf("the stalled client got all %d bytes", len(got))
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestStreamsOutliveLimits: an upload, a download and an SSE stream that
// keep making progress (or wait for events) live far longer than the body
// window, the write stall limit and the idle timeout.
func TestStreamsOutliveLimits(t *testing.T) {
	// Each pause of the clients below is a small fraction of the limit, so
	// that a busy machine does not stretch one past it.
	const limit = 2 * time.Second
	env := startHTTP(t, server.HTTPConfig{ReadHeaderTimeout: limit, IdleTimeout: limit, BodyMinRate: 1, BodyWindow: limit, WriteStall: limit})
	ctx := context.Background()
	ws, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "streams"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("slow upload", func(t *testing.T) {
		// 1 KiB every 20 ms for 3 s: each window sees progress, the
		// whole body takes longer than a window.
		body := &pacedReader{chunk: 1 << 10, n: 150, gap: 20 * time.Millisecond}
		start := time.Now()
		e, err := env.Admin.UploadAs(ctx, ws.ID, "/", "slow.bin", body)
		if err != nil {
			t.Fatalf("paced upload: %v", err)
		}
		if e.Size != 150<<10 {
			t.Errorf("uploaded %d bytes, want %d", e.Size, 150<<10)
		}
		if d := time.Since(start); d < limit {
			t.Fatalf("the upload took %v, not longer than the limits: the test proves nothing", d)
		}
	})

	t.Run("slow download", func(t *testing.T) {
		data := make([]byte, 48<<20)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Admin.UploadAs(ctx, ws.ID, "/", "big.bin", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		resp, err := env.Admin.Download(ctx, ws.ID, "/big.bin", client.DownloadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }() // the reads below report any error
		// 64 KiB every 5 ms: the server's writes block on the client all
		// along, and each goes through long before the stall limit.
		start := time.Now()
		var got bytes.Buffer
		buf := make([]byte, 64<<10)
		for {
			n, err := io.ReadFull(resp.Body, buf)
			got.Write(buf[:n])
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("paced download broke after %d bytes: %v", got.Len(), err)
				}
				break
			}
			time.Sleep(5 * time.Millisecond) // pacing, not synchronisation
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("downloaded %d bytes, want the %d uploaded", got.Len(), len(data))
		}
		if d := time.Since(start); d < limit {
			t.Fatalf("the download took %v, not longer than the limits: the test proves nothing", d)
		}
	})

	t.Run("quiet SSE", func(t *testing.T) {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ready := make(chan struct{})
		events := make(chan client.FileEvent, 16)
		done := make(chan error, 1)
		go func() {
			done <- env.Admin.WatchFiles(wctx, ws.ID, "/", func() { close(ready) }, func(e client.FileEvent) error {
				events <- e
				return nil
			})
		}()
		select {
		case <-ready:
		case err := <-done:
			t.Fatalf("watch: %v", err)
		}
		// Silence longer than every limit, then an event: the silence is
		// the input under test (a quiet stream must outlive the limits),
		// not a wait for something to happen.
		time.Sleep(2 * limit)
		if _, err := env.Admin.WriteFile(ctx, ws.ID, "/late.txt", "x"); err != nil {
			t.Fatal(err)
		}
		for {
			select {
			case e := <-events:
				if strings.Contains(fmt.Sprint(e), "late.txt") {
					return
				}
			case err := <-done:
				t.Fatalf("the quiet watch stream ended: %v", err)
			case <-time.After(60 * time.Second):
				t.Fatal("no event for late.txt")
			}
		}
	})
}

// pacedReader yields n chunks of chunk bytes, gap apart.
type pacedReader struct {
	chunk, n, sent int
	gap            time.Duration
	left           int
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		if p.sent == p.n {
			return 0, io.EOF
		}
		if p.sent > 0 {
			time.Sleep(p.gap) // pacing, not synchronisation
		}
		p.sent++
		p.left = p.chunk
	}
	n := min(len(b), p.left)
	for i := range b[:n] {
		b[i] = 'x'
	}
	p.left -= n
	return n, nil
}

// TestBadLimitsRefused: a configuration no sandbox or connection could live
// with stops the start with a message naming the setting.
func TestBadLimitsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*server.Config)
		want string
	}{
		{"default over ceiling", func(c *server.Config) { c.Sandbox.Limits.DefaultMemory = c.Sandbox.Limits.MaxMemory + 1 }, "--sandbox-default-memory"},
		{"ceiling under floor", func(c *server.Config) { c.Sandbox.Limits.MaxPids = 3 }, "--sandbox-max-pids"},
		{"negative timeout", func(c *server.Config) { c.HTTP.IdleTimeout = -time.Second }, "must not be negative"},
		{"negative cap", func(c *server.Config) { c.HTTP.MaxConns = -1 }, "--http-max-conns"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := server.Defaults()
			cfg.DataDir = t.TempDir()
			c.edit(&cfg)
			s, err := server.New(context.Background(), cfg, quiet())
			if err == nil {
				s.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
		})
	}
}
