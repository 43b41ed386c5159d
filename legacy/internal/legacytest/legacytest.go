// Package legacytest holds what the legacy side's tests share: where the
// dataset is and where test artifacts go. The dataset is read where it
// lies; it is never copied into the repository.
package legacytest

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"

	"mlservice/internal/servetest"
)

// Dataset returns the path of the loan dataset: $LOAN_DATA, or
// ../shared/data/loan_approval.csv beside the repository.
func Dataset(t testing.TB) string {
	t.Helper()
	p := os.Getenv("LOAN_DATA")
	if p == "" {
		p = filepath.Join(servetest.ModuleRoot(), "..", "shared", "data", "loan_approval.csv")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("loan dataset not found (%v): set LOAN_DATA", err)
	}
	return p
}

// ArtifactDir returns testout/legacy at the repository root (git-ignored),
// where screenshots are kept for a person to look at.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(servetest.ModuleRoot(), "testout", "legacy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ReadCSV returns a CSV file's header and its rows.
func ReadCSV(t testing.TB, path string) (header []string, rows [][]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(all) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return all[0], all[1:]
}

// Rows returns a CSV file's rows without its header.
func Rows(t testing.TB, path string) [][]string {
	t.Helper()
	_, rows := ReadCSV(t, path)
	return rows
}
