package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"mlservice/registry"
	"mlservice/serve/routing"
)

// HistoryTag is the registered-model tag holding the champions, oldest first
// and the current one last, so a rollback works from any replica and after
// restarts: {"champions": ["1", "2"]}. An admin action writes it before it
// moves the champion alias; championHistory reads it so that a failure
// between the two writes, or a champion moved by someone else, still gives
// the true history. A server that records a champion moved outside /admin
// marks it ("outside": true), so other replicas still see the move as one.
// A plain JSON list (the format before) reads as the champions.
const HistoryTag = "serve.champion_history"

// history is the value of HistoryTag.
type history struct {
	Champions []string `json:"champions"`
	// Outside says the last champion was moved outside /admin and recorded
	// afterwards by a server that saw it.
	Outside bool `json:"outside,omitempty"`
}

func (h history) String() string { return mustJSON(h) }

// maxHistory bounds the champion history.
const maxHistory = 20

// VerifyError means the version failed the load pipeline; nothing was
// changed (409).
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return "the version failed verification: " + e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

// Change is the before and after of an admin action.
type Change struct {
	Before Desired `json:"before"`
	After  Desired `json:"after"`
	// Warning says what the sync after the change could not do (a variant
	// the action did not touch failed to load, say); the change itself
	// stands.
	Warning string `json:"warning,omitempty"`
}

// Promote points alias at version. The version is loaded and verified first;
// only then is the registry written and the routing table swapped. A version
// that fails verification changes nothing.
func (c *Controller) Promote(ctx context.Context, alias, version string) (Change, error) {
	variant, err := registry.ParseVariant(alias)
	if err != nil {
		return Change{}, fmt.Errorf("%w: alias: %v", ErrInvalid, err)
	}
	if version == "" {
		return Change{}, fmt.Errorf("%w: version is required", ErrInvalid)
	}
	return c.act(ctx, needsSplit, func(ctx context.Context, w registry.Writer, st registry.State, before Desired) error {
		if err := w.HasVersion(ctx, c.cfg.Model, version); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("%w: %s has no version %q", ErrUnknownVersion, c.cfg.Model, version)
			}
			return err
		}
		if err := c.prepare(ctx, variant, version); err != nil {
			return err
		}
		if variant != registry.Champion || before.Champion == version {
			return w.SetAlias(ctx, c.cfg.Model, alias, version)
		}
		history := append(championHistory(st), version)
		return c.writeChampion(ctx, w, st, history[max(0, len(history)-maxHistory):], version)
	})
}

// prepare loads and verifies a version before any write, so that a version
// that cannot serve never reaches the registry. A registry that is slow or
// down is not the version's fault: those errors pass unchanged (503).
func (c *Controller) prepare(ctx context.Context, variant registry.Variant, version string) error {
	v, err := c.version(ctx, c.cfg.Source, variant, version, "", loadForAction)
	if err == nil {
		return c.mayDecide(variant, v)
	}
	if errors.Is(err, registry.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return &VerifyError{Err: err}
}

// writeChampion moves the champion alias to version with champions as the
// new history, in the order that keeps the registry consistent: the history
// first, then the alias. If the alias write fails, the tag is put back as it
// was (Caddy's changeConfig); should even that fail, championHistory reads a
// history whose last entry the alias never reached as the old one, so the
// registry still reads as it was and repeating the action converges.
func (c *Controller) writeChampion(ctx context.Context, w registry.Writer, st registry.State, champions []string, version string) error {
	if err := w.SetModelTag(ctx, c.cfg.Model, HistoryTag, history{Champions: champions}.String()); err != nil {
		return err
	}
	err := w.SetAlias(ctx, c.cfg.Model, registry.Champion.String(), version)
	if err == nil {
		return nil
	}
	if rerr := restoreTag(ctx, w, c.cfg.Model, st, HistoryTag); rerr != nil {
		c.cfg.Log.Warn("could not restore the history tag after a failed alias write; it reads as before anyway",
			"model", c.cfg.Model, "error", rerr)
	}
	return err
}

// restoreTag puts a tag back to its value in st (deleting it if st had none).
func restoreTag(ctx context.Context, w registry.Writer, model string, st registry.State, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmTimeout) // undo even when the action timed out
	defer cancel()
	if old, ok := st.Tags[key]; ok {
		return w.SetModelTag(ctx, model, key, old)
	}
	return w.DeleteModelTag(ctx, model, key)
}

