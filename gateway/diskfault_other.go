//go:build !linux

package gateway

import "errors"

// errNoPrealloc means the platform cannot preallocate.
var errNoPrealloc = errors.New("preallocation not supported")

func allocate(string, int64) error { return errNoPrealloc }

// freeBytes is unknown here: the probe write still catches a full disk.
func freeBytes(string) (int64, error) { return 1 << 62, nil }
