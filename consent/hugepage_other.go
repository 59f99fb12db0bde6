//go:build !linux

package consent

func adviseHuge([]entry) {}
