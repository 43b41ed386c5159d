// Package legacytest holds what the legacy side's tests share: where the
// dataset is and where test artifacts go. The dataset is read where it
// lies; it is never copied into the repository.
package legacytest

import (
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
