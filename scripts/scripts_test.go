package scripts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runScript runs scripts/NAME with extra environment and returns stdout,
// stderr and the error.
func runScript(t *testing.T, name string, env []string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestOnnxRuntimeCachedLibraryIsVerified: a cached libonnxruntime.so that was
// altered or truncated is detected on the next run (which is every `make
// ort`/`make deps`), and replaced by the pinned one.
func TestOnnxRuntimeCachedLibraryIsVerified(t *testing.T) {
	// The project's own copy (fetched and verified by make deps).
	out, stderr, err := runScript(t, "onnxruntime.sh", nil)
	if err != nil {
		t.Fatalf("onnxruntime.sh: %v\n%s", err, stderr)
	}
	good := strings.TrimSpace(out)
	want := fileSHA(t, good)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		tamper func([]byte) []byte
	}{
		{"one byte changed", func(b []byte) []byte {
			c := bytes.Clone(b)
			c[len(c)/2] ^= 0x01
			return c
		}},
		{"truncated", func(b []byte) []byte { return b[:len(b)-4096] }},
		{"empty", func([]byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			lib := filepath.Join(dir, "libonnxruntime.so")
			if err := os.WriteFile(lib, tc.tamper(data), 0o644); err != nil {
				t.Fatal(err)
			}
			env := []string{"ORT_DIR=" + dir, "ORT_VERIFY_ONLY=1"}
			_, stderr, err := runScript(t, "onnxruntime.sh", env)
			if err == nil {
				t.Fatalf("a tampered library passed the check")
			}
			if !strings.Contains(stderr, "altered or truncated") {
				t.Errorf("stderr does not say what is wrong:\n%s", stderr)
			}
			if got := fileSHA(t, lib); got == want {
				t.Fatalf("verify-only changed the file")
			}
			if testing.Short() {
				return // the repair downloads the wheel (pip's cache makes it cheap)
			}
			out, stderr, err := runScript(t, "onnxruntime.sh", []string{"ORT_DIR=" + dir})
			if err != nil {
				t.Fatalf("repair: %v\n%s", err, stderr)
			}
			if strings.TrimSpace(out) != lib {
				t.Errorf("printed %q, want %q", out, lib)
			}
			if got := fileSHA(t, lib); got != want {
				t.Errorf("after repair sha256 %s, want %s", got, want)
			}
		})
	}
}

// TestAptInstallNoOpWhenPresent: the Debian helper does nothing, silently and
// without root, when the packages are installed.
func TestAptInstallNoOpWhenPresent(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("not a Debian system")
	}
	out, stderr, err := runScript(t, "apt-install.sh", nil, "bash", "coreutils")
	if err != nil || out != "" || stderr != "" {
		t.Fatalf("apt-install.sh bash coreutils: err %v, stdout %q, stderr %q", err, out, stderr)
	}
	if _, _, err := runScript(t, "apt-install.sh", nil); err == nil {
		t.Errorf("no arguments: want a usage error")
	}
}