// Retire removes the challenger or shadow alias, taking that variant out of
// service. The champion cannot be retired: something must always serve.
// Retiring the challenger also sets its traffic share to 0, so the next
// challenger starts with none: the split first, then the alias, so a failure
// between the two leaves a challenger that gets no traffic, and repeating
// the action converges.
func (c *Controller) Retire(ctx context.Context, alias string) (Change, error) {
	variant, err := registry.ParseVariant(alias)
	if err != nil || variant == registry.Champion {
		return Change{}, fmt.Errorf("%w: alias %q: only challenger or shadow can be retired", ErrInvalid, alias)
	}
	return c.act(ctx, needsSplit, func(ctx context.Context, w registry.Writer, st registry.State, before Desired) error {
		if st.Version(variant) == "" {
			return fmt.Errorf("%w: no %s alias is set", ErrInvalid, alias)
		}
		if variant == registry.Challenger && before.Weights.Challenger != 0 {
			if err := w.SetModelTag(ctx, c.cfg.Model, registry.TrafficTag, mustJSON(routing.ChampionOnly())); err != nil {
				return err
			}
		}
		return w.DeleteAlias(ctx, c.cfg.Model, alias)
	})
}

// Rollback points the champion back at the previous champion. It refuses
// when there is none, or when the previous one is the current champion.
func (c *Controller) Rollback(ctx context.Context) (Change, error) {
	return c.act(ctx, needsSplit, func(ctx context.Context, w registry.Writer, st registry.State, before Desired) error {
		history := championHistory(st)
		if len(history) < 2 {
			return ErrNoHistory
		}
		previous := history[len(history)-2]
		if previous == before.Champion {
			return fmt.Errorf("%w: the previous champion is version %s, the current one", ErrNoHistory, previous)
		}
		if err := c.prepare(ctx, registry.Champion, previous); err != nil {
			return err
		}
		return c.writeChampion(ctx, w, st, history[:len(history)-1], previous)
	})
}

