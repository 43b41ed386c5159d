package batch

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestLedgerCutsTornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.csv")
	header := []string{"a", "b"}
	l, rows, err := openLedger(path, header)
	if err != nil || len(rows) != 0 {
		t.Fatal(rows, err)
	}
	if err := l.append([][]string{{"1", "x"}, {"2", "multi\nline"}}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// A crash mid-write leaves part of a row.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("3,tor")
	f.Close()

	l, rows, err = openLedger(path, header)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"1", "x"}, {"2", "multi line"}}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows %q, want %q", rows, want)
	}
	if err := l.append([][]string{{"3", "whole"}}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	got, _ := os.ReadFile(path)
	if string(got) != "a,b\n1,x\n2,multi line\n3,whole\n" {
		t.Fatalf("file:\n%s", got)
	}
}

func TestLedgerRefusesAnotherFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.csv")
	os.WriteFile(path, []byte("x,y\n1,2\n"), 0o644)
	if _, _, err := openLedger(path, []string{"a", "b"}); err == nil {
		t.Fatal("appending decisions to a file with other columns must fail")
	}
}
