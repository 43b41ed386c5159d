package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"mlservice/registry"
	"mlservice/serve/routing"
)

// Writer is a registry the admin API can change: MLflow in MLflow mode, the
// local state file otherwise. Actions write the registry first and then
// reconcile, so every replica converges on the same state.
type Writer interface {
	// HasVersion returns an error wrapping registry.ErrNotFound for a
	// version the registry does not have.
	HasVersion(ctx context.Context, model, version string) error
	SetAlias(ctx context.Context, model, alias, version string) error
	DeleteAlias(ctx context.Context, model, alias string) error
	SetModelTag(ctx context.Context, model, key, value string) error
}

// HistoryTag is the registered-model tag holding the previous champions,
// oldest first, so a rollback works from any replica and after restarts.
const HistoryTag = "serve.champion_history"

// maxHistory bounds the champion history.
const maxHistory = 20

// Errors of the admin actions; serve/admin maps them to HTTP statuses.
var (
	// ErrInvalid means the request itself is wrong (422).
	ErrInvalid = errors.New("invalid request")
	// ErrUnknownVersion means the registry has no such version (422).
	ErrUnknownVersion = errors.New("unknown version")
	// ErrNoHistory means there is no previous champion to roll back to (409).
	ErrNoHistory = errors.New("no previous champion to roll back to")
	// ErrReadOnly means the registry cannot be written.
	ErrReadOnly = errors.New("the registry is read-only")
)

// VerifyError means the version failed the load pipeline; nothing was
// changed (409).
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string { return "the version failed verification: " + e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

// Change is the before and after of an admin action.
type Change struct {
	Before Desired `json:"before"`
	After  Desired `json:"after"`
}

// Desired returns the state the live table was built from.
func (c *Controller) Desired(ctx context.Context) (Desired, error) {
	var d Desired
	err := c.Do(ctx, func(context.Context) error { d = c.desired; return nil })
	return d, err
}

// Promote points alias at version. The version is loaded and verified first;
// only then is the alias written and the routing table swapped. A version
// that fails verification changes nothing.
func (c *Controller) Promote(ctx context.Context, alias, version string) (Change, error) {
	variant, err := registry.ParseVariant(alias)
	if err != nil {
		return Change{}, fmt.Errorf("%w: alias: %v", ErrInvalid, err)
	}
	if version == "" {
		return Change{}, fmt.Errorf("%w: version is required", ErrInvalid)
	}
	return c.act(ctx, func(ctx context.Context, w Writer, st registry.State, before Desired) error {
		if err := w.HasVersion(ctx, c.cfg.Model, version); err != nil {
			if errors.Is(err, registry.ErrNotFound) {
				return fmt.Errorf("%w: %s has no version %q", ErrUnknownVersion, c.cfg.Model, version)
			}
			return err
		}
		if _, err := c.version(ctx, c.cfg.Source, variant, version); err != nil {
			return &VerifyError{Err: err}
		}
		if variant == registry.Champion && before.Champion != "" && before.Champion != version {
			history := append(championHistory(st), before.Champion)
			if len(history) > maxHistory {
				history = history[len(history)-maxHistory:]
			}
			if err := w.SetModelTag(ctx, c.cfg.Model, HistoryTag, mustJSON(history)); err != nil {
				return err
			}
		}
		return w.SetAlias(ctx, c.cfg.Model, alias, version)
	})
}

// Retire removes the challenger or shadow alias, taking that variant out of
// service. The champion cannot be retired: something must always serve.
func (c *Controller) Retire(ctx context.Context, alias string) (Change, error) {
	if v, err := registry.ParseVariant(alias); err != nil || v == registry.Champion {
		return Change{}, fmt.Errorf("%w: alias %q: only challenger or shadow can be retired", ErrInvalid, alias)
	}
	return c.act(ctx, func(ctx context.Context, w Writer, st registry.State, _ Desired) error {
		if st.Aliases[alias] == "" {
			return fmt.Errorf("%w: no %s alias is set", ErrInvalid, alias)
		}
		return w.DeleteAlias(ctx, c.cfg.Model, alias)
	})
}

// Rollback points the champion back at the previous champion.
func (c *Controller) Rollback(ctx context.Context) (Change, error) {
	return c.act(ctx, func(ctx context.Context, w Writer, st registry.State, before Desired) error {
		history := championHistory(st)
		if len(history) == 0 {
			return ErrNoHistory
		}
		previous := history[len(history)-1]
		if _, err := c.version(ctx, c.cfg.Source, registry.Champion, previous); err != nil {
			return &VerifyError{Err: err}
		}
		if err := w.SetAlias(ctx, c.cfg.Model, registry.Champion.String(), previous); err != nil {
			return err
		}
		return w.SetModelTag(ctx, c.cfg.Model, HistoryTag, mustJSON(history[:len(history)-1]))
	})
}

// SetWeights sets the champion/challenger split.
func (c *Controller) SetWeights(ctx context.Context, weights routing.Weights) (Change, error) {
	if err := weights.Validate(); err != nil {
		return Change{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return c.act(ctx, func(ctx context.Context, w Writer, _ registry.State, before Desired) error {
		if weights.Challenger > 0 && before.Challenger == "" {
			return fmt.Errorf("%w: no challenger alias is set; promote a challenger first", ErrInvalid)
		}
		return w.SetModelTag(ctx, c.cfg.Model, registry.TrafficTag, mustJSON(weights))
	})
}

// act runs an admin action on the controller goroutine: read the registry,
// apply the change there, then reconcile so the routing table follows.
func (c *Controller) act(ctx context.Context, change func(context.Context, Writer, registry.State, Desired) error) (Change, error) {
	w := c.cfg.Writer
	if w == nil {
		return Change{}, ErrReadOnly
	}
	var ch Change
	err := c.Do(ctx, func(ctx context.Context) error {
		st, err := c.cfg.Source.State(ctx, c.cfg.Model)
		if err != nil {
			return err
		}
		before, err := DesiredFrom(st)
		if err != nil && !errors.Is(err, ErrNoChampion) {
			return err
		}
		ch.Before, ch.After = before, before
		if err := change(ctx, w, st, before); err != nil {
			return err // nothing was changed
		}
		err = c.reconcile(ctx)
		ch.After = c.desired
		return err
	})
	return ch, err
}

func championHistory(st registry.State) []string {
	var h []string
	if raw := st.Tags[HistoryTag]; raw != "" {
		_ = json.Unmarshal([]byte(raw), &h) // a damaged tag means no history
	}
	return h
}

func mustJSON(v any) string {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with slices of strings and Weights
	}
	return string(raw)
}
