package consent

import (
	"syscall"
	"unsafe"
)

// adviseHuge asks the kernel to back a large index table with transparent
// huge pages: lookups are random over hundreds of megabytes, and with 4 KiB
// pages nearly every one also misses the TLB. Failure is harmless.
func adviseHuge(e []entry) {
	const huge = 2 << 20
	size := len(e) * int(unsafe.Sizeof(entry{}))
	if size < 2*huge {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&e[0])), size)
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
}
