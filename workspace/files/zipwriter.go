package files

import (
	"archive/zip"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// zipWriter writes a zip archive entry by entry, like archive/zip's Writer
// (same records, same Info-ZIP conventions) but with bounded memory:
//
//   - one flate compressor, taken from a pool and Reset for every entry,
//     instead of a new one (hundreds of KiB) per entry;
//   - empty files, directories and symlinks are stored, with their sizes and
//     CRC in the local header: no compressor, no data descriptor;
//   - the central directory, which must come last and names every entry, is
//     serialised as it goes into a spool that moves to an unnamed temporary
//     file past zipSpoolMem, instead of a header struct per entry kept until
//     Close (about 270 bytes an entry: 55 MB for 200k entries).
type zipWriter struct {
	out      zipCounter
	cd       spool
	entries  uint64
	comp     *flate.Writer
	force64  bool // tests: write zip64 records even where 32 bits fit
	released bool
}

// zipSpoolMem is how much of the central directory stays in memory.
const zipSpoolMem = 1 << 20

// flatePool holds BestSpeed compressors between archive jobs.
var flatePool = sync.Pool{New: func() any {
	fw, err := flate.NewWriter(nil, flate.BestSpeed)
	if err != nil {
		panic(err) // only for an invalid level
	}
	return fw
}}

// newZipWriter writes to out; spillDir is where the central directory
// spills (an unnamed O_TMPFILE there, else an unlinked file in os.TempDir).
func newZipWriter(out io.Writer, spillDir string) *zipWriter {
	return &zipWriter{out: zipCounter{w: out}, cd: spool{spillDir: spillDir}}
}

const (
	zipVersion20   = 20
	zipVersion45   = 45
	zipCreatorUnix = 3 << 8
	zipFlagDesc    = 0x8
	zipFlagUTF8    = 0x800
	zipMax32       = 1<<32 - 1
	zipMax16       = 1<<16 - 1
)

// zipEntry is what the central directory needs of an entry.
type zipEntry struct {
	name         string
	flags        uint16
	method       uint16
	version      uint16
	dosTime      uint16
	dosDate      uint16
	crc          uint32
	compressed   uint64
	uncompressed uint64
	offset       uint64
	attrs        uint32
	unixTime     uint32
}

func (z *zipWriter) newEntry(name string, mode fs.FileMode, mtime time.Time, method uint16) *zipEntry {
	e := &zipEntry{name: name, method: method, version: zipVersion20, offset: uint64(z.out.n)}
	// archive/zip's rule: flag UTF-8 only for names that need it.
	if !isASCII(name) && utf8.ValidString(name) {
		e.flags |= zipFlagUTF8
	}
	// The mode and MS-DOS attributes exactly as archive/zip's SetMode.
	var fh zip.FileHeader
	fh.SetMode(mode)
	e.attrs = fh.ExternalAttrs
	if !mtime.IsZero() {
		mtime = mtime.UTC()
		e.dosDate = uint16(mtime.Day() + int(mtime.Month())<<5 + (mtime.Year()-1980)<<9)
		e.dosTime = uint16(mtime.Second()/2 + mtime.Minute()<<5 + mtime.Hour()<<11)
		e.unixTime = uint32(mtime.Unix())
	}
	return e
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// extTime is Info-ZIP's extended timestamp extra field (modification time
// only), identical in local and central headers.
func (e *zipEntry) extTime() []byte {
	if e.unixTime == 0 && e.dosDate == 0 {
		return nil
	}
	b := make([]byte, 9)
	binary.LittleEndian.PutUint16(b[0:], 0x5455)
	binary.LittleEndian.PutUint16(b[2:], 5)
	b[4] = 1
	binary.LittleEndian.PutUint32(b[5:], e.unixTime)
	return b
}

// localHeader writes the entry's local header. For a stored entry with
// known contents the sizes and CRC go here; otherwise they follow the data in
// a descriptor.
func (z *zipWriter) localHeader(e *zipEntry) error {
	if len(e.name) > zipMax16 {
		return errors.New("zip: name too long")
	}
	extra := e.extTime()
	var b [30]byte
	binary.LittleEndian.PutUint32(b[0:], 0x04034b50)
	binary.LittleEndian.PutUint16(b[4:], e.version)
	binary.LittleEndian.PutUint16(b[6:], e.flags)
	binary.LittleEndian.PutUint16(b[8:], e.method)
	binary.LittleEndian.PutUint16(b[10:], e.dosTime)
	binary.LittleEndian.PutUint16(b[12:], e.dosDate)
	if e.flags&zipFlagDesc == 0 {
		binary.LittleEndian.PutUint32(b[14:], e.crc)
		binary.LittleEndian.PutUint32(b[18:], uint32(e.compressed))
		binary.LittleEndian.PutUint32(b[22:], uint32(e.uncompressed))
	}
	binary.LittleEndian.PutUint16(b[26:], uint16(len(e.name)))
	binary.LittleEndian.PutUint16(b[28:], uint16(len(extra)))
	if _, err := z.out.Write(b[:]); err != nil {
		return err
	}
	if _, err := io.WriteString(&z.out, e.name); err != nil {
		return err
	}
	_, err := z.out.Write(extra)
	return err
}

// stored writes an entry whose (small) contents are known: a directory,
// an empty file or a symlink's target.
func (z *zipWriter) stored(name string, mode fs.FileMode, mtime time.Time, data []byte) error {
	e := z.newEntry(name, mode, mtime, zip.Store)
	e.crc = crc32.ChecksumIEEE(data)
	e.compressed, e.uncompressed = uint64(len(data)), uint64(len(data))
	if err := z.localHeader(e); err != nil {
		return err
	}
	if _, err := z.out.Write(data); err != nil {
		return err
	}
	return z.central(e)
}

func (z *zipWriter) dir(name string, mtime time.Time) error {
	return z.stored(name, fs.ModeDir|0o755, mtime, nil)
}

// symlink follows Info-ZIP's convention: an entry with the link mode whose
// contents are the target.
func (z *zipWriter) symlink(name, target string, mtime time.Time) error {
	return z.stored(name, fs.ModeSymlink|0o777, mtime, []byte(target))
}

func (z *zipWriter) file(name string, info fs.FileInfo, r io.Reader) error {
	size := info.Size()
	if size == 0 {
		return z.stored(name, info.Mode().Perm(), info.ModTime(), nil)
	}
	e := z.newEntry(name, info.Mode().Perm(), info.ModTime(), zip.Deflate)
	e.flags |= zipFlagDesc
	if err := z.localHeader(e); err != nil {
		return err
	}
	if z.comp == nil {
		z.comp = flatePool.Get().(*flate.Writer)
	}
	compressed := zipCounter{w: &z.out}
	z.comp.Reset(&compressed)
	crc := crc32.NewIEEE()
	if err := copyBuf(io.MultiWriter(crc, z.comp), exactly(r, size)); err != nil {
		return err
	}
	if err := z.comp.Close(); err != nil {
		return err
	}
	e.crc = crc.Sum32()
	e.compressed, e.uncompressed = uint64(compressed.n), uint64(size)
	// The descriptor, as archive/zip writes it: 64-bit sizes when they need
	// them, without a zip64 extra in the local header (too late for that).
	zip64 := e.zip64(z.force64)
	var b [24]byte
	binary.LittleEndian.PutUint32(b[0:], 0x08074b50)
	binary.LittleEndian.PutUint32(b[4:], e.crc)
	n := 16
	if zip64 {
		binary.LittleEndian.PutUint64(b[8:], e.compressed)
		binary.LittleEndian.PutUint64(b[16:], e.uncompressed)
		n = 24
	} else {
		binary.LittleEndian.PutUint32(b[8:], uint32(e.compressed))
		binary.LittleEndian.PutUint32(b[12:], uint32(e.uncompressed))
	}
	if _, err := z.out.Write(b[:n]); err != nil {
		return err
	}
	return z.central(e)
}

func (e *zipEntry) zip64(force bool) bool {
	return force || e.compressed >= zipMax32 || e.uncompressed >= zipMax32
}

// central appends e's central directory record to the spool.
func (z *zipWriter) central(e *zipEntry) error {
	extra := e.extTime()
	sizes64 := e.zip64(z.force64)
	offset64 := z.force64 || e.offset >= zipMax32
	version := e.version
	if sizes64 || offset64 {
		// archive/zip's layout: all three values in the zip64 extra, and
		// the 32-bit fields at their maximum.
		var b [28]byte
		binary.LittleEndian.PutUint16(b[0:], 0x0001)
		binary.LittleEndian.PutUint16(b[2:], 24)
		binary.LittleEndian.PutUint64(b[4:], e.uncompressed)
		binary.LittleEndian.PutUint64(b[12:], e.compressed)
		binary.LittleEndian.PutUint64(b[20:], e.offset)
		extra = append(extra, b[:]...)
		sizes64, offset64 = true, true
		version = zipVersion45
	}
	var b [46]byte
	binary.LittleEndian.PutUint32(b[0:], 0x02014b50)
	binary.LittleEndian.PutUint16(b[4:], zipCreatorUnix|zipVersion20)
	binary.LittleEndian.PutUint16(b[6:], version)
	binary.LittleEndian.PutUint16(b[8:], e.flags)
	binary.LittleEndian.PutUint16(b[10:], e.method)
	binary.LittleEndian.PutUint16(b[12:], e.dosTime)
	binary.LittleEndian.PutUint16(b[14:], e.dosDate)
	binary.LittleEndian.PutUint32(b[16:], e.crc)
	if sizes64 {
		binary.LittleEndian.PutUint32(b[20:], zipMax32)
		binary.LittleEndian.PutUint32(b[24:], zipMax32)
	} else {
		binary.LittleEndian.PutUint32(b[20:], uint32(e.compressed))
		binary.LittleEndian.PutUint32(b[24:], uint32(e.uncompressed))
	}
	binary.LittleEndian.PutUint16(b[28:], uint16(len(e.name)))
	binary.LittleEndian.PutUint16(b[30:], uint16(len(extra)))
	// comment length, disk number, internal attributes: zero
	binary.LittleEndian.PutUint32(b[38:], e.attrs)
	if offset64 {
		binary.LittleEndian.PutUint32(b[42:], zipMax32)
	} else {
		binary.LittleEndian.PutUint32(b[42:], uint32(e.offset))
	}
	z.entries++
	return errors.Join(z.cd.write(b[:]), z.cd.write([]byte(e.name)), z.cd.write(extra))
}

// close writes the central directory and the end records, and releases the
// compressor and the spool. It does not close the underlying writer.
func (z *zipWriter) close() error {
	z.release()
	start := uint64(z.out.n)
	if err := z.cd.copyTo(&z.out); err != nil {
		return errors.Join(err, z.cd.close())
	}
	if err := z.cd.close(); err != nil {
		return err
	}
	end := uint64(z.out.n)
	records, size, offset := z.entries, end-start, start
	if z.force64 || records >= zipMax16 || size >= zipMax32 || offset >= zipMax32 {
		var b [56 + 20]byte
		binary.LittleEndian.PutUint32(b[0:], 0x06064b50)
		binary.LittleEndian.PutUint64(b[4:], 56-12)
		binary.LittleEndian.PutUint16(b[12:], zipVersion45)
		binary.LittleEndian.PutUint16(b[14:], zipVersion45)
		binary.LittleEndian.PutUint64(b[24:], records)
		binary.LittleEndian.PutUint64(b[32:], records)
		binary.LittleEndian.PutUint64(b[40:], size)
		binary.LittleEndian.PutUint64(b[48:], offset)
		// zip64 end of central directory locator
		binary.LittleEndian.PutUint32(b[56:], 0x07064b50)
		binary.LittleEndian.PutUint64(b[64:], end)
		binary.LittleEndian.PutUint32(b[72:], 1)
		if _, err := z.out.Write(b[:]); err != nil {
			return err
		}
		records, size, offset = zipMax16, zipMax32, zipMax32
	}
	var b [22]byte
	binary.LittleEndian.PutUint32(b[0:], 0x06054b50)
	binary.LittleEndian.PutUint16(b[8:], uint16(records))
	binary.LittleEndian.PutUint16(b[10:], uint16(records))
	binary.LittleEndian.PutUint32(b[12:], uint32(size))
	binary.LittleEndian.PutUint32(b[16:], uint32(offset))
	_, err := z.out.Write(b[:])
	return err
}

// release returns the compressor to the pool and drops the spool; after a
// failure it is all the cleanup there is (the archive is abandoned).
func (z *zipWriter) release() {
	if z.released {
		return
	}
	z.released = true
	if z.comp != nil {
		z.comp.Reset(nil)
		flatePool.Put(z.comp)
		z.comp = nil
	}
}

func (z *zipWriter) abort() error {
	z.release()
	return z.cd.close()
}

type zipCounter struct {
	w io.Writer
	n int64
}

func (c *zipCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// spool keeps bytes in memory up to zipSpoolMem, then in an unnamed
// temporary file: nothing to clean up after a crash, nothing visible in the
// workspace.
type spool struct {
	spillDir string
	buf      []byte
	f        *os.File
}

func (s *spool) write(p []byte) error {
	if len(s.buf)+len(p) <= zipSpoolMem {
		s.buf = append(s.buf, p...)
		return nil
	}
	if s.f == nil {
		f, err := tempFile(s.spillDir)
		if err != nil {
			return err
		}
		s.f = f
	}
	if _, err := s.f.Write(s.buf); err != nil {
		return err
	}
	s.buf = append(s.buf[:0], p...)
	return nil
}

func (s *spool) copyTo(w io.Writer) error {
	if s.f != nil {
		if _, err := s.f.Write(s.buf); err != nil {
			return err
		}
		s.buf = s.buf[:0]
		if _, err := s.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := copyBuf(w, s.f); err != nil {
			return err
		}
	}
	_, err := w.Write(s.buf)
	return err
}

func (s *spool) close() error {
	s.buf = nil
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// tempFile opens an unnamed file in dir (O_TMPFILE: the data disk, gone
// with its descriptor), or, where the filesystem cannot, a file in
// os.TempDir removed at once.
func tempFile(dir string) (*os.File, error) {
	if dir != "" {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), filepath.Join(dir, "(zip directory)")), nil
		}
	}
	f, err := os.CreateTemp("", "berth-zipdir-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}
