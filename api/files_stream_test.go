package api_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/client"
	"github.com/berth-dev/berth/internal/testctx"
	"github.com/berth-dev/berth/server/servertest"
)

// tempLeft lists the files library's temporary names left anywhere in dir.
func tempLeft(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	// Entries that vanish while walked are skipped (err != nil): a
	// temporary file may be renamed or removed at any moment.
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(info.Name(), ".berth-tmp-") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUploadConcurrentOneWins(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := context.Background()
	w, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "race"})
	must(t, err)
	const n, size = 8, 2 << 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = env.Admin.UploadAs(ctx, w.ID, "/", "target.bin", bytes.NewReader(bytes.Repeat([]byte{byte('a' + i)}, size)))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("upload %d: %v", i, err)
		}
	}
	_, b := download(t, env.Admin, w.ID, "/target.bin", client.DownloadOptions{})
	if len(b) != size || bytes.Count(b, b[:1]) != size {
		t.Errorf("after %d concurrent uploads the file has %d bytes, not one whole upload", n, len(b))
	}
	if left := tempLeft(t, wsDir(env, w.ID)); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestUploadAbortKeepsOldFile sends half an upload on a raw connection and
// closes it: the old file stays whole and no temporary file remains.
func TestUploadAbortKeepsOldFile(t *testing.T) {
	env := servertest.Start(t, "")
	ctx := context.Background()
	w, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "abort"})
	must(t, err)
	_, err = env.Admin.UploadAs(ctx, w.ID, "/", "keep.txt", strings.NewReader("old contents"))
	must(t, err)

	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			var head bytes.Buffer
			mw := multipart.NewWriter(&head)
			must(t, mw.WriteField("name", "keep.txt"))
			_, err := mw.CreateFormFile("file", "x")
			must(t, err)
			body := append(head.Bytes(), bytes.Repeat([]byte("N"), 4<<20)...) // no closing boundary ever comes
			conn, err := net.Dial("tcp", strings.TrimPrefix(env.URL, "http://"))
			must(t, err)
			bw := bufio.NewWriter(conn)
			// bufio.Writer keeps its first error: the Flush below reports it.
			_, _ = fmt.Fprintf(bw, "POST /v1/workspaces/%s/upload HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Type: %s\r\n", w.ID, env.AdminKey, mw.FormDataContentType())
			if chunked {
				_, _ = fmt.Fprintf(bw, "Transfer-Encoding: chunked\r\n\r\n%x\r\n", len(body))
			} else {
				_, _ = fmt.Fprintf(bw, "Content-Length: %d\r\n\r\n", len(body)+(64<<20))
			}
			_, _ = bw.Write(body)
			must(t, bw.Flush())
			// Wait until the server is streaming into a temporary file.
			testctx.Eventually(t, "the upload to start", func() bool { return len(tempLeft(t, wsDir(env, w.ID))) > 0 })
			must(t, conn.Close())
			testctx.Eventually(t, "the aborted upload to clean up", func() bool {
				return len(tempLeft(t, wsDir(env, w.ID))) == 0 && env.API.Files.Stats().InUse == 0
			})
			_, b := download(t, env.Admin, w.ID, "/keep.txt", client.DownloadOptions{})
			if string(b) != "old contents" {
				t.Errorf("old file now %d bytes: %.40q", len(b), b)
			}
		})
	}
}

// patternReader yields n bytes of a repeating pattern without allocating.
type patternReader struct{ n, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	m := int64(len(b))
	if m > p.n-p.off {
		m = p.n - p.off
	}
	for i := range m {
		b[i] = byte((p.off + i) % 251)
	}
	p.off += m
	return int(m), nil
}

// heapSampler records the largest HeapInuse seen while it runs.
func heapSampler() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); <-finished; return peak.Load() }
}

// TestFilesStreamMemory uploads and downloads 1 GiB through the API with the
// server in this process: the heap (server and client together) must stay
// under 64 MiB, so nothing holds the file in memory.
func TestFilesStreamMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB")
	}
	const size = 1 << 30
	const bound = 64 << 20
	env := servertest.Start(t, "")
	ctx := context.Background()
	w, err := env.Admin.CreateWorkspace(ctx, client.WorkspaceRequest{Name: "big"})
	must(t, err)
	runtime.GC()

	stop := heapSampler()
	e, err := env.Admin.UploadAs(ctx, w.ID, "/", "big.bin", &patternReader{n: size})
	peak := stop()
	must(t, err)
	if e.Size != size {
		t.Fatalf("uploaded %d bytes", e.Size)
	}
	t.Logf("1 GiB upload: peak HeapInuse %d MiB", peak>>20)
	if peak > bound {
		t.Errorf("1 GiB upload: peak HeapInuse %d MiB, bound %d MiB", peak>>20, bound>>20)
	}

	runtime.GC()
	stop = heapSampler()
	resp, err := env.Admin.Download(ctx, w.ID, "/big.bin", client.DownloadOptions{})
	must(t, err)
	want := &patternReader{n: size}
	got, err := equalStreams(resp.Body, want)
	closeBody(resp)
	peak = stop()
	must(t, err)
	if !got {
		t.Errorf("downloaded bytes differ from the upload")
	}
	t.Logf("1 GiB download: peak HeapInuse %d MiB", peak>>20)
	if peak > bound {
		t.Errorf("1 GiB download: peak HeapInuse %d MiB, bound %d MiB", peak>>20, bound>>20)
	}
	if ct := resp.Header.Get("Content-Length"); ct != fmt.Sprint(size) {
		t.Errorf("Content-Length %q", ct)
	}
	_ = http.StatusOK
}

// equalStreams compares two streams chunk by chunk.
func equalStreams(a, b io.Reader) (bool, error) {
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == io.EOF || eb == io.ErrUnexpectedEOF, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, nil
		}
	}
}
