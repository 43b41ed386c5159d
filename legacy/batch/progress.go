package batch

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress tells the operator how far the job is: a redrawn bar with rate
// and ETA on a terminal, plain lines (every tenth of the way, and at the
// end) in a log file, where a redrawn line would be noise.
type Progress struct {
	w        io.Writer
	terminal bool
	now      func() time.Time
	total    int
	done     int
	start    time.Time
	drawn    time.Time // last redraw on a terminal
	printed  int       // tenths already printed as lines
}

// NewProgress starts counting towards total rows.
func NewProgress(w io.Writer, terminal bool, total int, now func() time.Time) *Progress {
	if now == nil {
		now = time.Now
	}
	return &Progress{w: w, terminal: terminal, now: now, total: total, start: now()}
}

// Add counts n more rows settled (decided or rejected).
func (p *Progress) Add(n int) {
	p.done += n
	now := p.now()
	if p.terminal {
		if now.Sub(p.drawn) >= 100*time.Millisecond || p.done >= p.total {
			p.drawn = now
			fmt.Fprintf(p.w, "\r\033[K%s", p.bar(now))
		}
		return
	}
	if p.total > 0 {
		if tenth := p.done * 10 / p.total; tenth > p.printed && p.done < p.total {
			p.printed = tenth
			fmt.Fprintf(p.w, "progress: %s\n", p.status(now))
		}
	}
}

// Note prints a message on a line of its own; on a terminal the bar is
// drawn again below it on the next Add.
func (p *Progress) Note(msg string) {
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s\n%s", msg, p.bar(p.now()))
		return
	}
	fmt.Fprintln(p.w, msg)
}

// Finish ends the display with the final count.
func (p *Progress) Finish() {
	now := p.now()
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s\n", p.bar(now))
		return
	}
	fmt.Fprintf(p.w, "progress: %s\n", p.status(now))
}

const barWidth = 30

func (p *Progress) bar(now time.Time) string {
	filled := barWidth
	if p.total > 0 {
		filled = min(barWidth, p.done*barWidth/p.total)
	}
	return "[" + strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled) + "] " + p.status(now)
}

// status is "1200/2000 rows (60%), 850 rows/s, ETA 1s".
func (p *Progress) status(now time.Time) string {
	pct := 100
	if p.total > 0 {
		pct = p.done * 100 / p.total
	}
	s := fmt.Sprintf("%d/%d rows (%d%%)", p.done, p.total, pct)
	elapsed := now.Sub(p.start).Seconds()
	if elapsed <= 0 || p.done == 0 {
		return s + ", ETA unknown"
	}
	rate := float64(p.done) / elapsed
	eta := time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second)
	return s + fmt.Sprintf(", %.0f rows/s, ETA %s", rate, eta)
}
