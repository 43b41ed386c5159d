package batch

import (
	"os"
	"syscall"
	"unsafe"
)

// IsTerminal reports whether f is a terminal, by asking the terminal driver
// for its settings (what isatty does), so /dev/null and pipes say no.
func IsTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}
