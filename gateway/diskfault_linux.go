package gateway

import (
	"errors"
	"os"
	"syscall"
)

// errNoPrealloc means the filesystem cannot preallocate (no fallocate).
var errNoPrealloc = errors.New("preallocation not supported")

// allocate allocates the blocks of the file's first size bytes without
// changing its size or contents.
func allocate(name string, size int64) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	const keepSize = 0x01 // FALLOC_FL_KEEP_SIZE
	err = syscall.Fallocate(int(f.Fd()), keepSize, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return errNoPrealloc
	}
	return err
}

// freeBytes returns the space an unprivileged writer may still use on the
// filesystem holding dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
