package files

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

const benchSize = 256 << 20

// BenchmarkWrite is an atomic Write of a 256 MiB stream; BenchmarkOSWrite is
// the plain os.Create+io.Copy+Sync baseline on the same disk.
func BenchmarkWrite(b *testing.B) {
	w, _ := newWS(b, Options{NoUsageWatch: true})
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, err := w.Write(context.Background(), "/big", &patternReader{n: benchSize}, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOSWrite(b *testing.B) {
	p := filepath.Join(b.TempDir(), "big")
	b.SetBytes(benchSize)
	for b.Loop() {
		f, err := os.Create(p)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(f, &patternReader{n: benchSize}); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	w, _ := newWS(b, Options{NoUsageWatch: true})
	if _, err := w.Write(context.Background(), "/big", &patternReader{n: benchSize}, WriteOptions{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	for b.Loop() {
		f, err := w.Open(context.Background(), "/big")
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, f)
		_ = f.Close() // read-only: nothing to lose
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOSRead(b *testing.B) {
	p := filepath.Join(b.TempDir(), "big")
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, &patternReader{n: benchSize}); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	for b.Loop() {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, f)
		_ = f.Close() // read-only: nothing to lose
		if err != nil {
			b.Fatal(err)
		}
	}
}

func benchList(b *testing.B, n int) {
	w, dir := newWS(b, Options{NoUsageWatch: true})
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("file-%07d.txt", i)))
		if err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := w.List(context.Background(), "/", ListOptions{Limit: 500, Cursor: ""}); err != nil {
			b.Fatal(err)
		}
	}
}

// One page (500 entries) of a 10k / 100k entry directory.
func BenchmarkList10k(b *testing.B)  { benchList(b, 10_000) }
func BenchmarkList100k(b *testing.B) { benchList(b, 100_000) }

// BenchmarkArchive zips a tree of 64 files of 4 MiB (compressible data).
func BenchmarkArchive(b *testing.B) {
	w, _ := newWS(b, Options{NoUsageWatch: true})
	const files, size = 64, 4 << 20
	for i := range files {
		p := fmt.Sprintf("/t/d%d/f%d", i%8, i)
		if _, err := w.Write(context.Background(), p, &patternReader{n: size}, WriteOptions{MakeParents: true}); err != nil {
			b.Fatal(err)
		}
	}
	for _, format := range []string{FormatZip, FormatTarGz} {
		b.Run(format, func(b *testing.B) {
			b.SetBytes(files * size)
			for b.Loop() {
				if err := w.Archive(context.Background(), "/t", io.Discard, format); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
