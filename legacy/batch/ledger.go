package batch

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"mlservice/internal/durable"
)

// ledger is an append-only CSV file that survives being killed: every
// append is one write followed by fsync, and on opening, a torn last line
// (a write cut short by a crash) is cut off, so what remains is exactly the
// rows whose append completed.
type ledger struct {
	f *os.File
}

// openLedger opens path for appending, creating it with header if it does
// not exist, and returns the complete rows already in it.
func openLedger(path string, header []string) (*ledger, [][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	complete := data[:bytes.LastIndexByte(data, '\n')+1]
	var rows [][]string
	if len(complete) > 0 {
		all, err := csv.NewReader(bytes.NewReader(complete)).ReadAll()
		if err != nil {
			return nil, nil, fmt.Errorf("%s is not a CSV file this job wrote: %w", path, err)
		}
		if !slices.Equal(all[0], header) {
			return nil, nil, fmt.Errorf("%s has columns %s, not %s: choose another file",
				path, strings.Join(all[0], ","), strings.Join(header, ","))
		}
		rows = all[1:]
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, err
	}
	l := &ledger{f: f}
	if err := l.cut(int64(len(complete))); err != nil {
		f.Close()
		return nil, nil, err
	}
	if len(complete) == 0 {
		if err := l.append([][]string{header}); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	return l, rows, nil
}

// cut drops anything after size (a torn last line) and positions the file
// for appending.
func (l *ledger) cut(size int64) error {
	if err := l.f.Truncate(size); err != nil {
		return err
	}
	if _, err := l.f.Seek(size, 0); err != nil {
		return err
	}
	if err := l.f.Sync(); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(l.f.Name()))
}

// append writes rows in one write and fsyncs: after it returns, they are
// on disk.
func (l *ledger) append(rows [][]string) error {
	if len(rows) == 0 {
		return nil
	}
	b, err := encodeCSV(rows)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(b); err != nil {
		return err
	}
	return l.f.Sync()
}

func (l *ledger) Close() error { return l.f.Close() }

// rewriteLedger replaces path atomically with header and rows.
func rewriteLedger(path string, header []string, rows [][]string) error {
	b, err := encodeCSV(append([][]string{header}, rows...))
	if err != nil {
		return err
	}
	return durable.WriteFile(path, b)
}

// encodeCSV writes rows with LF line ends; line breaks inside a value are
// flattened, so one row is always one line and a torn line is always the
// last one.
func encodeCSV(rows [][]string) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	oneLine := strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")
	for _, r := range rows {
		flat := make([]string, len(r))
		for i, v := range r {
			flat[i] = oneLine.Replace(v)
		}
		if err := w.Write(flat); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}