// SetWeights sets the champion/challenger split.
func (c *Controller) SetWeights(ctx context.Context, weights routing.Weights) (Change, error) {
	if err := weights.Validate(); err != nil {
		return Change{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c.act(ctx, setsSplit, func(ctx context.Context, w registry.Writer, _ registry.State, before Desired) error {
		if weights.Challenger > 0 && before.Challenger == "" {
			return fmt.Errorf("%w: no challenger alias is set; promote a challenger first", ErrInvalid)
		}
		return w.SetModelTag(ctx, c.cfg.Model, registry.TrafficTag, mustJSON(weights))
	})
}

// splitUse says whether an action needs the registry's traffic split to be
// valid: every action does but the one that sets it, so that a split
// damaged outside /admin can be repaired through it.
type splitUse bool

const (
	needsSplit splitUse = false
	setsSplit  splitUse = true
)

// act runs an admin action on the controller goroutine, cancelling a
// background load that would make it wait: read the registry, apply the
// change there, then reconcile so the routing table follows. A change that
// fails leaves the registry as it was.
func (c *Controller) act(ctx context.Context, split splitUse, change func(context.Context, registry.Writer, registry.State, Desired) error) (Change, error) {
	if c.cfg.Writer == nil {
		return Change{}, ErrReadOnly
	}
	w := confirmed{Writer: c.cfg.Writer, c: c}
	var ch Change
	err := c.do(ctx, true, func(ctx context.Context) error {
		st, err := c.cfg.Source.State(ctx, c.cfg.Model)
		if err != nil {
			return err
		}
		before, err := DesiredFrom(st)
		switch {
		case errors.Is(err, ErrBadTraffic) && split == needsSplit:
			return fmt.Errorf("%w; set the split first", err)
		case err != nil && !errors.Is(err, ErrNoChampion) && !errors.Is(err, ErrBadTraffic):
			return err
		}
		ch.Before, ch.After = before, before
		if err := change(ctx, w, st, before); err != nil {
			return err // nothing was changed
		}
		if ctx.Err() != nil {
			// The change stands though the deadline passed while it was
			// confirmed: the table follows it now, not at the next poll.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), confirmTimeout)
			defer cancel()
		}
		if err := c.reconcile(ctx, loadAfterAction); err != nil {
			ch.Warning = err.Error()
			c.cfg.Log.Warn("sync after an admin action failed", "model", c.cfg.Model, "error", err)
		}
		ch.After = c.Desired()
		return nil
	})
	return ch, err
}

// historyTag is the history tag as written.
func historyTag(st registry.State) history {
	var h history
	raw := st.Tags[HistoryTag]
	if json.Unmarshal([]byte(raw), &h) != nil {
		h = history{}
		_ = json.Unmarshal([]byte(raw), &h.Champions) // the old list; a damaged tag means no history
	}
	return h
}

// championHistory returns the champions, oldest first, the current one
// last. The tag is read against the champion alias:
//   - it ends with the champion: as written;
//   - its last-but-one entry is the champion: the last write of an action
//     never reached the alias (or a rollback's alias write did and the tag
//     restore did not), so the entry the alias never reached is dropped;
//   - otherwise the champion was moved outside /admin (or the tag predates
//     this format, when it listed only previous champions): it is appended.
func championHistory(st registry.State) []string {
	h := historyTag(st).Champions
	champion := st.Version(registry.Champion)
	switch {
	case champion == "":
		return h
	case len(h) > 0 && h[len(h)-1] == champion:
		return h
	case len(h) > 1 && h[len(h)-2] == champion:
		return h[:len(h)-1]
	}
	return append(h, champion)
}

func mustJSON(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with slices of strings and Weights
	}
	return string(raw)
}

// confirmTimeout bounds what an action still does past its deadline: the
// read that confirms a write without an answer, the undo of a history tag,
// the sync after a change that stands.
const confirmTimeout = 10 * time.Second

// confirmed is the writer of an admin action. A write that fails without an
// answer (the action's deadline, a registry that went away mid-request) may
// have been made all the same: MLflow commits it and only its reply is
// lost. The registry is then read back, and a write it shows made is one
// that succeeded, so the action's answer and audit line say what stands,
// and the history tag is not put back under an alias that moved.
type confirmed struct {
	registry.Writer
	c *Controller
}

func (w confirmed) made(ctx context.Context, err error, done func(registry.State) bool) error {
	if !errors.Is(err, registry.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), confirmTimeout)
	defer cancel()
	if st, rerr := w.c.cfg.Source.State(ctx, w.c.cfg.Model); rerr == nil && done(st) {
		w.c.cfg.Log.Warn("a registry write reported no success but was made", "model", w.c.cfg.Model, "error", err)
		return nil
	}
	return err
}

func (w confirmed) SetAlias(ctx context.Context, model, alias, version string) error {
	return w.made(ctx, w.Writer.SetAlias(ctx, model, alias, version),
		func(st registry.State) bool { return st.Aliases[alias] == version })
}

func (w confirmed) DeleteAlias(ctx context.Context, model, alias string) error {
	return w.made(ctx, w.Writer.DeleteAlias(ctx, model, alias),
		func(st registry.State) bool { _, set := st.Aliases[alias]; return !set })
}

func (w confirmed) SetModelTag(ctx context.Context, model, key, value string) error {
	return w.made(ctx, w.Writer.SetModelTag(ctx, model, key, value),
		func(st registry.State) bool { v, set := st.Tags[key]; return set && v == value })
}

func (w confirmed) DeleteModelTag(ctx context.Context, model, key string) error {
	return w.made(ctx, w.Writer.DeleteModelTag(ctx, model, key),
		func(st registry.State) bool { _, set := st.Tags[key]; return !set })
}
