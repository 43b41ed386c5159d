package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mlservice/internal/servetest"
)

// TestOneDurableWriter keeps the legacy side on one atomic-file writer
// (internal/durable: temporary file, fsync, rename, fsync of the directory):
// no other code in legacy/ renames or creates temporary files itself.
func TestOneDurableWriter(t *testing.T) {
	root := filepath.Join(servetest.ModuleRoot(), "legacy")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, call := range []string{"os.Rename(", "os.CreateTemp(", "ioutil.TempFile("} {
			if strings.Contains(string(b), call) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("legacy/%s calls %s: write files through internal/durable", rel, call)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIsTerminal: a file and a pipe are not terminals (the batch then prints
// plain progress lines).
func TestIsTerminal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, x := range []*os.File{f, w} {
		if isTerminal(x) {
			t.Errorf("%s is not a terminal", x.Name())
		}
	}
	if isTerminal(&strings.Builder{}) {
		t.Error("a strings.Builder is not a terminal")
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !isTerminal(tty) {
			t.Error("/dev/tty is a terminal")
		}
	}
}
