package record

import (
	"testing"

	"golang.org/x/sys/unix"
)

// FileSizeLimit sets process pid's (0: this one's) file-size limit to limit
// bytes, so its writes past that offset to any regular file fail with EFBIG
// — a full disk, without privileges. The returned func restores the limit
// (once; later calls do nothing); it is also registered for cleanup.
func FileSizeLimit(t testing.TB, pid, limit int) (restore func()) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &old); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	lowered := unix.Rlimit{Cur: uint64(limit), Max: old.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &lowered, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	done := false
	restore = func() {
		if done {
			return
		}
		done = true
		if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &old, nil); err != nil {
			t.Errorf("prlimit (restore): %v", err)
		}
	}
	t.Cleanup(restore)
	return restore
}
