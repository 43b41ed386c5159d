// Command legacy is the bank's legacy side of ML Service: the loan officer's
// web form and the nightly batch job, both clients of the decision service
// that never lose an application when it is down.
//
//	legacy web   -addr :8080 -api http://127.0.0.1:8000 -queue /var/lib/legacy/queue
//	legacy batch -in applications.csv -out decisions.csv -api http://127.0.0.1:8000
//	legacy outcomes -in outcomes.csv -out posted.csv -api http://127.0.0.1:8000 (token in $LEGACY_API_TOKEN)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes of the batch job, for the scheduler that runs it.
const (
	exitFailed    = 1 // could not run (bad arguments, unreadable input, disk, a refused token)
	exitRejected  = 2 // finished; some rows rejected (see the rejects file)
	exitUndecided = 3 // stopped with rows undecided or not posted (service down); run again to resume
)

func main() {
	// First signal: stop gracefully (the batch records what it has and the
	// form finishes its requests); second: the default action, stop now.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "legacy:", err)
	}
	os.Exit(exitCode(err))
}

// exitError carries an exit code other than 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var e *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.code
	}
	return exitFailed
}

const usage = `usage: legacy <command> [flags]

commands:
  web       the loan officer's form (see legacy web -h)
  batch     decide a legacy export file (see legacy batch -h)
  outcomes  post the day's outcomes to the decision service (see legacy outcomes -h)`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "web":
		return runWeb(ctx, args[1:], stderr)
	case "batch":
		return runBatch(ctx, args[1:], stderr)
	case "outcomes":
		return runOutcomes(ctx, args[1:], stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}
